"""Where in a YAML document a problem is: a validation error's key path as a line, and
duplicate keys (which YAML itself lets the last one win). Shared by the runbook loader
and the runbook tests, so both report file:line the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app.errors import RunbookProblem


def validation_problems(
    file: str, node: yaml.Node, exc: ValidationError, prefix: str = ""
) -> list[RunbookProblem]:
    """Each error of `exc` (validating the value of `node`), at its line and key path."""
    return [
        RunbookProblem(file, line_of(node, tuple(error["loc"])),
                       dotted(tuple(error["loc"]), prefix), message(error["type"], error["msg"]))
        for error in exc.errors()
    ]  # fmt: skip


def message(kind: str, text: str) -> str:
    if kind == "extra_forbidden":
        return "unknown key"
    return text.removeprefix("Value error, ")


def dotted(loc: tuple[Any, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def line_of(node: yaml.Node, loc: tuple[Any, ...]) -> int:
    """The line of the deepest node on `loc` that exists in the document."""
    current = node
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    # An unknown key is best shown at the key itself.
                    child = value if part != loc[-1] else key
                    break
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(current.value):
                child = current.value[part]
        if child is None:
            break
        current = child
    return int(current.start_mark.line) + 1


def duplicate_keys(file: str, node: yaml.Node) -> list[RunbookProblem]:
    problems: list[RunbookProblem] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        problems.append(
                            RunbookProblem(
                                file, key.start_mark.line + 1, key.value, "duplicate key"
                            )
                        )
                    seen.add(key.value)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return problems


def read_documents(
    file: Path, problems: list[RunbookProblem]
) -> list[tuple[yaml.Node, Any]] | None:
    """Each YAML document of `file`, as its node (for lines) and its value, the file's
    duplicate keys added to `problems`; None, with the problem, when it cannot be read
    or parsed. Empty documents are left out."""
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        values = list(yaml.safe_load_all(text))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(RunbookProblem(name, None, "", f"cannot read: {exc}"))
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problems.append(RunbookProblem(name, line, "", f"not valid YAML: {exc}"))
        return None
    documents = [(node, value) for node, value in zip(nodes, values, strict=True) if node]
    for node, _ in documents:
        problems.extend(duplicate_keys(name, node))
    return documents

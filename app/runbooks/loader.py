"""Read runbook files: one runbook, a list of them, or several YAML documents per file.

Every problem is collected (not just the first) and located by file, line and key path,
so `remediator lint` can show an author all of them at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app.errors import RunbookError, RunbookProblem
from app.fields.paths import inside
from app.runbooks.models import Runbook, RunbookFile, Step
from app.runbooks.template_check import problem as template_problem
from app.runbooks.template_check import templates
from app.runbooks.yaml_places import read_documents, validation_problems

YAML_SUFFIXES = (".yml", ".yaml")


# Runbook test files (`remediator test`) may live beside or under the runbooks.
TEST_SUFFIXES = (".test.yml", ".test.yaml")


def runbook_files(paths: Iterable[Path]) -> list[Path]:
    """The runbook files at or below each path, in a stable order: YAML files that are
    not runbook tests."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*")
                                if p.suffix in YAML_SUFFIXES and not is_test_file(p)))  # fmt: skip
        elif not is_test_file(path):
            found.append(path)
    return found


def is_test_file(path: Path) -> bool:
    return path.name.endswith(TEST_SUFFIXES)


def load_runbooks(
    paths: Sequence[Path],
    *,
    known_targets: Iterable[str] | None = None,
    **dirs: Path | None,
) -> list[RunbookFile]:
    """Every runbook under `paths`, or RunbookError with every problem found. `dirs`
    (`playbooks_dir=...`, by setting name) are where the steps' paths must be; a kind
    whose directory is not given is not checked."""
    problems: list[RunbookProblem] = []
    loaded: list[RunbookFile] = []
    for file in runbook_files(paths):
        loaded.extend(_load_file(file, problems))
    _check_names(loaded, problems)
    _check_paths(loaded, dirs, problems)
    _check_templates(loaded, problems)
    if known_targets is not None:
        _check_targets(loaded, set(known_targets), problems)
    if problems:
        raise RunbookError(problems)
    return loaded


def _load_file(file: Path, problems: list[RunbookProblem]) -> list[RunbookFile]:
    name = str(file)
    loaded: list[RunbookFile] = []
    for node, value in read_documents(file, problems) or []:
        items: list[tuple[yaml.Node, Any, str]]
        if isinstance(value, list) and isinstance(node, yaml.SequenceNode):
            items = [
                (n, v, f"[{i}]") for i, (n, v) in enumerate(zip(node.value, value, strict=True))
            ]
        else:
            items = [(node, value, "")]
        for item_node, item, prefix in items:
            runbook = _validate(name, item_node, item, prefix, problems)
            if runbook is not None:
                loaded.append(
                    RunbookFile(runbook=runbook, file=name, line=item_node.start_mark.line + 1)
                )
    return loaded


def _validate(
    file: str, node: yaml.Node, value: Any, prefix: str, problems: list[RunbookProblem]
) -> Runbook | None:
    if not isinstance(value, dict):
        problems.append(
            RunbookProblem(file, node.start_mark.line + 1, prefix, "a runbook must be a mapping")
        )
        return None
    try:
        return Runbook.model_validate(value)
    except ValidationError as exc:
        problems.extend(validation_problems(file, node, exc, prefix))
        return None


def _check_names(loaded: list[RunbookFile], problems: list[RunbookProblem]) -> None:
    first: dict[str, RunbookFile] = {}
    for item in loaded:
        name = item.runbook.name
        if name in first:
            other = first[name]
            problems.append(
                RunbookProblem(
                    item.file,
                    item.line,
                    "name",
                    f"runbook name {name!r} is already used at {other.file}:{other.line}",
                )
            )
        else:
            first[name] = item


def _step_paths(step: Step, dirs: Mapping[str, Path | None]) -> Iterator[tuple[str, Path, str]]:
    """(key, base directory, path relative to it) for each path the step names."""
    for field, setting, relative in step.kind_of.paths(step.spec):
        base = dirs.get(setting)
        if base is not None:
            yield f"{step.kind}.{field}", base, relative


def _check_paths(
    loaded: list[RunbookFile], dirs: Mapping[str, Path | None], problems: list[RunbookProblem]
) -> None:
    for item in loaded:
        for where, step in item.runbook.all_steps():
            for key, base, relative in _step_paths(step, dirs):
                target = inside(base, relative)
                if target is None:
                    why = f"{relative!r} leaves its directory {base}"
                elif not target.exists():
                    why = f"{relative!r} not found in {base}"
                else:
                    continue
                problems.append(RunbookProblem(item.file, item.line, f"{where}.{key}", why))


def _check_templates(loaded: list[RunbookFile], problems: list[RunbookProblem]) -> None:
    for item in loaded:
        for where, source, earlier in templates(item.runbook):
            why = template_problem(source, earlier)
            if why is not None:
                problems.append(RunbookProblem(item.file, item.line, where, why))


def _check_targets(
    loaded: list[RunbookFile], known: set[str], problems: list[RunbookProblem]
) -> None:
    for item in loaded:
        named = [("escalate", t) for t in item.runbook.escalate]
        named += [("notify_on_success", t) for t in item.runbook.notify_on_success]
        if item.runbook.diagnose is not None:
            named += [("diagnose.post_to", t) for t in item.runbook.diagnose.post_to]
        for key, target in named:
            if target not in known:
                problems.append(
                    RunbookProblem(
                        item.file,
                        item.line,
                        key,
                        f"escalation target {target!r} is not configured "
                        f"(configured: {', '.join(sorted(known)) or 'none'})",
                    )
                )

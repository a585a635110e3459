"""What a step may read of the steps before it, and its `when`, decided just before it
runs.

A `when` is runbook text, a bare expression as in Ansible (`steps.lag.outputs.lag_s <
30`), evaluated in the same sandbox as every template. What it reads is data: an
incident's values, and earlier steps' outputs (which a playbook may have echoed from an
incident), so it can only compare them, never make them code. It must yield a boolean:
`"false"` (a string) or an undefined output is an error naming the expression, never a
silent true.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes

from app.errors import TemplateError
from app.fields.templating import environment

# What `steps.<id>` holds: how it ended, and what it found.
STEP_FIELDS = ("status", "outputs")


def as_template(when: str) -> str:
    """The `when` as a template, for the load-time checks every template meets."""
    return "{{ (" + when + ") }}"


def reads_steps(source: str) -> bool:
    """Whether a template reads earlier steps (`steps.<id>...`): such a step is rendered
    just before it runs, not when the incident arrives."""
    if "steps" not in source:
        return False
    try:
        tree = environment().parse(source)
    except jinja2.TemplateSyntaxError:
        return False  # the load check says what is wrong with it
    return any(name.name == "steps" for name in tree.find_all(nodes.Name))


@lru_cache(maxsize=1024)
def _compiled(when: str) -> Any:
    return environment().compile_expression(when, undefined_to_none=False)


@lru_cache(maxsize=1024)
def _reads(when: str) -> tuple[str, ...]:
    """The values the expression reads (`steps.lag.outputs.lag_s`, `incident.severity`),
    longest paths only, as expressions of their own."""
    tree = environment().parse(as_template(when))
    paths = {_written(parts) for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name))
             if (parts := path_of(node))}  # fmt: skip
    return tuple(sorted(p for p in paths if not any(o.startswith((p + ".", p + "["))
                                                    for o in paths)))  # fmt: skip


def path_of(node: nodes.Node) -> tuple[str | int, ...]:
    """`steps.lag.outputs` as ("steps", "lag", "outputs"); () for anything but a name and
    the attributes and constant keys read from it."""
    if isinstance(node, nodes.Name):
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        base = path_of(node.node)
        return (*base, node.attr) if base else ()
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base = path_of(node.node)
        key = node.arg.value
        return (*base, key) if base and isinstance(key, str | int) else ()
    return ()


def _written(parts: tuple[str | int, ...]) -> str:
    head, *rest = parts
    return str(head) + "".join(f".{p}" if isinstance(p, str) and p.isidentifier() else f"[{p!r}]"
                               for p in rest)  # fmt: skip


@dataclass(frozen=True)
class Decision:
    run: bool
    # What the expression read, by path: why it was decided so, for people.
    saw: dict[str, Any]

    def summary(self, when: str) -> str:
        seen = ", ".join(f"{path} = {value!r}" for path, value in self.saw.items())
        return f"skipped: when `{when}` is false" + (f" ({seen})" if seen else "")


def decide(when: str, context: Mapping[str, Any]) -> Decision:
    """Whether the step runs. TemplateError when the expression cannot be evaluated (an
    output it reads is missing) or does not yield true or false."""
    try:
        value = _compiled(when)(**context)
        if isinstance(value, jinja2.Undefined):
            str(value)  # a StrictUndefined says what is missing when it is used
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"when `{when}`: {exc.message}") from exc
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateError(f"when `{when}`: {exc}") from exc
    if not isinstance(value, bool):
        raise TemplateError(
            f"when `{when}` gave {type(value).__name__} {value!r}, not true or false"
        )
    return Decision(value, dict(_seen(when, context)))


def _seen(when: str, context: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for path in _reads(when):
        try:
            value = _compiled(path)(**context)
        except (jinja2.TemplateError, TypeError, ValueError):
            continue
        if not isinstance(value, jinja2.Undefined):
            yield path, value

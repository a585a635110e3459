"""A runbook's templates, checked when it loads rather than when an incident arrives: each
must parse, and may only name what templates are given (`incident` with the Incident's
fields, `runbook` with its name and description, and, in a step, `steps.<id>.status` and
`steps.<id>.outputs` of the steps before it). A typo such as `incident.titel`, or a step
reading one that has not run yet, is a load error with file and line, not a failed
remediation at 3 a.m.

Below the first level nothing is checked: `incident.labels.<any>` and `incident.raw...`
depend on the payload, and StrictUndefined makes a missing one a clear render error.
"""

from __future__ import annotations

from collections.abc import Iterator

from jinja2 import TemplateSyntaxError, meta, nodes

from app.fields.templating import environment
from app.incident import Incident
from app.runbooks.decisions import STEP_FIELDS, as_template, path_of
from app.runbooks.models import Runbook

KNOWN: dict[str, frozenset[str]] = {
    "incident": frozenset(name for name, f in Incident.model_fields.items() if not f.exclude),
    "runbook": frozenset({"name", "description"}),
}


def templates(runbook: Runbook) -> Iterator[tuple[str, str, frozenset[str]]]:
    """Each template in the runbook, with where it is (`steps[0].ansible.extra_vars.x`) and
    the ids of the steps it may read (those that ran before it)."""
    if runbook.concurrency:
        yield "concurrency", runbook.concurrency, frozenset()
    earlier: set[str] = set()
    for where, step in runbook.all_steps():
        before = frozenset(earlier)
        if step.when is not None:
            yield f"{where}.when", as_template(step.when), before
        for field, source in step.kind_of.templates(step.spec):
            yield f"{where}.{step.kind}.{field}", source, before
        if step.id is not None:
            earlier.add(step.id)
    if runbook.verify is not None and runbook.verify.http is not None:
        yield "verify.http.url", runbook.verify.http.url, frozenset()
    if runbook.diagnose is not None and runbook.diagnose.headline is not None:
        looked = frozenset(step.id for step in runbook.diagnose.steps if step.id is not None)
        yield "diagnose.headline", runbook.diagnose.headline, looked


def problem(source: str, earlier: frozenset[str] = frozenset()) -> str | None:
    """What is wrong with one template, or None; `earlier`: the step ids it may read."""
    if "{" not in source:
        return None
    env = environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return f"template does not parse: {exc.message}"
    unknown = meta.find_undeclared_variables(tree) - set(KNOWN) - {"steps"} - set(env.globals)
    if unknown:
        return (
            f"template names {', '.join(sorted(unknown))}: templates see only incident, "
            "runbook and steps"
        )
    for name, attribute in _first_level(tree):
        if attribute not in KNOWN[name]:
            known = ", ".join(sorted(KNOWN[name]))
            return f"template uses {name}.{attribute}: not a field of {name} ({known})"
    return _steps_problem(tree, earlier)


def _steps_problem(tree: nodes.Template, earlier: frozenset[str]) -> str | None:
    """A step may read only steps that ran before it, and of each its status or outputs."""
    for node in tree.find_all(nodes.Name):
        if node.name == "steps" and not earlier:
            return "template reads steps, but no step with an id runs before it"
    for step_id, field in _step_reads(tree):
        if step_id not in earlier:
            return (
                f"template reads steps.{step_id}: no step with that id runs before it "
                f"(before it: {', '.join(sorted(earlier))})"
            )
        if field is not None and field not in STEP_FIELDS:
            return f"template reads steps.{step_id}.{field}: a step has {', '.join(STEP_FIELDS)}"
    return None


def _step_reads(tree: nodes.Template) -> Iterator[tuple[str, str | None]]:
    """(id, field) for each `steps.<id>.<field>`; field None when not written as one."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        parts = path_of(node)
        if len(parts) >= 2 and parts[0] == "steps":
            yield str(parts[1]), str(parts[2]) if len(parts) > 2 else None


def _first_level(tree: nodes.Template) -> Iterator[tuple[str, str]]:
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in KNOWN:
            yield node.node.name, node.attr
    for item in tree.find_all(nodes.Getitem):
        if (
            isinstance(item.node, nodes.Name)
            and item.node.name in KNOWN
            and isinstance(item.arg, nodes.Const)
        ):
            yield item.node.name, str(item.arg.value)

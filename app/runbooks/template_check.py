"""A runbook's templates, checked when it loads rather than when an incident arrives: each
must parse, and may only name what templates are given (`incident` with the Incident's
fields, `runbook` with its name and description). A typo such as `incident.titel` is a
load error with file and line, not a failed remediation at 3 a.m.

Below the first level nothing is checked: `incident.labels.<any>` and `incident.raw...`
depend on the payload, and StrictUndefined makes a missing one a clear render error.
"""

from __future__ import annotations

from collections.abc import Iterator

from jinja2 import TemplateSyntaxError, meta, nodes

from app.fields.templating import environment
from app.incident import Incident
from app.runbooks.models import Runbook

KNOWN: dict[str, frozenset[str]] = {
    "incident": frozenset(name for name, f in Incident.model_fields.items() if not f.exclude),
    "runbook": frozenset({"name", "description"}),
}


def templates(runbook: Runbook) -> Iterator[tuple[str, str]]:
    """Each template in the runbook, with where it is (`steps[0].ansible.extra_vars.x`)."""
    if runbook.concurrency:
        yield "concurrency", runbook.concurrency
    for index, step in enumerate(runbook.steps):
        for field, source in step.kind_of.templates(step.spec):
            yield f"steps[{index}].{step.kind}.{field}", source
    if runbook.verify is not None and runbook.verify.http is not None:
        yield "verify.http.url", runbook.verify.http.url


def problem(source: str) -> str | None:
    """What is wrong with one template, or None."""
    if "{" not in source:
        return None
    env = environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return f"template does not parse: {exc.message}"
    unknown = meta.find_undeclared_variables(tree) - set(KNOWN) - set(env.globals)
    if unknown:
        return f"template names {', '.join(sorted(unknown))}: templates see only incident, runbook"
    for name, attribute in _first_level(tree):
        if attribute not in KNOWN[name]:
            known = ", ".join(sorted(KNOWN[name]))
            return f"template uses {name}.{attribute}: not a field of {name} ({known})"
    return None


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

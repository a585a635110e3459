"""Which runbooks an incident matches.

Runbooks are grouped by the status they match, and each keeps its source, severity and
service filters as sets, so most runbooks are ruled out by a dictionary lookup before any
condition is evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from app.incident import Incident
from app.runbooks.models import Condition, Match, RunbookFile

_MISSING = object()


def field_value(context: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (`labels.instance`, `raw.alerts.0.status`), or _MISSING."""
    current: Any = context
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _same(value: Any, expected: Any) -> bool:
    if value == expected:
        return True
    # Labels are strings while YAML authors write `equals: 500`: compare scalars as text.
    scalar = (str, int, float, bool)
    return (
        isinstance(value, scalar) and isinstance(expected, scalar) and str(value) == str(expected)
    )


def holds(condition: Condition, context: dict[str, Any]) -> bool:
    value = field_value(context, condition.field)
    operator = condition.operator
    if operator == "exists":
        return (value is not _MISSING and value is not None) == condition.exists
    if value is _MISSING:
        return False
    if operator == "equals":
        return _same(value, condition.equals)
    if operator == "in":
        return any(_same(value, option) for option in condition.in_ or [])
    if operator == "contains":
        if isinstance(value, str):
            return str(condition.contains) in value
        if isinstance(value, list):
            return any(_same(item, condition.contains) for item in value)
        if isinstance(value, dict):
            return str(condition.contains) in value
        return False
    if operator == "matches":
        return (
            isinstance(value, str | int | float)
            and re.search(condition.matches or "", str(value)) is not None
        )
    raise AssertionError(f"unhandled operator {operator}")


def mismatch(match: Match, incident: Incident, context: dict[str, Any]) -> str | None:
    """Why the incident does not match, or None when it does."""
    if match.status is not None and incident.status != match.status:
        return f"status is {incident.status}, runbook wants {match.status}"
    if match.source is not None and incident.source not in match.source:
        return f"source {incident.source} not in {match.source}"
    if match.severity is not None and incident.severity not in match.severity:
        return f"severity {incident.severity} not in {match.severity}"
    if match.service is not None and incident.service not in match.service:
        return f"service {incident.service!r} not in {match.service}"
    for condition in match.all:
        if not holds(condition, context):
            return f"all: {_describe(condition)} does not hold"
    if match.any and not any(holds(c, context) for c in match.any):
        return "any: none of the conditions holds"
    for condition in match.none:
        if holds(condition, context):
            return f"none: {_describe(condition)} holds"
    return None


def explain(match: Match, context: dict[str, Any]) -> list[str]:
    """For an incident that matches: each filter and condition that decided it."""
    reasons = [
        f"{name} {context.get(name)!r} in {wanted}" if isinstance(wanted, list)
        else f"{name} is {wanted}"
        for name, wanted in (
            ("status", match.status),
            ("source", match.source),
            ("severity", match.severity),
            ("service", match.service),
        )
        if wanted is not None
    ]  # fmt: skip
    reasons += [f"all: {_describe(c)} holds" for c in match.all]
    reasons += [f"any: {_describe(c)} holds" for c in match.any if holds(c, context)]
    reasons += [f"none: {_describe(c)} does not hold" for c in match.none]
    return reasons or ["the runbook matches every incident"]


def _describe(condition: Condition) -> str:
    operator = condition.operator
    argument = condition.in_ if operator == "in" else getattr(condition, operator)
    return f"{condition.field} {operator} {argument!r}"


class Matcher:
    """An indexed runbook set, never changed after it is built; a reload builds a new one."""

    def __init__(self, runbooks: Sequence[RunbookFile]) -> None:
        self.loaded_at = datetime.now(UTC)
        self.runbooks = tuple(runbooks)
        self._by_name = {item.runbook.name: item for item in self.runbooks}
        self._by_status: dict[str | None, list[RunbookFile]] = {}
        for item in self.runbooks:
            self._by_status.setdefault(item.runbook.match.status, []).append(item)

    def get(self, name: str) -> RunbookFile | None:
        return self._by_name.get(name)

    def match(self, incident: Incident) -> list[RunbookFile]:
        candidates = self._by_status.get(incident.status, []) + self._by_status.get(None, [])
        if not candidates:
            return []
        context = incident.template_context()
        found = [c for c in candidates if mismatch(c.runbook.match, incident, context) is None]
        return sorted(found, key=lambda item: item.runbook.name)

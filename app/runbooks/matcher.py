"""Which runbooks an incident matches, and why (or why not)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import UTC, datetime
from typing import Any

from app.incident import Incident
from app.runbooks.models import Condition, Match, RunbookFile

_MISSING = object()
# A `matches` condition looks at this much of a value at most: RE2 is linear, and this
# bounds the line too (a 1 MiB title against many patterns).
MATCH_TEXT_MAX_CHARS = 64 * 1024


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
            and condition.pattern.search(str(value)[:MATCH_TEXT_MAX_CHARS]) is not None
        )
    raise AssertionError(f"unhandled operator {operator}")


def _failure(match: Match, incident: Incident, context: dict[str, Any]) -> str | None:
    """Which test the incident fails first, as a word (the text is made only when asked:
    matching skips it, and it is most of the cost of ruling a runbook out)."""
    if match.status is not None and incident.status != match.status:
        return "status"
    if match.source is not None and incident.source not in match.source:
        return "source"
    if match.severity is not None and incident.severity not in match.severity:
        return "severity"
    if match.service is not None and incident.service not in match.service:
        return "service"
    for index, condition in enumerate(match.all):
        if not holds(condition, context):
            return f"all.{index}"
    if match.any and not any(holds(c, context) for c in match.any):
        return "any"
    for index, condition in enumerate(match.none):
        if holds(condition, context):
            return f"none.{index}"
    return None


def matches(match: Match, incident: Incident, context: dict[str, Any]) -> bool:
    return _failure(match, incident, context) is None


def mismatch(match: Match, incident: Incident, context: dict[str, Any]) -> str | None:
    """Why the incident does not match, or None when it does."""
    failure = _failure(match, incident, context)
    if failure is None:
        return None
    if failure in ("status", "source", "severity", "service"):
        have, want = getattr(incident, failure), getattr(match, failure)
        if failure == "status":
            return f"status is {have}, runbook wants {want}"
        return (
            f"{failure} {have!r} not in {want}"
            if failure == "service"
            else (f"{failure} {have} not in {want}")
        )
    if failure == "any":
        return "any: none of the conditions holds"
    group, index = failure.split(".")
    condition = (match.all if group == "all" else match.none)[int(index)]
    return f"{group}: {_describe(condition)} {'does not hold' if group == 'all' else 'holds'}"


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


_SCALAR = (str, int, float, bool)


def _texts(condition: Condition) -> frozenset[str] | None:
    """The texts an `equals`/`in` text condition lets through; None for any other."""
    if condition.operator == "equals" and isinstance(condition.equals, str):
        return frozenset({condition.equals})
    if condition.operator == "in" and all(isinstance(o, str) for o in condition.in_ or []):
        return frozenset(condition.in_ or [])
    return None


def _index_key(match: Match) -> tuple[str, frozenset[str]] | None:
    """A field, and the values of it one of which the incident must have for this runbook
    to match: an `all` condition `equals`/`in` text (most selective, often the alert
    name), or `any` of such conditions on one field, else the service, source or severity
    filter. None: no such field."""
    for condition in match.all:
        texts = _texts(condition)
        if texts is not None:
            return condition.field, texts
    # `any` of text conditions on one field (`alertname` is A or B): one of their values.
    fields = {condition.field for condition in match.any}
    each = [_texts(condition) for condition in match.any]
    if len(fields) == 1 and all(texts is not None for texts in each):
        return fields.pop(), frozenset().union(*(t for t in each if t is not None))
    for name in ("service", "source", "severity"):
        wanted = getattr(match, name)
        if wanted is not None:
            return name, frozenset(wanted)
    return None


class _Index:
    """Runbooks by the value one of their fields must have. A text condition holds only
    when the incident's value is a scalar whose text is the expected text (`_same`), so
    looking up that text finds exactly the runbooks the condition lets through."""

    def __init__(self, runbooks: Sequence[RunbookFile]) -> None:
        self.by_field: dict[str, dict[str, list[RunbookFile]]] = {}
        self.rest: list[RunbookFile] = []
        for item in runbooks:
            key = _index_key(item.runbook.match)
            if key is None:
                self.rest.append(item)
                continue
            values = self.by_field.setdefault(key[0], {})
            for value in key[1]:
                values.setdefault(value, []).append(item)

    def candidates(self, context: dict[str, Any]) -> list[RunbookFile]:
        found = list(self.rest)
        for field, values in self.by_field.items():
            value = field_value(context, field)
            if isinstance(value, _SCALAR):
                found.extend(values.get(str(value), ()))
        return found


class Matcher:
    """An indexed runbook set, never changed after it is built; a reload builds a new one.

    Runbooks are grouped by the status they match, then indexed by one field they pin
    (`_index_key`), so matching one incident costs a few dictionary lookups plus the full
    conditions of the few runbooks that can match, however many runbooks are loaded."""

    def __init__(self, runbooks: Sequence[RunbookFile], *, signature: Hashable = None) -> None:
        self.loaded_at = datetime.now(UTC)
        # What the files looked like before they were read (see wiring.runbooks_signature).
        self.signature = signature
        self.runbooks = tuple(runbooks)
        self._by_name = {item.runbook.name: item for item in self.runbooks}
        by_status: dict[str | None, list[RunbookFile]] = {}
        for item in self.runbooks:
            by_status.setdefault(item.runbook.match.status, []).append(item)
        self._by_status = {status: _Index(items) for status, items in by_status.items()}

    def get(self, name: str) -> RunbookFile | None:
        return self._by_name.get(name)

    def match(self, incident: Incident) -> list[RunbookFile]:
        indexes = [self._by_status.get(incident.status), self._by_status.get(None)]
        if not any(indexes):
            return []
        context = incident.template_context()
        found = [
            item
            for index in indexes
            if index is not None
            for item in index.candidates(context)
            if matches(item.runbook.match, incident, context)
        ]
        return sorted(found, key=lambda item: item.runbook.name)

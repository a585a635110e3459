"""The matcher's index finds exactly what checking every runbook would find, for random
runbook sets and random incidents (hypothesis), including hostile values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from app.incident import Incident
from app.runbooks.matcher import Matcher, field_value, mismatch
from app.runbooks.models import Runbook, RunbookFile

FIELDS = ["labels.alertname", "service", "source", "severity", "raw.code", "raw.nested.0.x",
          "labels.missing"]  # fmt: skip
# A small vocabulary, so that runbooks and incidents often meet; text that looks like a
# number, a boolean or None, and numbers, to test the text comparison of `_same`.
WORDS = ["A", "web", "1", "1.0", "True", "None", "alertmanager", "critical", "{{ 7*7 }}", ""]
values = st.one_of(st.sampled_from(WORDS), st.sampled_from([1, 1.0, True, False, 0, None]))


@st.composite
def conditions(draw: Any, seen: dict[str, Any], field: str | None = None) -> dict[str, Any]:
    """A condition on `field` or a random one; often about a value an incident really has
    there, so that runbooks match often enough for the comparison to mean something."""
    field = field or draw(st.sampled_from(FIELDS))
    # The value itself, and as text (`equals: "1"` holds for the number 1).
    known = [seen[field], str(seen[field])] if seen.get(field) is not None else []
    value = st.sampled_from(known) if known and draw(st.booleans()) else values
    operator = draw(st.sampled_from(["equals", "equals", "in", "contains", "matches", "exists"]))
    argument = {
        "equals": value,
        "in": st.lists(st.one_of(value, values), min_size=1, max_size=3),
        "contains": value,
        "matches": st.sampled_from(["^A", "b", ".*", "1$"]),
        "exists": st.booleans(),
    }[operator]
    return {"field": field, operator: draw(argument)}


@st.composite
def runbooks(draw: Any, index: int, seen: dict[str, Any]) -> RunbookFile:
    match: dict[str, Any] = {
        "status": draw(st.sampled_from(["firing", "resolved", None])),
        "all": draw(st.lists(conditions(seen), max_size=2)),
        # Also several on one field (`alertname` is A or B), which the index can use.
        "any": draw(
            st.one_of(
                st.lists(conditions(seen), max_size=2),
                st.sampled_from(FIELDS).flatmap(
                    lambda f: st.lists(conditions(seen, f), max_size=3)
                ),
            )
        ),  # fmt: skip
        "none": draw(st.lists(conditions(seen), max_size=1)),
    }
    for name, options in (("source", ["alertmanager", "generic"]), ("service", ["web", "db"]),
                          ("severity", ["critical", "low"])):  # fmt: skip
        if draw(st.booleans()):
            match[name] = draw(st.lists(st.sampled_from(options), min_size=1, max_size=2))
    runbook = Runbook.model_validate(
        {"name": f"r{index}", "match": match, "steps": [{"ansible": {"playbook": "p"}}]}
    )
    return RunbookFile(runbook=runbook, file="f", line=index)


@st.composite
def incidents(draw: Any) -> Incident:
    word = st.sampled_from(WORDS)
    return Incident(
        source=draw(st.sampled_from(["alertmanager", "generic"])), delivery_id="d",
        event_type="e", status=draw(st.sampled_from(["firing", "resolved"])),
        title=draw(word), severity=draw(st.sampled_from(["critical", "low", "info"])),
        service=draw(st.one_of(st.none(), st.sampled_from(["web", "db", "None"]))),
        labels=draw(st.dictionaries(st.sampled_from(["alertname", "env"]), word, max_size=2)),
        fingerprint="f", received_at=datetime.now(UTC),
        raw={"code": draw(values), "nested": [{"x": draw(values)}]},
    )  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_the_index_finds_exactly_what_a_full_scan_finds(data: st.DataObject) -> None:
    arriving = data.draw(st.lists(incidents(), min_size=1, max_size=4))
    seen: dict[str, Any] = {}
    for incident in arriving:
        context = incident.template_context()
        seen |= {field: field_value(context, field) for field in FIELDS}
    seen = {k: v for k, v in seen.items() if isinstance(v, str | int | float | bool)}
    loaded = [data.draw(runbooks(i, seen)) for i in range(data.draw(st.integers(0, 12)))]
    matcher = Matcher(loaded)
    for incident in arriving:
        context = incident.template_context()
        scanned = sorted(
            item.runbook.name
            for item in loaded
            if mismatch(item.runbook.match, incident, context) is None
        )
        assert [item.runbook.name for item in matcher.match(incident)] == scanned
        event(f"matched {min(len(scanned), 3)}+")


def _incident(**overrides: Any) -> Incident:
    fields: dict[str, Any] = {
        "source": "generic", "delivery_id": "d", "event_type": "e", "status": "firing",
        "title": "t", "severity": "low", "fingerprint": "f", "received_at": datetime.now(UTC),
    }  # fmt: skip
    return Incident(**(fields | overrides))


@pytest.mark.parametrize(
    ("condition", "incident", "expected"),
    [
        ({"field": "raw.code", "equals": "1"}, _incident(raw={"code": 1}), True),
        ({"field": "raw.code", "equals": "True"}, _incident(raw={"code": True}), True),
        ({"field": "raw.code", "in": ["x", "1.5"]}, _incident(raw={"code": 1.5}), True),
        ({"field": "raw.code", "in": ["x", "y"]}, _incident(raw={"code": "y"}), True),
        ({"field": "raw.code", "equals": "1"}, _incident(raw={"code": [1]}), False),
        ({"field": "service", "equals": "None"}, _incident(service=None), False),
        ({"field": "labels.a", "equals": "b"}, _incident(labels={}), False),
    ],
)
def test_index_edge_cases(condition: dict[str, Any], incident: Incident, expected: bool) -> None:
    runbook = Runbook.model_validate(
        {"name": "r", "match": {"all": [condition]}, "steps": [{"ansible": {"playbook": "p"}}]}
    )
    found = Matcher([RunbookFile(runbook=runbook, file="f", line=1)]).match(incident)
    assert bool(found) is expected

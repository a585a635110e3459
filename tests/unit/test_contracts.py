"""The checked-in cut-outs of the platforms' published OpenAPI files stay exact, and are
real schemas (they refuse a body the platform would refuse)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.contracts import CHECKED, SHARED, contract, extract, problems, request_schema


@pytest.mark.parametrize("file", sorted(CHECKED))
def test_the_cut_out_matches_the_published_file(file: str) -> None:
    if not (SHARED / file).exists():
        pytest.skip(f"{SHARED / file} is not here to compare with (the cut-out is still used)")
    assert extract(json.loads((SHARED / file).read_text()), CHECKED[file]) == contract(file)


def test_the_schemas_refuse_what_the_platforms_refuse() -> None:
    enqueue = request_schema("pagerduty-events-v2-openapi.json", "/enqueue")
    good: dict[str, Any] = {"routing_key": "R" * 32, "event_action": "trigger",
            "payload": {"summary": "s", "source": "remediator", "severity": "critical"}}  # fmt: skip
    assert problems(enqueue, good) == []
    assert problems(enqueue, {**good, "event_action": "explode"})
    assert problems(enqueue, {**good, "payload": {**good["payload"], "component": None}})
    alert = request_schema("rootly-openapi.json", "/v1/alerts")
    assert problems(alert, {"data": {"type": "alerts", "attributes": {"summary": "x", "bogus": 1}}})

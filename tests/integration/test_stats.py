"""GET /api/stats and the time-to-remediate histogram on SQLite and PostgreSQL: a generated
history, counted by hand here, is what the API and /metrics answer."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.store.stats import REMEDIATION_BUCKETS
from tests.support.history import Past, make_history, write_history
from tests.support.instant import instant_step
from tests.support.service import Api, alert, bearer, runbook

# The instant step kind: what runs is not the subject here (tests.support.instant).
pytestmark = pytest.mark.usefixtures("instant_kind")


def rank(values: list[float], quantile: float) -> float | None:
    ordered = sorted(values)
    return ordered[math.ceil(quantile * len(ordered)) - 1] if ordered else None


def by_hand(history: list[Past], name: str) -> dict[str, Any]:
    rows = [p for p in history if name in ("*", p.runbook)]
    runs = [p for p in rows if p.status not in ("refused", "shadowed", "diagnosed")]
    won = [p for p in rows if p.status == "succeeded"]
    took = [round(p.took_s + (p.started_before_s or 0.0), 3) for p in won]
    waited = [p.approved_after_s for p in rows if p.approved_after_s is not None]
    escalated = sum(p.escalated for p in rows)
    return {
        "runbook": name,
        "executions": len(rows),
        "runs": len(runs),
        "succeeded": len(won),
        "failed": sum(p.status in ("failed", "timed_out", "interrupted") for p in rows),
        "refused": sum(p.status == "refused" for p in rows),
        "stopped": sum(p.status in ("cancelled", "rejected") for p in rows),
        "shadowed": sum(p.status == "shadowed" for p in rows),
        "success_rate": round(len(won) / len(runs), 4),
        "escalated": escalated,
        "escalation_rate": round(escalated / len(rows), 4),
        "pages_avoided": sum(not p.escalated for p in won),
        "time_to_remediate_s": {
            "count": len(took),
            "p50": rank(took, 0.5),
            "p90": rank(took, 0.9),
        },  # fmt: skip
        "approval_wait_s": {
            "count": len(waited),
            "p50": rank(waited, 0.5),
            "p90": rank(waited, 0.9),
        },  # fmt: skip
    }


def close(answer: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, the seconds to the millisecond (the database does the subtraction)."""
    for key, value in expected.items():
        if key.endswith("_s"):
            got = answer[key]
            assert got["count"] == value["count"], key
            for q in ("p50", "p90"):
                assert math.isclose(got[q], value[q], abs_tol=0.002), (key, q, got, value)
        else:
            assert answer[key] == value, (key, answer[key], value)


def test_stats_match_a_count_by_hand(make_api: Callable[..., Api], database_url: str) -> None:
    api = make_api([], database_url=database_url)
    now = datetime.now(UTC)
    history = make_history(300, now=now)
    write_history(api.services.db, history)
    window = {"since": (now - timedelta(days=30)).isoformat()}
    answer = api.client.get("/api/stats", params=window, headers=bearer("dashboards"))
    assert answer.status_code == 200, answer.text
    stats = answer.json()
    close(stats["overall"], by_hand(history, "*"))
    assert [r["runbook"] for r in stats["runbooks"]] == ["clear-cache", "restart-web",
                                                         "revert-release"]  # fmt: skip
    for row in stats["runbooks"]:
        close(row, by_hand(history, row["runbook"]))

    # A window and one runbook: only what was created in it.
    since = now - timedelta(days=3)
    recent = [p for p in history if p.created_at >= since]
    one = api.client.get("/api/stats", params={"since": since.isoformat(), "runbook": "restart-web"},
                         headers=bearer("dashboards")).json()  # fmt: skip
    close(one["overall"], by_hand(recent, "restart-web") | {"runbook": "*"})
    assert [r["runbook"] for r in one["runbooks"]] == ["restart-web"]

    # Prometheus: the same durations as a histogram, per runbook, over everything stored.
    metrics = api.client.get("/metrics", headers=api.auth).text
    for name in ("clear-cache", "restart-web", "revert-release"):
        took = [p.took_s + (p.started_before_s or 0) for p in history
                if p.runbook == name and p.status == "succeeded"]  # fmt: skip
        count = f'remediator_time_to_remediate_seconds_count{{runbook="{name}"}} {len(took)}.0'
        assert count in metrics
        bound = REMEDIATION_BUCKETS[5]
        within = sum(t <= bound for t in took)
        bucket = f'remediator_time_to_remediate_seconds_bucket{{le="{bound}",runbook="{name}"}}'
        assert f"{bucket} {within}.0" in metrics, bucket


def test_stats_refuse_an_empty_window_and_an_unknown_caller(
    make_api: Callable[..., Api],
) -> None:
    api = make_api([])
    assert api.client.get("/api/stats").status_code == 401
    now = datetime.now(UTC)
    backwards = {"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()}
    answer = api.client.get("/api/stats", params=backwards, headers=api.auth)
    assert answer.status_code == 400 and answer.json()["error"] == "bad_request"
    empty = api.client.get("/api/stats", headers=api.auth).json()
    assert empty["runbooks"] == [] and empty["overall"]["executions"] == 0
    assert empty["overall"]["success_rate"] is None
    assert empty["overall"]["time_to_remediate_s"] == {"count": 0, "p50": None, "p90": None}


def test_a_real_run_counts_from_the_platforms_start_and_its_approval(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    step = instant_step(tmp_path / "runs")
    api = make_api([runbook("fix", "Fix", step, approval=True)])
    started = datetime.now(UTC) - timedelta(seconds=90)
    payload = alert("Fix")
    payload["alerts"][0]["startsAt"] = started.isoformat()  # the platform says when it began
    execution_id = api.alertmanager(payload).json()["executions"][0]
    time.sleep(0.5)
    approved = api.client.post(f"/api/executions/{execution_id}/approve", json={"reason": "ok"},
                               headers=bearer("bob"))  # fmt: skip
    assert approved.status_code == 200, approved.text
    done = api.wait(execution_id)
    assert done["status"] == "succeeded"
    stats = api.client.get("/api/stats", headers=api.auth).json()["overall"]
    assert (stats["succeeded"], stats["pages_avoided"], stats["escalated"]) == (1, 1, 0)
    took = stats["time_to_remediate_s"]["p50"]
    ended = datetime.fromisoformat(done["finished_at"])
    assert math.isclose(took, (ended - started).total_seconds(), abs_tol=0.01)
    assert 90 <= took < 150
    waited = stats["approval_wait_s"]["p50"]
    assert 0.5 <= waited < took - 90

"""Diagnostics through the real app: they run first, for real, in every mode (a shadow
run and a run that waits for approval look before anything else), their findings are
posted once (a `remediation.diagnosed` call), and every later notice of the execution
carries them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.instant import instant_step
from tests.support.service import Api, Recorder, alert

pytestmark = pytest.mark.usefixtures("instant_kind")


def _book(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    look = instant_step(tmp_path / "looked", values={"at": "{{ incident.labels.instance }}"},
                        outputs={"lag_s": 12, "seen": "{{ incident.labels.instance }}"})  # fmt: skip
    return {
        "name": "look-then-act",
        "match": {"all": [{"field": "labels.alertname", "equals": "PrimaryDown"}]},
        "diagnose": {"steps": [{"id": "lag", **look}], "post_to": ["webhook"]},
        "steps": [{"when": "steps.lag.outputs.lag_s < 30", **instant_step(tmp_path / "acted")}],
        "notify_on_success": ["webhook"],
        **extra,
    }


def _start(make_api: Callable[..., Api], recorder: Recorder, book: dict[str, Any]) -> Api:
    return make_api([book], escalation={"webhook": {"url": recorder.url}})


def _said(recorder: Recorder, count: int) -> list[dict[str, Any]]:
    return [request.json() for request in recorder.wait_for(count)]


def test_a_shadow_run_looks_for_real_and_posts_what_it_found(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path
) -> None:
    api = _start(make_api, recorder, _book(tmp_path, mode="shadow"))
    done = api.wait(api.alertmanager(alert("PrimaryDown", instance="db-2")).json()["executions"][0])
    assert done["status"] == "shadowed", done
    assert [(s["phase"], s["status"]) for s in done["steps"]] == [
        ("diagnose", "succeeded"), ("steps", "would_run")]  # fmt: skip
    assert json.loads((tmp_path / "looked").read_text()) == {"at": "db-2"}  # it ran
    assert not (tmp_path / "acted").exists()  # the action only dry-ran
    [diagnosed] = _said(recorder, 1)
    assert diagnosed["type"] == "remediation.diagnosed" and diagnosed["reason"] == "diagnosed"
    assert diagnosed["execution"]["steps"][0]["outputs"] == {"lag_s": 12, "seen": "db-2"}


def test_a_run_that_needs_approval_looks_first_and_its_success_carries_the_findings(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path
) -> None:
    api = _start(make_api, recorder, _book(tmp_path, approval=True, escalate=["webhook"]))
    execution_id = api.alertmanager(alert("PrimaryDown", instance="db-2")).json()["executions"][0]
    waiting = api.wait(execution_id, until=lambda e: e["status"] == "waiting_approval")
    assert [s["status"] for s in waiting["steps"]] == ["succeeded", "pending"]
    assert (tmp_path / "looked").exists() and not (tmp_path / "acted").exists()
    diagnosed, asked = _said(recorder, 2)
    assert (diagnosed["reason"], asked["reason"]) == ("diagnosed", "waiting_approval")
    assert api.act(execution_id, "approve", by="bob").status_code == 200
    done = api.wait(execution_id)
    assert done["status"] == "succeeded", done
    assert (tmp_path / "acted").exists()
    remediated = _said(recorder, 3)[2]
    assert remediated["reason"] == "remediated"
    # The findings reach every later notice: the success's execution, with the outputs.
    assert remediated["execution"]["steps"][0]["outputs"]["lag_s"] == 12
    assert [e["reason"] for e in done["escalations"]] == [
        "diagnosed", "waiting_approval", "remediated"]  # fmt: skip


def test_a_failed_diagnostic_is_a_finding_and_the_runbook_goes_on(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path
) -> None:
    book = _book(tmp_path)
    book["diagnose"]["steps"].append({"id": "broken", **instant_step(tmp_path / "x", fail=True)})
    book["steps"] = [
        {"when": "steps.broken.status == 'failed'", **instant_step(tmp_path / "acted")}
    ]
    api = _start(make_api, recorder, book)
    done = api.wait(api.alertmanager(alert("PrimaryDown", instance="db-1")).json()["executions"][0])
    assert done["status"] == "succeeded", (done["error"], done["steps"])
    assert [s["status"] for s in done["steps"]] == ["succeeded", "failed", "succeeded"]
    assert [said["reason"] for said in _said(recorder, 2)] == ["diagnosed", "remediated"]

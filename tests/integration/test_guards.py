"""Remediation guards and lifecycle through the real app, on SQLite and on PostgreSQL:
storms attach to the open execution, cooldown and rate limit refuse (and escalate once),
the concurrency key serialises, verification, approval and cancel."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.instant import instant_step
from tests.support.service import Api, Recorder, alert, ansible_step, runbook

pytestmark = [pytest.mark.ansible, pytest.mark.usefixtures("instant_kind")]


def appender(dest: Path, pause: float = 0, gate: Path | None = None) -> dict[str, Any]:
    """One line per run (the instant kind: the guards are the subject here, not Ansible;
    a cancel below stops a real playbook's process tree)."""
    return instant_step(dest, pause=pause, gate=str(gate) if gate else None)


def runs(dest: Path) -> int:
    return len(dest.read_text().splitlines()) if dest.exists() else 0


def test_storm_for_one_incident_makes_one_remediation_and_one_escalation(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path, database_url: str
) -> None:
    dest, gate = tmp_path / "runs", tmp_path / "gate"
    api = make_api(
        [runbook("storm", "Storm", appender(dest, gate=gate), cooldown="10m",
                 escalate=["webhook"])],
        database_url=database_url,
        escalation={"webhook": {"url": recorder.url}},
    )  # fmt: skip
    # The remediation holds until the storm has arrived, however long that takes here.
    answers = [api.alertmanager(alert("Storm", instance=f"{n}")).json() for n in range(25)]
    gate.touch()
    first = answers[0]["executions"][0]
    assert all(a["executions"] == [] and a["attached"] == [first] for a in answers[1:])
    done = api.wait(first)
    assert done["status"] == "succeeded" and len(done["attached"]) == 24
    # The incident keeps firing after the remediation: refused by the cooldown once, paged
    # once, and the later alerts fold into that one refusal.
    later = [api.alertmanager(alert("Storm", instance=f"late{n}")).json() for n in range(5)]
    [refused_id] = later[0]["executions"]
    assert all(a["executions"] == [] and a["attached"] == [refused_id] for a in later[1:])
    refused = api.wait(refused_id)
    assert (refused["status"], refused["guard"]) == ("refused", "cooldown")
    assert len(refused["escalations"]) == 1 and len(refused["attached"]) == 4
    assert runs(dest) == 1
    listed = {e["id"]: e["attached"] for e in api.executions(runbook="storm")}
    assert listed == {first: 24, refused_id: 4}
    assert [r.json()["reason"] for r in recorder.wait_for(1)] == ["refused"]


def test_rate_limit_caps_runs_across_keys(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path, database_url: str
) -> None:
    dest = tmp_path / "runs"
    api = make_api(
        [
            runbook(
                "capped",
                "Cap",
                appender(dest),
                max_runs={"count": 2, "per": "1h"},
                escalate=["webhook"],
            )
        ],  # fmt: skip
        database_url=database_url,
        escalation={"webhook": {"url": recorder.url}},
    )
    answers = [api.alertmanager(alert("Cap", fingerprint=f"f{n}")).json() for n in range(5)]
    ids = [a["executions"][0] for a in answers[:3]]
    # Alerts past the limit fold into the window's one refusal.
    assert all(a["executions"] == [] and a["attached"] == [ids[2]] for a in answers[3:])
    final = [api.wait(i) for i in ids]
    assert [f["status"] for f in final] == ["succeeded"] * 2 + ["refused"]
    assert final[2]["guard"] == "rate_limit" and "max_runs is 2" in final[2]["error"]
    assert len(final[2]["attached"]) == 2
    assert sum(len(f["escalations"]) for f in final) == 1
    assert runs(dest) == 2


def test_concurrency_key_runs_one_at_a_time(
    make_api: Callable[..., Api], tmp_path: Path, database_url: str
) -> None:
    api = make_api(
        [
            runbook(
                "serial",
                "Serial",
                appender(tmp_path / "runs", pause=1),
                concurrency="{{ incident.labels.service }}",
            )
        ],  # fmt: skip
        database_url=database_url,
        workers=3,
    )
    ids = [
        api.alertmanager(alert("Serial", fingerprint=f"f{n}", service="web")).json()["executions"][
            0
        ]
        for n in range(3)
    ]
    final = sorted((api.wait(i) for i in ids), key=lambda e: e["started_at"])
    assert all(f["status"] == "succeeded" for f in final)
    for earlier, later in zip(final, final[1:], strict=False):
        assert datetime.fromisoformat(earlier["finished_at"]) <= datetime.fromisoformat(
            later["started_at"]
        )


def test_verify_succeeds_when_the_alert_resolves(
    make_api: Callable[..., Api], tmp_path: Path, database_url: str
) -> None:
    api = make_api(
        [runbook("v", "Verify", appender(tmp_path / "runs"), verify={"resolved_within": "1m"})],
        database_url=database_url,
    )
    execution_id = api.alertmanager(alert("Verify")).json()["executions"][0]
    api.wait(execution_id, until=lambda e: e["status"] == "verifying")
    assert api.alertmanager(alert("Verify", status="resolved")).status_code == 202
    done = api.wait(execution_id)
    assert done["status"] == "succeeded" and done["resolved_at"] is not None


def test_verify_fails_and_escalates_when_the_alert_keeps_firing(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path, database_url: str
) -> None:
    api = make_api(
        [
            runbook(
                "v",
                "Verify",
                appender(tmp_path / "runs"),
                verify={"resolved_within": "1s"},
                escalate=["webhook"],
            )
        ],  # fmt: skip
        database_url=database_url,
        escalation={"webhook": {"url": recorder.url}},
    )
    done = api.wait(api.alertmanager(alert("Verify")).json()["executions"][0])
    assert done["status"] == "failed"
    assert "remediation ran but the alert did not resolve" in done["error"]
    assert recorder.wait_for(1)[0].json()["reason"] == "verify_failed"


def test_verify_by_http_check(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path, database_url: str
) -> None:
    recorder.replies = [503, 503, 200]
    check = {"url": recorder.url, "expect_status": 200, "within": "30s", "interval": "0.2s"}
    api = make_api(
        [runbook("v", "Verify", appender(tmp_path / "runs"), verify={"http": check})],
        database_url=database_url,
        verify_allowed_hosts=["127.0.0.1"],
    )
    done = api.wait(api.alertmanager(alert("Verify")).json()["executions"][0])
    assert done["status"] == "succeeded"
    assert len(recorder.requests) == 3


def test_verify_never_reaches_loopback_unless_allowed(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path, database_url: str
) -> None:
    check = {"url": recorder.url, "within": "30s", "interval": "0.2s"}
    api = make_api(
        [runbook("v", "Verify", appender(tmp_path / "runs"), verify={"http": check})],
        database_url=database_url,
    )
    done = api.wait(api.alertmanager(alert("Verify")).json()["executions"][0])
    assert done["status"] == "failed"
    assert "resolves to a loopback address" in done["error"]
    assert recorder.requests == []


def test_approval_approve_runs_it(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path, database_url: str
) -> None:
    dest = tmp_path / "runs"
    api = make_api(
        [runbook("a", "Approve", appender(dest), approval=True, escalate=["webhook"])],
        database_url=database_url,
        escalation={"webhook": {"url": recorder.url}},
    )
    execution_id = api.alertmanager(alert("Approve")).json()["executions"][0]
    assert api.execution(execution_id)["status"] == "waiting_approval"
    assert recorder.wait_for(1)[0].json()["reason"] == "waiting_approval"
    assert runs(dest) == 0
    answer = api.act(execution_id, "approve", by="alice", reason="looked at the graphs")
    assert answer.status_code == 200, answer.text
    done = api.wait(execution_id)
    assert done["status"] == "succeeded" and runs(dest) == 1
    assert [(a["action"], a["by"], a["reason"]) for a in done["actions"]] == [
        ("approve", "alice", "looked at the graphs")
    ]
    again = api.act(execution_id, "approve")
    assert again.status_code == 409 and again.json()["error"] == "conflict"


def test_approval_reject_and_timeout_escalate(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path, database_url: str
) -> None:
    dest = tmp_path / "runs"
    # One waits long enough to be rejected on a loaded machine, one times out at once.
    api = make_api(
        [
            runbook("a", "Approve", appender(dest), approval=True, approval_timeout="2m",
                    escalate=["webhook"]),
            runbook("b", "Ignored", appender(dest), approval=True, approval_timeout="1s",
                    escalate=["webhook"]),
        ],
        database_url=database_url,
        escalation={"webhook": {"url": recorder.url}},
    )  # fmt: skip
    rejected = api.alertmanager(alert("Approve", fingerprint="r")).json()["executions"][0]
    assert api.act(rejected, "reject", by="bob", reason="not during the deploy").status_code == 200
    assert api.execution(rejected)["error"] == "rejected by bob: not during the deploy"
    ignored = api.alertmanager(alert("Ignored", fingerprint="t")).json()["executions"][0]
    timed_out = api.wait(ignored)
    assert timed_out["status"] == "timed_out" and "nobody approved" in timed_out["error"]
    reasons = sorted(r.json()["reason"] for r in recorder.wait_for(4))
    assert reasons == ["approval_timeout", "rejected", "waiting_approval", "waiting_approval"]
    assert runs(dest) == 0
    assert api.act("no-such-id", "approve").status_code == 404
    # Who acts is the token's identity: a body naming someone else is refused, so an
    # old client that typed a name learns it is not used.
    someone_else = api.client.post(f"/api/executions/{ignored}/cancel", json={"by": "cto"},
                                   headers=api.auth)  # fmt: skip
    assert someone_else.status_code == 422, someone_else.text
    assert someone_else.json()["error"] == "identity_mismatch"


def sleepers(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_cancel_stops_a_running_step_and_a_queued_one(
    make_api: Callable[..., Api], tmp_path: Path, database_url: str
) -> None:
    # The hang playbook's sleep, so the test can look for its process; this worker's own
    # (the test runs on SQLite and PostgreSQL at once, on two workers).
    marker = str(7000 + os.getpid() % 1000)
    api = make_api(
        [
            runbook(
                "h",
                "Hang",
                ansible_step("hang.yml", seconds=marker),
                concurrency="{{ incident.labels.service }}",
            )
        ],  # fmt: skip
        database_url=database_url,
        escalation={},
    )
    running = api.alertmanager(alert("Hang", fingerprint="a", service="s")).json()["executions"][0]
    queued = api.alertmanager(alert("Hang", fingerprint="b", service="s")).json()["executions"][0]
    api.wait(
        running, until=lambda e: e["steps"][0]["status"] == "running" and bool(sleepers(marker))
    )
    assert api.act(queued, "cancel", by="bob").status_code == 200
    assert api.execution(queued)["status"] == "cancelled"
    assert api.act(running, "cancel", by="bob", reason="wrong host").status_code == 200
    done = api.wait(running, timeout=30)
    assert done["status"] == "cancelled" and "bob: wrong host" in done["error"]
    assert done["escalations"] == []
    assert not sleepers(marker)

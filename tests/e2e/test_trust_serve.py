"""Earning trust, through real `remediator serve` processes and real ansible-playbook and
terraform: a shadow run dry-runs against the real hosts and state and changes nothing; a
breaker stops a failing runbook and a responder resets it; a pause (thrown on one replica)
turns every replica's new runs into shadows; a freeze active now holds a runbook for
approval; a budget refuses the run that would overspend it, once escalated, and two
replicas racing for its last units never both get one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.instant import instant_step
from tests.support.servers import Server, start_server
from tests.support.service import (
    Recorder,
    alert,
    bearer,
    runbook,
    write_config,
)
from tests.support.terraform_repo import (
    CANARY,
    TERRAFORM,
    requires_terraform,
    terraform_repo,
)

pytestmark = [pytest.mark.server, pytest.mark.ansible]


def touch(dest: Path, limit: str = "{{ incident.labels.instance }}") -> dict[str, Any]:
    """Writes a file per host it runs on (check mode: writes nothing, says it would)."""
    return {"ansible": {"playbook": "touch-hosts.yml", "inventory": "inventories/fleet.ini",
                        "limit": limit, "extra_vars": {"dest": str(dest)}, "timeout": "60s"}}  # fmt: skip


def marker(out: Path) -> dict[str, Any]:
    """A file per host named in the alert; a shadow writes nothing (the instant kind, for
    the switches' tests: what a shadow of Ansible does is tested above)."""
    return instant_step(f"{out}/{{{{ incident.labels.instance }}}}")


def fire(server: Server, name: str, fingerprint: str, **labels: str) -> str:
    answer = server.alertmanager(alert(name, fingerprint=fingerprint, **labels))
    assert answer.status_code == 202, answer.text
    [execution_id] = answer.json()["executions"] or answer.json()["attached"]
    return str(execution_id)


def post(server: Server, path: str, who: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base}/api{path}", json=body, headers=bearer(who), timeout=30)


def get(server: Server, path: str, who: str = "dashboards", **params: Any) -> Any:
    answer = httpx.get(f"{server.base}{path}", headers=bearer(who), params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json() if path.startswith("/api") else answer.text


@pytest.fixture
def hooked(tmp_path: Path, recorder: Recorder) -> Iterator[Callable[..., Server]]:
    """`hooked(runbook, **config)`: a server whose `webhook` target is the recorder."""
    started: list[Server] = []

    def start(book: dict[str, Any], **overrides: Any) -> Server:
        config = write_config(tmp_path, [book], escalation={"webhook": {"url": recorder.url}},
                              **overrides)  # fmt: skip
        started.append(start_server(config))
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def test_a_shadow_run_checks_the_real_hosts_changes_nothing_and_tells_a_channel(
    hooked: Callable[..., Server], out: Path, recorder: Recorder
) -> None:
    book = runbook("clear-cache", "CacheFull", touch(out), mode="shadow",
                   notify_on_shadow=["webhook"], escalate=["webhook"])  # fmt: skip
    server = hooked(book)
    [execution] = server.wait_all_final([fire(server, "CacheFull", "fp-1", instance="web-1")])
    assert execution["status"] == "shadowed", execution
    assert execution["mode"] == "shadow" and "mode shadow" in execution["mode_reason"]
    assert list(out.iterdir()) == []  # check mode wrote nothing
    [step] = execution["steps"]
    assert step["status"] == "would_run"
    assert step["detail"]["shadow"] == {"outcome": "would change"}
    assert step["detail"]["changed"] == ["web-1"]
    assert step["detail"]["summary"] == "would change: 1 host(s) would change: web-1"
    assert "--- before" in step["output_tail"] or "changed: [web-1]" in step["output_tail"]
    [notice] = [r.json() for r in recorder.wait_for(1)]
    assert notice["type"] == "remediation.shadowed" and notice["reason"] == "shadowed"
    assert notice["summary"].startswith("[remediator] would have run clear-cache for")
    assert "1 host(s) would change: web-1" in notice["summary"]
    # A shadow is no page: not counted as escalated, nothing else sent.
    assert [e["reason"] for e in execution["escalations"]] == ["shadowed"]


def test_a_step_that_is_not_check_safe_is_rendered_only_and_its_payload_still_checked(
    tmp_path: Path, out: Path
) -> None:
    unsafe = touch(out)
    unsafe["ansible"]["check_mode"] = False
    server = start_server(write_config(tmp_path, [runbook("restart", "Restart", unsafe,
                                                          mode="shadow")]))  # fmt: skip
    try:
        fine, hostile = server.wait_all_final([
            fire(server, "Restart", "fp-1", instance="web-2"),
            fire(server, "Restart", "fp-2", instance="all"),
        ])  # fmt: skip
        assert fine["status"] == "shadowed"
        assert fine["steps"][0]["detail"]["shadow"] == {"outcome": "rendered only"}
        assert "not check-safe" in fine["steps"][0]["detail"]["summary"]
        # The payload's checks run in a shadow as in a real run: it would have failed.
        assert hostile["status"] == "shadowed" and hostile["escalations"] == []
        assert hostile["error"].startswith("would fail: template: ")
        assert "would select every host" in hostile["error"]
        assert list(out.iterdir()) == []
    finally:
        server.close()


@requires_terraform
def test_a_shadow_terraform_revert_plans_and_evaluates_the_guard_but_never_applies(
    tmp_path: Path,
) -> None:
    repo = terraform_repo(tmp_path, bad_extra=CANARY)
    service = tmp_path / "service"
    service.mkdir()
    books = [
        runbook("revert", "WebReleaseErrors", {"terraform": {"workdir": "web",
                "revert_to": "previous", "max_destroy": 5}}, mode="shadow"),
        runbook("revert-guarded", "Guarded", {"terraform": {"workdir": "web",
                "revert_to": "previous"}}, mode="shadow"),
    ]  # fmt: skip
    server = start_server(write_config(service, books, terraform_dir=str(repo.terraform_dir),
                                       terraform_bin=TERRAFORM))  # fmt: skip
    try:
        would, guarded = server.wait_all_final([
            fire(server, "WebReleaseErrors", "fp-1", service="web"),
            fire(server, "Guarded", "fp-2", service="web"),
        ])  # fmt: skip
        assert would["status"] == guarded["status"] == "shadowed"
        detail = would["steps"][0]["detail"]
        assert detail["shadow"] == {"outcome": "would change"}
        assert detail["plan"]["destroy"] == ["terraform_data.canary"]
        assert detail["summary"].startswith(f"would change: revert web to {repo.good[:12]}")
        refused = guarded["steps"][0]["detail"]
        assert refused["shadow"] == {"outcome": "would be refused"}
        assert "would destroy or replace 1 resource(s)" in refused["summary"]
        assert refused["guard"] == "max_destroy"
        # Nothing applied, no lock left, and no version recorded as good.
        assert repo.state()["terraform_data.web"] == "release-2-broken"
        assert repo.state()["terraform_data.canary"] == "canary"
        assert not repo.locked()
        assert server.api("/terraform/versions", workdir="web") == []
    finally:
        server.close()


def test_three_failures_trip_the_breaker_once_and_a_responder_resets_it(
    hooked: Callable[..., Server], out: Path, recorder: Recorder
) -> None:
    """The product's default breaker (3 failures within 1h, then approve), on by default."""
    book = runbook("fragile", "Fragile", touch(out), escalate=["webhook"])
    server = hooked(book, breaker={})
    # Not a host of the inventory: each run fails before anything runs.
    failed = server.wait_all_final(
        [fire(server, "Fragile", f"fp-{i}", instance="nosuch") for i in range(3)]
    )
    assert [e["status"] for e in failed] == ["failed"] * 3
    held = server.api(f"/executions/{fire(server, 'Fragile', 'fp-3', instance='web-1')}")
    assert held["status"] == "waiting_approval" and held["mode"] == "approve"
    assert "breaker of fragile is open" in held["mode_reason"]
    reasons = [r.json()["reason"] for r in recorder.wait_for(5)]
    assert reasons.count("breaker_tripped") == 1 and reasons.count("failed") == 3
    [info] = [r for r in get(server, "/api/runbooks")["runbooks"]
              if r["runbook"]["name"] == "fragile"]  # fmt: skip
    assert info["breaker_open"] is True
    assert 'remediator_breaker_open{runbook="fragile"} 1.0' in get(server, "/metrics")
    breaker = get(server, "/api/runbooks/fragile/breaker")
    assert breaker["open"] and sorted(breaker["failures"]) == sorted(e["id"] for e in failed)

    assert post(server, "/runbooks/fragile/breaker/reset", "dashboards",
                {"reason": "fixed"}).status_code == 403  # fmt: skip
    reset = post(server, "/runbooks/fragile/breaker/reset", "alice", {"reason": "inventory fixed"})
    assert reset.status_code == 200, reset.text
    assert reset.json()["open"] is False and reset.json()["reset_by"] == "alice"
    [after] = server.wait_all_final([fire(server, "Fragile", "fp-4", instance="web-1")])
    assert after["status"] == "succeeded" and after["mode"] == "auto"
    audit = get(server, "/api/audit", "ops-admin", identity="alice")
    assert audit[0]["route"] == "/api/runbooks/{name}/breaker/reset"
    assert audit[0]["target"] == "fragile" and audit[0]["outcome"] == "ok"


def test_a_freeze_active_now_holds_a_runbook_for_approval_and_simulate_names_it(
    tmp_path: Path, out: Path
) -> None:
    now = datetime.now(UTC)
    freezes = [
        {"name": "year-end", "start": (now - timedelta(hours=1)).isoformat(),
         "end": (now + timedelta(hours=1)).isoformat(), "runbooks": ["clear-*"], "mode": "approve"},
        {"name": "fridays", "schedule": "0 18 * * FRI", "duration": "64h",
         "timezone": "Europe/Berlin", "runbooks": ["other"], "mode": "shadow"},
    ]  # fmt: skip
    books = [runbook("clear-cache", "CacheFull", touch(out)), runbook("other", "Other", touch(out))]
    server = start_server(write_config(tmp_path, books, freezes=freezes))
    try:
        held = server.api(f"/executions/{fire(server, 'CacheFull', 'fp-1', instance='web-1')}")
        assert held["status"] == "waiting_approval", held
        assert held["mode_reason"].startswith("change freeze year-end until")
        state = get(server, "/api/automation")
        shown = {f["name"]: f for f in state["freezes"]}
        assert shown["year-end"]["active"] is True
        assert shown["fridays"]["mode"] == "shadow" and shown["fridays"]["start"]
        payload = alert("CacheFull", fingerprint="fp-2", instance="web-1")
        simulated = httpx.post(f"{server.base}/api/simulate", headers=bearer("alice"),
                               json={"source": "alertmanager", "payload": payload}, timeout=30)  # fmt: skip
        assert simulated.status_code == 200, simulated.text
        [matched] = simulated.json()["incidents"][0]["matched"]
        assert matched["mode"] == "approve" and matched["mode_decided_by"] == "freeze"
        assert "year-end" in matched["mode_why"]
    finally:
        server.close()


def test_a_budget_lets_two_hosts_run_refuses_the_third_and_pages_once(
    hooked: Callable[..., Server], out: Path, recorder: Recorder
) -> None:
    book = runbook("touch", "Touch", touch(out), escalate=["webhook"],
                   budget={"targets": 2, "per": "1h"})  # fmt: skip
    server = hooked(book)
    ran = server.wait_all_final([fire(server, "Touch", "fp-1", instance="web-1"),
                                 fire(server, "Touch", "fp-2", instance="web-2")])  # fmt: skip
    assert [e["status"] for e in ran] == ["succeeded", "succeeded"]
    assert [e["targets"] for e in ran] == [["web-1"], ["web-2"]]
    third = server.api(f"/executions/{fire(server, 'Touch', 'fp-3', instance='db-1')}")
    assert third["status"] == "refused" and third["guard"] == "budget"
    assert "allows 2 target(s) per 3600s; 2 used" in third["error"]
    assert "room frees up at" in third["error"]
    # A fourth folds into the third's refusal: one page per budget window.
    fourth = fire(server, "Touch", "fp-4", instance="web-1")
    assert fourth == third["id"]
    sent = [r.json() for r in recorder.wait_for(1)]
    assert [m["reason"] for m in sent] == ["refused"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("env-")) == [
        "web-1",
        "web-2",
    ]


def test_pause_on_one_replica_shadows_new_runs_on_every_replica(
    replicas: Any, out: Path, recorder: Recorder
) -> None:
    a, b = replicas([runbook("touch", "Touch", marker(out))])
    assert post(a, "/automation/pause", "dashboards", {"reason": "x"}).status_code == 403
    paused = post(a, "/automation/pause", "alice", {"reason": "major incident", "for": "2h"})
    assert paused.status_code == 200, paused.text
    state = get(b, "/api/automation")["pause"]
    assert state["paused"] and state["by"] == "alice" and state["reason"] == "major incident"
    assert state["mode"] == "shadow" and state["until"]
    assert "remediator_automation_paused 1.0" in get(b, "/metrics")
    [shadow] = b.wait_all_final([fire(b, "Touch", "fp-1", instance="web-1")])
    assert shadow["status"] == "shadowed" and "paused by alice" in shadow["mode_reason"]
    assert list(out.iterdir()) == []
    assert post(b, "/automation/resume", "bob", {"reason": "over"}).status_code == 200
    assert get(a, "/api/automation")["pause"]["paused"] is False
    [real] = a.wait_all_final([fire(a, "Touch", "fp-2", instance="web-1")])
    assert real["status"] == "succeeded" and real["mode"] == "auto"
    assert (out / "web-1").exists()


def test_replicas_racing_for_the_last_units_of_a_budget_spend_exactly_it(replicas: Any) -> None:
    """200 incidents over two replicas against a blast radius of 50 targets: exactly 50
    runs are created (they wait for approval here, so nothing needs to run), the rest
    refused, however the replicas interleave."""
    book = runbook("wait", "Wait", touch(Path("/nonexistent"), limit="web-1"), mode="approve")
    servers: list[Server] = replicas([book], blast_radius={"targets": 50, "per": "1h"})

    def send(index: int) -> httpx.Response:
        payload = alert("Wait", fingerprint=f"fp-{index}", instance="web-1")
        return servers[index % 2].alertmanager(payload)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(200)))
    assert all(a.status_code == 202 for a in answers), [a.text for a in answers[:3]]
    listed = get(servers[0], "/api/executions", limit=1000)
    statuses = sorted(e["status"] for e in listed)
    assert statuses.count("waiting_approval") == 50, statuses
    # The refusals fold into the first one (one page per window), each incident attached.
    [refused] = [e for e in listed if e["status"] == "refused"]
    assert refused["guard"] == "blast_radius" and refused["attached"] == 149


def test_the_cli_throws_the_same_switch_and_it_is_audited(tmp_path: Path, out: Path) -> None:
    config = write_config(tmp_path, [runbook("touch", "Touch", marker(out))])
    server = start_server(config, instant=True)

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "app.cli", *args, "--config", str(config)],
                              capture_output=True, text=True, check=False, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        said = cli("pause", "--reason", "change window", "--until", "2h", "--by", "carol",
                   "--runbook", "touch*")  # fmt: skip
        assert said.startswith("paused touch* until ")
        state = get(server, "/api/automation")["pause"]
        assert state["by"] == "carol (via cli)" and state["runbooks"] == ["touch*"]
        [shadow] = server.wait_all_final([fire(server, "Touch", "fp-1", instance="web-1")])
        assert shadow["status"] == "shadowed"
        assert cli("resume", "--by", "carol").strip() == "resumed"
        assert get(server, "/api/automation")["pause"]["paused"] is False
        audit = get(server, "/api/audit", "ops-admin", identity="carol")
        assert [(r["route"], r["via"]) for r in audit] == [
            ("remediator resume", "cli"),
            ("remediator pause", "cli"),
        ]
    finally:
        server.close()

"""Batched Ansible steps through the real app, its workers and the real ansible-playbook:
many incidents of one runbook run as one play over their hosts, and each execution still
gets its own result, output, retries and cancel."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.fleet import fleet, fleet_runbook, marks, plays
from tests.support.service import Api, alert


def fire(api: Api, host: str, tag: str = "a", pause: str = "0") -> str:
    answer = api.alertmanager(
        alert("DiskFull", instance=host, fingerprint=f"fp-{host}-{tag}", tag=tag, pause=pause)
    )
    assert answer.status_code == 202, answer.text
    (execution_id,) = answer.json()["executions"]
    return str(execution_id)


@pytest.fixture
def start(make_api: Callable[..., Api], tmp_path: Path) -> Callable[..., Api]:
    def started(hosts: int, **extra: Any) -> Api:
        playbooks = fleet(tmp_path, hosts)
        return make_api([fleet_runbook(tmp_path, **extra)], playbooks_dir=str(playbooks), workers=2)

    return started


def test_many_incidents_run_as_one_play_each_with_its_own_result(
    start: Callable[..., Api], tmp_path: Path
) -> None:
    api = start(30, window="5s")  # time to post them all
    ids = {fire(api, f"host-{i}"): f"host-{i}" for i in range(30)}
    done = {execution_id: api.wait(execution_id) for execution_id in ids}
    assert {e["status"] for e in done.values()} == {"succeeded"}
    assert marks(tmp_path) == Counter(ids.values())  # each host once
    assert len(plays(tmp_path)) == 1  # one ansible-playbook for all of them
    batches = {e["steps"][0]["detail"]["batch"]["id"] for e in done.values()}
    assert len(batches) == 1
    for execution_id, execution in done.items():
        step = execution["steps"][0]
        host = ids[execution_id]
        assert step["detail"]["hosts"] == [host]
        assert step["detail"]["batch"]["size"] == 30
        assert "ran in batch" in step["detail"]["summary"]
        # Its own host's lines and the play's, none of the other hosts'.
        assert f"[{host}]" in step["output_tail"] and "PLAY RECAP" in step["output_tail"]
        others = [h for h in ids.values() if h != host]
        assert not any(f"[{other}]" in step["output_tail"] for other in others)


def test_one_failing_host_fails_only_its_execution_and_its_retry_runs_only_that_host(
    start: Callable[..., Api], tmp_path: Path
) -> None:
    (tmp_path / "broken-host-3").write_text("")
    api = start(8, retry={"attempts": 2, "backoff": "0.2s"})
    ids = {fire(api, f"host-{i}"): f"host-{i}" for i in range(8)}
    done = {ids[execution_id]: api.wait(execution_id) for execution_id in ids}
    assert {e["status"] for e in done.values()} == {"succeeded"}
    retried = done["host-3"]["steps"][0]
    assert retried["attempts"] == 2
    first, second = retried["attempt_log"]
    assert first["status"] == "failed" and "host-3: failed" in first["error"]
    assert second["detail"]["batch"]["size"] == 1  # the retry ran host-3 alone
    assert all(done[h]["steps"][0]["attempts"] == 1 for h in done if h != "host-3")
    assert marks(tmp_path) == Counter(ids.values())


def test_a_host_that_keeps_failing_fails_its_execution_alone(
    start: Callable[..., Api], tmp_path: Path
) -> None:
    (tmp_path / "broken-host-1").write_text("")
    api = start(4)
    ids = {ids_host: fire(api, ids_host) for ids_host in ("host-0", "host-1", "host-2")}
    done = {host: api.wait(execution_id) for host, execution_id in ids.items()}
    assert done["host-1"]["status"] == "failed"
    assert "host-1: failed" in done["host-1"]["error"]
    assert done["host-0"]["status"] == done["host-2"]["status"] == "succeeded"


def test_a_hostile_limit_in_a_batch_fails_its_own_execution_and_reaches_no_other_host(
    start: Callable[..., Api], tmp_path: Path
) -> None:
    api = start(4, window="2s")
    good = {fire(api, host): host for host in ("host-0", "host-1")}
    hostile = {
        fire(api, limit): limit
        for limit in ("host-2:!host-3", "all", "host-*", "not-in-inventory", "host-3,nowhere")
    }
    for execution_id, limit in hostile.items():
        execution = api.wait(execution_id)
        assert execution["status"] == "failed", (limit, execution["status"])
        assert "limit" in execution["error"], execution["error"]
    assert {api.wait(execution_id)["status"] for execution_id in good} == {"succeeded"}
    # Only the two named hosts ran: not the group, not every host, not the pattern's.
    assert marks(tmp_path) == Counter(good.values())


def test_different_values_never_share_a_run(start: Callable[..., Api], tmp_path: Path) -> None:
    api = start(6)
    tags = {fire(api, f"host-{i}", tag="blue" if i % 2 else "green"): i for i in range(6)}
    done = [api.wait(execution_id) for execution_id in tags]
    assert {e["status"] for e in done} == {"succeeded"}
    assert set(plays(tmp_path)) == {"blue", "green"}
    by_batch: dict[str, set[str]] = {}
    for execution in done:
        batch = execution["steps"][0]["detail"]["batch"]["id"]
        by_batch.setdefault(batch, set()).add(execution["incident"]["labels"]["tag"])
    assert all(len(tags) == 1 for tags in by_batch.values())


def test_two_incidents_for_one_host_run_one_after_the_other(
    start: Callable[..., Api], tmp_path: Path
) -> None:
    api = start(3)
    ids = [fire(api, "host-0", tag="a"), fire(api, "host-0", tag="b"), fire(api, "host-1")]
    done = [api.wait(execution_id) for execution_id in ids]
    assert {e["status"] for e in done} == {"succeeded"}
    assert marks(tmp_path) == Counter({"host-0": 2, "host-1": 1})


def test_a_cancel_of_one_member_says_its_host_ran_and_the_rest_finish(
    start: Callable[..., Api], tmp_path: Path
) -> None:
    api = start(3)
    ids = [fire(api, f"host-{i}", pause="3") for i in range(3)]
    api.wait(
        ids[0], until=lambda e: e["status"] == "running" and e["steps"][0]["status"] == "running"
    )
    time.sleep(0.5)
    assert api.act(ids[1], "cancel", reason="wrong host").status_code == 200
    cancelled = api.wait(ids[1])
    assert cancelled["status"] == "cancelled"
    assert "Ansible cannot stop one host of a play" in cancelled["error"]
    assert "wrong host" in cancelled["error"]
    assert [api.wait(ids[i])["status"] for i in (0, 2)] == ["succeeded", "succeeded"]
    assert cancelled["escalations"] == []


def test_cancelling_every_member_stops_the_play(start: Callable[..., Api], tmp_path: Path) -> None:
    api = start(2)
    ids = [fire(api, f"host-{i}", pause="30") for i in range(2)]
    api.wait(ids[0], until=lambda e: e["steps"][0]["status"] == "running")
    api.wait(ids[1], until=lambda e: e["steps"][0]["status"] == "running")
    began = time.monotonic()
    for execution_id in ids:
        assert api.act(execution_id, "cancel").status_code == 200
    done = [api.wait(execution_id) for execution_id in ids]
    assert {e["status"] for e in done} == {"cancelled"}
    assert time.monotonic() - began < 20
    assert marks(tmp_path) == Counter()


def test_simulate_says_whether_the_step_would_batch(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    playbooks = fleet(tmp_path, 2)
    pattern = fleet_runbook(tmp_path)
    pattern["name"], pattern["match"]["all"][0]["equals"] = "by-pattern", "Other"
    pattern["steps"][0]["ansible"]["limit"] = "{{ incident.labels.instance }}:&web"
    api = make_api([fleet_runbook(tmp_path), pattern], playbooks_dir=str(playbooks))

    def simulated(name: str) -> str:
        payload = alert(name, instance="host-1", tag="a", pause="0")
        answer = api.client.post(
            "/api/simulate", json={"source": "alertmanager", "payload": payload}, headers=api.auth
        )
        assert answer.status_code == 200, answer.text
        (matched,) = answer.json()["incidents"][0]["matched"]
        return str(matched["steps"][0]["batch"])

    assert simulated("DiskFull").startswith("batched: one run with the other incidents")
    assert "within 1s (up to 50)" in simulated("DiskFull")
    assert simulated("Other") == "runs alone: its limit is a pattern, not host or group names"


def test_a_batch_starts_when_its_window_ends_not_at_the_next_poll(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    playbooks = fleet(tmp_path, 2)
    api = make_api([fleet_runbook(tmp_path, window="0.5s")], playbooks_dir=str(playbooks),
                   workers=2, poll_interval_s=10)  # fmt: skip
    done = api.wait(fire(api, "host-0"))
    assert done["status"] == "succeeded", done
    waited = datetime.fromisoformat(done["started_at"]) - datetime.fromisoformat(done["created_at"])
    assert timedelta(seconds=0.4) < waited < timedelta(seconds=3)  # not the 10 s poll


def test_max_errors_stops_a_fleet_wide_play_and_refuses_the_hosts_not_reached(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    """AWS Systems Manager's MaxErrors for a batch: two hosts fail first; with
    `max_errors: 2` the play is stopped there, their executions fail, and those whose
    hosts were not reached (or not finished) are refused naming it, not run."""
    for broken in ("host-0", "host-1"):
        (tmp_path / f"broken-{broken}").write_text("")
    book = fleet_runbook(tmp_path, window="5s")
    book["batch"]["max_errors"] = 2
    book["steps"][0]["ansible"]["forks"] = 2  # the fleet worked through two at a time
    api = make_api([book], playbooks_dir=str(fleet(tmp_path, 30)), workers=2)
    ids = {fire(api, f"host-{i}", pause="1"): f"host-{i}" for i in range(30)}
    done = {ids[execution_id]: api.wait(execution_id) for execution_id in ids}
    assert done["host-0"]["status"] == done["host-1"]["status"] == "failed"
    refused = [h for h, e in done.items() if e["status"] == "refused"]
    assert len(refused) >= 24, Counter(e["status"] for e in done.values())
    assert {done[h]["guard"] for h in refused} == {"max_errors"}
    assert "stopped after 2 host(s) failed (max_errors allows 2)" in done[refused[0]]["error"]
    assert len(marks(tmp_path)) <= 4 and "host-29" not in marks(tmp_path)


def test_a_host_failing_in_a_batch_runs_its_own_on_failure_steps(
    start: Callable[..., Api], tmp_path: Path
) -> None:
    """The batch is one play; the member whose host failed then runs its runbook's
    on_failure step alone (its own host), the others skip it."""
    (tmp_path / "broken-host-2").write_text("")
    rollback = {"ansible": {"playbook": "fleet.yml", "inventory": "fleet.ini",
                            "limit": "{{ incident.labels.instance }}",
                            "extra_vars": {"work": str(tmp_path), "tag": "rollback", "pause": "0"}}}  # fmt: skip
    api = start(4, window="3s", on_failure=[rollback])
    ids = {fire(api, f"host-{i}"): f"host-{i}" for i in range(4)}
    done = {ids[execution_id]: api.wait(execution_id) for execution_id in ids}
    assert done["host-2"]["status"] == "failed"
    assert [s["status"] for s in done["host-2"]["steps"]] == ["failed", "succeeded"]
    for host in ("host-0", "host-1", "host-3"):
        assert done[host]["status"] == "succeeded", done[host]
        assert [s["status"] for s in done[host]["steps"]] == ["succeeded", "skipped"]
    assert plays(tmp_path) == ["a", "rollback"]  # the batch as one play, then the rollback
    assert marks(tmp_path) == Counter({"host-0": 1, "host-1": 1, "host-3": 1, "host-2": 1})
    assert (tmp_path / "marks").read_text().count("host-2 rollback") == 1


def test_each_member_of_a_batch_follows_its_own_hosts_live(
    start: Callable[..., Api], tmp_path: Path
) -> None:
    """One play for everyone; each execution's live output is its own hosts' lines and
    the play's own, as its output tail is."""
    api = start(3, window="3s")
    ids = {fire(api, f"host-{i}"): f"host-{i}" for i in range(3)}
    for execution_id, host in ids.items():
        assert api.wait(execution_id)["status"] == "succeeded"
        answer = api.client.get(f"/api/executions/{execution_id}/attempts/1/output",
                                headers=api.auth).json()  # fmt: skip
        text = "".join(chunk["text"] for chunk in answer["chunks"])
        assert f"[{host}]" in text and "PLAY RECAP" in text
        assert not any(f"[{other}]" in text for other in ids.values() if other != host)
    assert len(plays(tmp_path)) == 1

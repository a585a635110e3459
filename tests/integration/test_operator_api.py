"""The operator's API: runbooks and where they came from, simulate, a manual run,
reload (good and broken sets, while webhooks keep arriving), and execution pages."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.support.service import Api, alert, ansible_step, bearer, runbook


def appender(dest: Path) -> dict[str, Any]:
    return ansible_step("append.yml", dest=str(dest))


def runs(dest: Path) -> int:
    return len(dest.read_text().splitlines()) if dest.exists() else 0


def test_runbooks_are_listed_with_their_file_and_line(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    api = make_api([runbook("a", "A", appender(tmp_path / "a")),
                    runbook("b", "B", appender(tmp_path / "b"), cooldown="5m")])  # fmt: skip
    answer = api.client.get("/api/runbooks", headers=api.auth)
    assert answer.status_code == 200
    listed = answer.json()
    text = (tmp_path / "runbooks" / "test.yml").read_text().splitlines()
    assert [r["runbook"]["name"] for r in listed["runbooks"]] == ["a", "b"]
    for item in listed["runbooks"]:
        assert item["file"].endswith("runbooks/test.yml")
        assert text[item["line"] - 1] == f"- name: {item['runbook']['name']}"
    assert listed["runbooks"][1]["runbook"]["cooldown"] == 300
    one = api.client.get("/api/runbooks/b", headers=api.auth).json()
    assert one["runbook"]["match"]["all"] == [{"field": "labels.alertname", "equals": "B"}]
    missing = api.client.get("/api/runbooks/nope", headers=api.auth)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert api.client.get("/api/runbooks").status_code == 401


def test_simulate_says_what_would_run_and_why_without_running(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    dest = tmp_path / "runs"
    wanted = runbook(
        "cache", "CacheFull", appender(dest), concurrency="{{ incident.labels.instance }}"
    )
    wanted["match"]["any"] = [{"field": "labels.team", "in": ["web", "api"]}]
    api = make_api([wanted, runbook("other", "Other", appender(dest))])
    payload = alert("CacheFull", instance="web-1", team="web")
    answer = api.client.post(
        "/api/simulate", json={"source": "alertmanager", "payload": payload}, headers=api.auth
    )
    assert answer.status_code == 200, answer.text
    [incident] = answer.json()["incidents"]
    [matched] = incident["matched"]
    assert matched["runbook"] == "cache" and matched["concurrency_key"] == "web-1"
    assert matched["decided_by"] == [
        "status is firing",
        "all: labels.alertname equals 'CacheFull' holds",
        "any: labels.team in ['web', 'api'] holds",
    ]
    assert matched["steps"][0]["extra_vars"] == {"dest": str(dest)}
    assert incident["not_matched"] == [
        {"runbook": "other", "why": "all: labels.alertname equals 'Other' does not hold"}
    ]
    assert runs(dest) == 0 and api.executions() == []
    unknown = api.client.post("/api/simulate", json={"source": "nope", "payload": {}},
                              headers=api.auth)  # fmt: skip
    assert unknown.status_code == 404
    bad = api.client.post("/api/simulate", json={"source": "alertmanager", "payload": [1]},
                          headers=api.auth)  # fmt: skip
    assert bad.status_code == 422 and bad.json()["error"] == "unsupported_payload"


def test_a_manual_run_ignores_match_but_not_guards_and_says_who(
    make_api: Callable[..., Api], tmp_path: Path, database_url: str
) -> None:
    dest = tmp_path / "runs"
    api = make_api([runbook("fix", "NeverSent", appender(dest), cooldown="10m")],
                   database_url=database_url)  # fmt: skip
    body = {"by": "alice", "reason": "flapping", "incident": {"title": "cache full on web-1",
            "severity": "high", "labels": {"instance": "web-1"}}}  # fmt: skip
    headers = {**bearer("alice"), "idempotency-key": "ticket-42"}
    first = api.client.post("/api/runbooks/fix/run", json=body, headers=headers)
    assert first.status_code == 202, first.text
    [execution_id] = first.json()["executions"]
    again = api.client.post("/api/runbooks/fix/run", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["duplicate"] is True

    done = api.wait(execution_id)
    assert done["status"] == "succeeded" and done["trigger"] == "manual"
    assert done["incident"]["source"] == "manual"
    assert [(a["action"], a["by"], a["reason"]) for a in done["actions"]] == [
        ("run", "alice", "flapping")
    ]
    assert runs(dest) == 1
    # A second run for the same incident within the cooldown is refused, as for a webhook.
    second = api.client.post("/api/runbooks/fix/run", json=body, headers=bearer("alice"))
    [refused] = second.json()["executions"]
    assert api.wait(refused)["status"] == "refused" and runs(dest) == 1

    assert (
        api.client.post("/api/runbooks/nope/run", json=body, headers=bearer("alice")).status_code
        == 404
    )
    for incident, word in [({"severity": "high"}, "title"), ({"title": "x", "source": "A B"}, "source"),
                           ({"incidents": [{"title": "x"}]}, "one incident")]:  # fmt: skip
        bad = api.client.post("/api/runbooks/fix/run", json={**body, "incident": incident},
                              headers=bearer("alice"))  # fmt: skip
        assert bad.status_code == 422 and word in bad.json()["detail"], bad.text
    manual = api.client.get("/api/executions", params={"trigger": "manual"}, headers=api.auth)
    assert len(manual.json()) == 2


def test_reload_swaps_the_whole_set_or_keeps_the_old_one(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    old_dest, new_dest = tmp_path / "old", tmp_path / "new"
    api = make_api([runbook("r", "Fire", appender(old_dest))])
    runbooks_file = tmp_path / "runbooks" / "test.yml"
    sent: list[str] = []
    stop = threading.Event()

    def keep_sending() -> None:
        index = 0
        while not stop.is_set() and index < 400:
            index += 1
            answer = api.alertmanager(alert("Fire", fingerprint=f"fp-{index}"))
            assert answer.status_code == 202, answer.text
            sent.extend(answer.json()["executions"])

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        broken = [runbook("r", "Fire", appender(new_dest)), {"name": "Bad Name", "steps": []},
                  runbook("s", "Fire", ansible_step("missing.yml"))]  # fmt: skip
        runbooks_file.write_text(yaml.safe_dump(broken))
        refused = api.client.post("/api/runbooks/reload", headers=api.auth)
        assert refused.status_code == 422 and refused.json()["error"] == "invalid_runbooks"
        detail = refused.json()["detail"]
        assert "test.yml:" in detail and "name" in detail and "missing.yml" in detail
        listed = api.client.get("/api/runbooks", headers=api.auth).json()["runbooks"]
        assert [r["runbook"]["steps"][0]["ansible"]["extra_vars"]["dest"] for r in listed] == [
            str(old_dest)
        ]

        good = [runbook("r", "Fire", appender(new_dest)), runbook("t", "Other", appender(new_dest))]
        runbooks_file.write_text(yaml.safe_dump(good))
        reloaded = api.client.post("/api/runbooks/reload", headers=api.auth)
        assert reloaded.status_code == 200, reloaded.text
        assert [r["runbook"]["name"] for r in reloaded.json()["runbooks"]] == ["r", "t"]
    finally:
        stop.set()
        sender.join(timeout=60)
    # Every webhook was matched against one whole set: each made exactly one execution,
    # whose spec is the old runbook's or the new one's.
    assert len(sent) == len(set(sent)) >= 1
    for execution_id in sent:
        spec = api.execution(execution_id)["steps"][0]["spec"]
        assert spec["extra_vars"]["dest"] in (str(old_dest), str(new_dest))


def test_executions_are_paged_newest_first_with_a_stable_cursor(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    api = make_api([runbook("p", "Page", appender(tmp_path / "runs"), approval=True)])
    ids = [
        api.alertmanager(alert("Page", fingerprint=f"fp-{i}")).json()["executions"][0]
        for i in range(7)
    ]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 3, "status": "waiting_approval"}
    for _ in range(5):
        page = api.client.get("/api/executions", params=params, headers=api.auth)
        assert page.status_code == 200
        seen += [e["id"] for e in page.json()]
        if "link" not in page.headers:
            break
        assert page.headers["link"].endswith('rel="next"')
        params["cursor"] = page.headers["x-next-cursor"]
        if len(seen) == 3:  # a new execution arrives meanwhile: it does not shift the pages
            api.alertmanager(alert("Page", fingerprint="fp-late"))
    assert seen == list(reversed(ids))
    bad = api.client.get("/api/executions", params={"cursor": "!!"}, headers=api.auth)
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
    both = api.client.get("/api/executions", params=[("status", "queued"),
                          ("status", "waiting_approval")], headers=api.auth)  # fmt: skip
    assert len(both.json()) == 8
    assert json.loads(api.client.get("/api/executions", params={"source": "generic"},
                      headers=api.auth).text) == []  # fmt: skip


def test_a_watched_directory_reloads_itself(make_api: Callable[..., Api], tmp_path: Path) -> None:
    api = make_api([runbook("first", "A", appender(tmp_path / "a"))], runbooks_watch_s=0.2)
    runbooks_file = tmp_path / "runbooks" / "test.yml"

    def names_become(expected: list[str]) -> None:
        for _ in range(100):
            listed = api.client.get("/api/runbooks", headers=api.auth).json()["runbooks"]
            if [r["runbook"]["name"] for r in listed] == expected:
                return
            time.sleep(0.1)
        raise AssertionError(f"runbooks never became {expected}")

    runbooks_file.write_text(yaml.safe_dump([runbook("second", "B", appender(tmp_path / "b"))]))
    names_become(["second"])
    runbooks_file.write_text("name: Broken Name\n")  # refused: the last good set stays
    (tmp_path / "runbooks" / "more.yml").write_text(
        yaml.safe_dump([runbook("third", "C", appender(tmp_path / "c"))])
    )
    time.sleep(1)
    names_become(["second"])
    # Refused once per change of the files, not once per look (every 0.2 s).
    metrics = api.client.get("/metrics", headers=api.auth).text
    [refused] = [line for line in metrics.splitlines()
                 if line.startswith('remediator_runbook_reloads_total{outcome="refused"}')]  # fmt: skip
    assert float(refused.split()[-1]) <= 2
    runbooks_file.unlink()
    names_become(["third"])


def test_openapi_names_every_call_and_the_one_error_shape(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    api = make_api([runbook("a", "A", appender(tmp_path / "a"))])
    document = api.client.get("/openapi.json").json()
    assert {"/api/runbooks", "/api/simulate", "/api/runbooks/{name}/run", "/api/runbooks/reload",
            "/api/executions", "/metrics"} <= set(document["paths"])  # fmt: skip
    assert set(document["components"]["schemas"]["ErrorBody"]["properties"]) == {"error", "detail"}
    listing = document["paths"]["/api/executions"]["get"]["responses"]
    assert listing["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    run = document["paths"]["/api/runbooks/{name}/run"]["post"]
    assert run["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("ManualRun")
    assert document["components"]["schemas"]["ManualRun"]["examples"]


def test_times_without_a_zone_are_utc_and_no_cursor_is_a_fault(
    make_api: Callable[..., Api],
) -> None:
    api = make_api([])
    for path, params in [
        ("/api/executions", {"since": "2026-01-01T00:00:00", "until": "2099-01-01T00:00"}),
        ("/api/audit", {"since": "2026-01-01T00:00:00"}),
        ("/api/stats", {"since": "2026-01-01T00:00:00"}),
    ]:
        answer = api.client.get(path, params=params, headers=api.auth)
        assert answer.status_code == 200, (path, answer.text)
    too_far = api.client.get("/api/audit", params={"cursor": str(2**72)}, headers=api.auth)
    assert too_far.status_code == 422 and too_far.json()["error"] == "invalid_request"
    naive = base64.urlsafe_b64encode(b"2026-01-01T00:00:00|x").decode()
    crafted = api.client.get("/api/executions", params={"cursor": naive}, headers=api.auth)
    assert crafted.status_code == 400 and crafted.json()["error"] == "bad_request"

"""Against a real `remediator serve` process on a loopback port, as a user would run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.servers import start_server
from tests.support.service import (
    API_TOKEN,
    GENERIC_SECRET,
    ROOT,
    ansible_step,
    runbook,
    sign_generic,
    write_config,
)

pytestmark = [pytest.mark.server, pytest.mark.ansible]


def test_signed_webhook_through_a_running_server(tmp_path: Path) -> None:
    dest = tmp_path / "out.json"
    config = write_config(
        tmp_path,
        [{"name": "write", "match": {"source": "generic"},
          "steps": [ansible_step("write.yml", message="{{ incident.title }}", host="{{ incident.labels.host }}", dest=str(dest))]}],
    )  # fmt: skip
    server = start_server(config)
    base = server.base
    try:
        body = json.dumps({"title": "disk full", "labels": {"host": "db-7"}}).encode()
        headers = sign_generic(body)
        answer = httpx.post(f"{base}/webhooks/generic", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        execution_id = answer.json()["executions"][0]
        auth = {"authorization": f"Bearer {API_TOKEN}"}
        for _ in range(300):
            execution = httpx.get(f"{base}/api/executions/{execution_id}", headers=auth).json()
            if execution["status"] not in ("queued", "running"):
                break
            time.sleep(0.1)
        assert execution["status"] == "succeeded", execution
        assert json.loads(dest.read_text()) == {"message": "disk full", "host": "db-7"}
        assert (
            httpx.post(f"{base}/webhooks/generic", content=body, headers=headers).json()[
                "duplicate"
            ]
            is True
        )
        assert (tmp_path / "remediator.db").exists()
    finally:
        # uvicorn re-raises SIGTERM after its graceful shutdown.
        assert server.terminate() in (0, -signal.SIGTERM)


def test_lint_and_simulate_commands(tmp_path: Path) -> None:
    env = {**os.environ, "REMEDIATOR_API_TOKEN": "x" * 16, "ALERTMANAGER_TOKEN": "y", "GENERIC_WEBHOOK_SECRET": GENERIC_SECRET,
           "ESCALATION_WEBHOOK_URL": "http://127.0.0.1:9/", "ESCALATION_SECRET": GENERIC_SECRET}  # fmt: skip
    cli = [sys.executable, "-m", "app.cli", "--config", str(ROOT / "remediator.yaml")]
    lint = subprocess.run([*cli, "lint"], capture_output=True, text=True, env=env, check=False)
    assert lint.returncode == 0 and "clear-cache-when-full" in lint.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\nsteps:\n  - ansible: {playbook: p.yml, timout: 1}\n")
    failed = subprocess.run(
        [*cli, "lint", str(bad)], capture_output=True, text=True, env=env, check=False
    )
    assert (
        failed.returncode == 1
        and f"{bad}:3: at steps[0].ansible.timout unknown key" in failed.stderr
    )
    sim = subprocess.run(
        [*cli, "simulate", str(ROOT / "runbooks/tests/payloads/cache-full.json"), "--source", "alertmanager"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    report = json.loads(sim.stdout)["incidents"][0]
    assert [m["runbook"] for m in report["matched"]] == ["clear-cache-when-full"]
    assert report["matched"][0]["concurrency_key"] == "cache-web-1"
    assert {s["runbook"] for s in report["not_matched"]} >= {"database-failover"}
    web = subprocess.run(
        [*cli, "simulate", str(ROOT / "runbooks/tests/payloads/web-release-errors.json"), "--source", "alertmanager"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    [revert] = json.loads(web.stdout)["incidents"][0]["matched"]
    [step] = revert["steps"]
    assert revert["runbook"] == "revert-bad-web-release" and step["kind"] == "terraform"
    assert step["var"] == {"change_reason": "remediator: web 5xx ratio 31% since release 2.5.0"}
    # Which version a revert would apply, without applying it.
    chosen = step["would_act_on"]
    previous = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-2", "--format=%H", "--", "terraform/web"],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    if len(previous) == 2:
        assert chosen["version"]["commit"] == previous[1]
    else:  # an exported tree or a shallow clone has no history to revert along
        assert "version_error" in chosen
    ignored = subprocess.run(
        [*cli, "simulate", str(ROOT / "tests/fixtures/payloads/rootly/postmortem-created.json"), "--source", "rootly"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert "incident_post_mortem.created" in json.loads(ignored.stdout)["ignored"]
    schema = subprocess.run([*cli, "schema"], capture_output=True, text=True, env=env, check=True)
    assert "AnsibleStep" in json.loads(schema.stdout)["$defs"]


def test_sighup_reloads_runbooks_and_a_broken_set_is_refused(tmp_path: Path) -> None:
    one = {"name": "one", "steps": [ansible_step("write.yml")]}
    config = write_config(tmp_path, [one])
    server = start_server(config)
    runbooks = tmp_path / "runbooks" / "test.yml"

    def names() -> list[str]:
        return [r["runbook"]["name"] for r in server.api("/runbooks")["runbooks"]]

    def hang_up_until(expected: list[str], log_line: str) -> None:
        server.proc.send_signal(signal.SIGHUP)
        for _ in range(100):
            if log_line in server.log.read_text():
                break
            time.sleep(0.1)
        assert log_line in server.log.read_text(), server.log.read_text()[-2000:]
        assert names() == expected
        assert server.proc.poll() is None

    try:
        assert names() == ["one"]
        runbooks.write_text(json.dumps([one, {**one, "name": "two"}]))
        hang_up_until(["one", "two"], "runbooks reloaded: 2 runbook(s)")
        runbooks.write_text(json.dumps([{**one, "name": "Not Valid"}]))
        hang_up_until(["one", "two"], "runbook reload refused, keeping 2 runbook(s)")
    finally:
        server.close()


def test_logs_are_json_lines_naming_the_execution(tmp_path: Path) -> None:
    dest = tmp_path / "out.json"
    step = ansible_step("write.yml", message="{{ incident.title }}", host="h", dest=str(dest))
    config = write_config(
        tmp_path, [{"name": "write", "match": {"source": "generic"}, "steps": [step]}]
    )
    server = start_server(config)
    try:
        body = json.dumps({"title": "disk full"}).encode()
        answer = httpx.post(
            f"{server.base}/webhooks/generic", content=body, headers=sign_generic(body)
        )
        [execution_id] = answer.json()["executions"]
        event_id = answer.json()["event_id"]
        [execution] = server.wait_all_final([execution_id])
        assert execution["status"] == "succeeded"
    finally:
        server.terminate()
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    mine = [line for line in lines if line.get("execution_id") == execution_id]
    assert {line["runbook"] for line in mine} == {"write"}
    assert {line["event_id"] for line in mine} == {event_id}
    assert any("step 1 (ansible) attempt 1: succeeded" in line["message"] for line in mine)
    assert any(line["message"].startswith("delivery accepted") and line.get("event_id") == event_id
               for line in lines)  # fmt: skip


def test_cli_run_queues_a_manual_run_that_the_service_runs(tmp_path: Path) -> None:
    dest = tmp_path / "out.json"
    step = ansible_step(
        "write.yml", message="{{ incident.title }}", host="{{ incident.service }}", dest=str(dest)
    )
    config = write_config(
        tmp_path, [{"name": "write", "match": {"source": "generic"}, "steps": [step]}]
    )
    server = start_server(config)
    cli = [sys.executable, "-m", "app.cli", "--config", str(config)]
    incident = tmp_path / "incident.json"
    incident.write_text(json.dumps({"title": "by hand", "service": "web"}))
    try:
        ran = subprocess.run(
            [*cli, "run", "write", "--incident", str(incident), "--by", "bob", "--reason", "drill",
             "--idempotency-key", "drill-1", "--wait", "90"],
            capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert json.loads(dest.read_text()) == {"message": "by hand", "host": "web"}
        assert '"status": "succeeded"' in ran.stdout and '"by": "bob (via cli)"' in ran.stdout
        execution_id = json.loads(ran.stdout[: ran.stdout.index("}\n") + 2])["executions"][0]
        shown = subprocess.run([*cli, "executions", "show", execution_id[:8]],
                               capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        assert f"execution {execution_id}" in shown.stdout
        assert "status    succeeded" in shown.stdout and "1. ansible: succeeded" in shown.stdout
        assert "| PLAY RECAP" in shown.stdout  # the attempt's output tail
        assert "run by bob (via cli): drill" in shown.stdout  # the action
        as_json = subprocess.run([*cli, "executions", "show", execution_id, "--json"],
                                 capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        assert json.loads(as_json.stdout)["steps"][0]["status"] == "succeeded"
        unknown = subprocess.run([*cli, "executions", "show", "0000000000"],
                                 capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert unknown.returncode == 1 and "no execution '0000000000'" in unknown.stderr
        again = subprocess.run(
            [*cli, "run", "write", "--incident", str(incident), "--idempotency-key", "drill-1"],
            capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path,
        )  # fmt: skip
        assert '"duplicate": true' in again.stdout
        listed = subprocess.run(
            [*cli, "executions", "--status", "succeeded", "--runbook", "write"],
            capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path,
        )  # fmt: skip
        assert len(json.loads(listed.stdout)) == 1
        missing = subprocess.run([*cli, "run", "nope", "--incident", str(incident)],
                                 capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)  # fmt: skip
        assert missing.returncode == 1 and "no runbook 'nope'" in missing.stderr
    finally:
        server.close()


def test_the_checked_in_schema_is_current_and_the_examples_follow_it() -> None:
    import jsonschema
    import yaml

    printed = subprocess.run(
        [sys.executable, "-m", "app.cli", "schema"], capture_output=True, text=True, check=True
    ).stdout
    checked_in = (ROOT / "schema" / "runbook.schema.json").read_text()
    assert json.loads(printed) == json.loads(checked_in), (
        "schema/runbook.schema.json is stale: run `remediator schema > schema/runbook.schema.json`"
    )
    validator = jsonschema.Draft202012Validator(json.loads(checked_in))
    for example in sorted((ROOT / "runbooks").glob("*.yml")):
        text = example.read_text()
        assert text.startswith("# yaml-language-server: $schema=../schema/runbook.schema.json")
        assert list(validator.iter_errors(yaml.safe_load(text))) == [], example
    assert list(validator.iter_errors({"name": "x", "steps": [{"ansible": {"playbok": "p"}}]}))


def test_start_up_problems_are_lines_not_a_traceback(tmp_path: Path) -> None:
    broken = runbook("Bad Name", "X", {"ansible": {"playbook": "write.yml"}})
    config = write_config(tmp_path, [broken])
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--config", str(config), "--port", "9"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and time.monotonic() - started < 10
    assert f"{tmp_path / 'runbooks' / 'test.yml'}:1: at [0].name" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    (tmp_path / "runbooks" / "test.yml").write_text("[]\n")
    unreachable = write_config(tmp_path, [], database_url="postgresql://u@127.0.0.1:9/x")
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--config", str(unreachable), "--port", "9"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr.startswith("database error: ")
    assert "Traceback" not in done.stderr + done.stdout and len(done.stderr.splitlines()) == 1


def test_send_signs_as_the_platform_and_follows_the_run(tmp_path: Path) -> None:
    dest = tmp_path / "out.json"
    step = ansible_step("write.yml", message="{{ incident.title }}", host="web", dest=str(dest))
    config = write_config(
        tmp_path, [{"name": "w", "match": {"source": "generic"}, "steps": [step]}]
    )
    server = start_server(config)
    cli = [sys.executable, "-m", "app.cli", "--config", str(config)]
    payload = tmp_path / "incident.json"
    payload.write_text(json.dumps({"title": "sent by hand", "labels": {"alertname": "X"}}))
    try:
        sent = subprocess.run([*cli, "send", str(payload), "--source", "generic",
                               "--url", server.base, "--wait", "90"],
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert sent.stdout.startswith("202 Accepted\n")
        assert "(w): succeeded" in sent.stdout
        assert json.loads(dest.read_text())["message"] == "sent by hand"
        unknown = subprocess.run([*cli, "send", str(payload), "--source", "rootly",
                                  "--url", server.base],
                                 capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert unknown.returncode == 1 and "sources.rootly is not configured" in unknown.stderr
    finally:
        server.close()

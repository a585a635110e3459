"""A runbook that looks, decides, acts and cleans up, through the real app and real
`ansible-playbook`: a first step's `set_stats` decides with `when` which action runs
(both branches), a failed action runs the runbook's `on_failure` steps and the escalation
carries both, a step may fail and let the runbook go on, and what a step found reaches a
later step's fields only through their sinks (text stays text; a host must be in the
inventory)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.execution_text import describe_execution
from app.views import ExecutionView
from tests.support.service import Api, Recorder, alert, ansible_step, slack_marked

pytestmark = pytest.mark.ansible


def _runbook(name: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "match": {"all": [{"field": "labels.alertname", "equals": "PrimaryDown"}]},
        "steps": steps,
        **extra,
    }


def _step(step: dict[str, Any], **own: Any) -> dict[str, Any]:
    return {**step, **own}


def test_what_a_step_found_decides_which_action_runs(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    failover, page = tmp_path / "failover", tmp_path / "page"
    look = ansible_step("outputs.yml", lag_s="{{ incident.labels.lag }}", seen="x")
    api = make_api([_runbook("failover-when-close", [
        _step(look, id="lag"),
        _step(ansible_step("append.yml", dest=str(failover)), id="failover",
              when="steps.lag.outputs.lag_s < 30"),
        _step(ansible_step("append.yml", dest=str(page)), when="not steps.failover.status == 'succeeded'"),
    ])])  # fmt: skip

    close = api.wait(api.alertmanager(alert("PrimaryDown", lag="12")).json()["executions"][0])
    assert close["status"] == "succeeded", close
    assert [s["status"] for s in close["steps"]] == ["succeeded", "succeeded", "skipped"]
    assert failover.read_text() == "run\n" and not page.exists()
    skipped = close["steps"][2]
    assert skipped["detail"]["saw"] == {"steps.failover.status": "succeeded"}
    assert skipped["when"] == "not steps.failover.status == 'succeeded'"

    far = api.alertmanager(alert("PrimaryDown", lag="45", fingerprint="fp-far"))
    behind = api.wait(far.json()["executions"][0])
    assert [s["status"] for s in behind["steps"]] == ["succeeded", "skipped", "succeeded"]
    assert failover.read_text() == "run\n" and page.read_text() == "run\n"
    reason = behind["steps"][1]["detail"]
    assert reason["saw"] == {"steps.lag.outputs.lag_s": 45}
    assert reason["summary"] == (
        "skipped: when `steps.lag.outputs.lag_s < 30` is false (steps.lag.outputs.lag_s = 45)"
    )
    shown = describe_execution(ExecutionView.model_validate(behind))
    assert "  2. ansible (id failover, when steps.lag.outputs.lag_s < 30): skipped" in shown


def test_a_failed_action_runs_on_failure_and_the_escalation_carries_both(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path
) -> None:
    fenced, never = tmp_path / "fenced", tmp_path / "never"
    api = make_api(
        [_runbook("failover", [
            _step(ansible_step("outputs.yml", lag_s="3", seen="db-1"), id="lag"),
            _step(ansible_step("flaky.yml", marker=str(tmp_path / "m1")), id="failover"),
            ansible_step("append.yml", dest=str(never)),
        ], on_failure=[
            _step(ansible_step("write.yml", message="{{ steps.failover.status }}",
                               host="{{ steps.lag.outputs.seen }}", dest=str(fenced)), id="fence"),
            _step(ansible_step("append.yml", dest=str(never)), when="false"),
        ], escalate=["webhook"])],
        escalation={"webhook": {"url": recorder.url}},
    )  # fmt: skip
    done = api.wait(api.alertmanager(alert("PrimaryDown")).json()["executions"][0])
    assert done["status"] == "failed", done
    assert done["error"].startswith("step 2 (ansible): ")
    statuses = [(s["phase"], s["status"]) for s in done["steps"]]
    assert statuses == [("steps", "succeeded"), ("steps", "failed"), ("steps", "skipped"),
                        ("on_failure", "succeeded"), ("on_failure", "skipped")]  # fmt: skip
    assert done["steps"][2]["detail"]["summary"] == "skipped: step 2 failed"
    # The rollback saw the failed run: how the action ended, what the look found.
    assert json.loads(fenced.read_text()) == {"message": "failed", "host": "db-1"}
    assert not never.exists()

    [sent] = recorder.wait_for(1)
    escalation = sent.json()
    assert escalation["reason"] == "failed"
    steps = escalation["execution"]["steps"]
    assert [(s["phase"], s["status"]) for s in steps] == statuses
    assert steps[3]["spec"]["extra_vars"]["message"] == "failed"


def test_a_step_that_may_fail_lets_the_runbook_go_on(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    cleanup = tmp_path / "cleanup"
    api = make_api([_runbook("try-then-clean", [
        _step(ansible_step("flaky.yml", marker=str(tmp_path / "m")), id="attempt",
              continue_on_failure=True),
        _step(ansible_step("append.yml", dest=str(cleanup)),
              when="steps.attempt.status == 'failed'"),
    ])])  # fmt: skip
    done = api.wait(api.alertmanager(alert("PrimaryDown")).json()["executions"][0])
    assert done["status"] == "succeeded", done
    assert [s["status"] for s in done["steps"]] == ["failed", "succeeded"]
    assert cleanup.read_text() == "run\n"


def test_outputs_reach_later_steps_only_through_their_sinks(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    """A playbook may echo what an incident said: its outputs are data, like a payload's
    values. In a later step's extra_vars they arrive as text (never rendered again); as
    a `limit` they must be inventory names, or the step fails before anything runs."""
    written, touched = tmp_path / "written", tmp_path / "touched"
    touched.mkdir()
    hostile = "{{ lookup('env','HOME') }} all ../ <!channel>"
    api = make_api([_runbook("echoes", [
        _step(ansible_step("outputs.yml", lag_s="1", seen="{{ incident.labels.instance }}"),
              id="look"),
        ansible_step("write.yml", message="{{ steps.look.outputs.seen }}", host="h",
                     dest=str(written)),
        {"ansible": {"playbook": "touch-hosts.yml", "inventory": "inventories/fleet.ini",
                     "limit": "{{ steps.look.outputs.seen }}",
                     "extra_vars": {"dest": str(touched)}}},
    ])])  # fmt: skip
    done = api.wait(
        api.alertmanager(alert("PrimaryDown", instance=hostile)).json()["executions"][0]
    )
    assert json.loads(written.read_text())["message"] == hostile
    assert done["status"] == "failed", done
    [look, write, limited] = done["steps"]
    assert write["spec"]["extra_vars"]["message"] == hostile
    assert limited["status"] == "failed" and limited["attempts"] == 0
    assert "limit" in limited["error"] and "inventory" in limited["error"], limited["error"]
    assert list(touched.iterdir()) == []  # no host was touched

    # An inventory name is what a limit takes: then it runs on that host alone.
    api.alertmanager(alert("PrimaryDown", instance="web-2", fingerprint="fp-2"))
    named = api.wait(api.executions()[0]["id"])
    assert named["status"] == "succeeded", named
    assert named["steps"][2]["spec"]["limit"] == "web-2"
    assert sorted(p.name for p in touched.iterdir()) == ["env-web-2", "web-2"]


def test_outputs_reach_chat_escaped_with_the_failure(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path
) -> None:
    """What a step found is in the escalation, as text: an output echoing Slack markup
    from the incident mentions no one and links nowhere."""
    api = make_api(
        [_runbook("look-then-fail", [
            _step(ansible_step("outputs.yml", lag_s="5", seen="{{ incident.labels.instance }}"),
                  id="look"),
            ansible_step("flaky.yml", marker=str(tmp_path / "m")),
        ], escalate=["slack"])],
        escalation={"slack": {"webhook_url": recorder.url + "/slack"}},
    )  # fmt: skip
    hostile = "<!channel> <https://evil.test|Runbook> & <@U0123>"
    api.wait(api.alertmanager(alert("PrimaryDown", instance=hostile)).json()["executions"][0])
    message = recorder.wait_for(1)[0].json()
    marked = slack_marked(message)
    for markup in ("<!channel>", "<https://evil.test|Runbook>", "<@U0123>"):
        assert not any(markup in text for text in marked)
    [found] = [text for text in marked if text.startswith("*Found:*")]
    assert "&lt;!channel&gt; &lt;https://evil.test|Runbook&gt; &amp; &lt;@U0123&gt;" in found
    assert '"lag_s": 5' in found


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("lag", "broken", "status", "ran"),
    [
        ("12", False, "succeeded", ["succeeded", "succeeded", "skipped", "skipped"]),
        ("45", False, "failed", ["succeeded", "skipped", "failed", "skipped"]),
        ("3", True, "failed", ["succeeded", "failed", "skipped", "succeeded"]),
    ],
)
def test_the_example_replica_failover_runbook(
    make_api: Callable[..., Api],
    recorder: Recorder,
    tmp_path: Path,
    lag: str,
    broken: bool,
    status: str,
    ran: list[str],
) -> None:
    """The README's example as shipped (its state kept in the test's directory): under
    30 s of lag it fails over; over it, it refuses and the escalation says the lag; a
    promotion that fails fences the replica."""
    book = yaml.safe_load((ROOT / "runbooks" / "replica-failover.yml").read_text())
    for step in [*book["diagnose"]["steps"], *book["steps"], *book["on_failure"]]:
        step["ansible"]["extra_vars"]["state_dir"] = str(tmp_path)
    (tmp_path / "orders-db-2.lag_s").write_text(lag)
    if broken:
        (tmp_path / "orders-db-2.broken").write_text("")
    api = make_api([book], playbooks_dir=str(ROOT / "playbooks"),
                   escalation={"webhook": {"url": recorder.url}})  # fmt: skip
    answer = api.alertmanager(alert("PrimaryDown", replica="orders-db-2"))
    done = api.wait(answer.json()["executions"][0])
    assert done["status"] == status, done
    assert [s["status"] for s in done["steps"]] == ran
    assert done["steps"][0]["outputs"] == {"replica": "orders-db-2", "lag_s": int(lag)}
    assert (tmp_path / "orders-db-2.promoted").exists() == (status == "succeeded")
    assert (tmp_path / "orders-db-2.fenced").exists() == broken
    said = [r.json() for r in recorder.wait_for(2 if status == "failed" else 1)]
    # The lag, posted before anything acted, under the runbook's headline.
    assert said[0]["type"] == "remediation.diagnosed"
    assert said[0]["summary"] == f"[remediator] replica orders-db-2 is {lag}s behind"
    if status == "failed":
        note = said[1]
        assert note["reason"] == "failed"
        if not broken:
            # The on-call human is told the lag: what the check found, and the refusal.
            found, refused = note["execution"]["steps"][0], note["execution"]["steps"][2]
            assert found["outputs"]["lag_s"] == 45
            assert "orders-db-2 is 45s behind" in refused["output_tail"]

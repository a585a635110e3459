"""The `awx` step through the real app against a stand-in AWX that checks each call
against AWX's documented contract: templated values reach the job, failures carry the
job's output and link, timeouts and cancels reach the engine, a template that would drop
our values is refused before any job runs, and an engine that is busy or down is waited
out without launching twice."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.service import Api, alert, runbook
from tests.support.standins.awx import AWX_TOKEN, AwxStandIn, awx_stand_in


@pytest.fixture
def awx() -> Iterator[AwxStandIn]:
    with awx_stand_in() as stand_in:
        yield stand_in


def awx_config(awx: AwxStandIn, **extra: Any) -> dict[str, Any]:
    return {"awx": {"url": awx.base, "token": AWX_TOKEN, "poll_interval_s": 0.1, **extra}}


def awx_runbook(name: str = "restart-nginx", **step: Any) -> dict[str, Any]:
    spec = {
        "job_template": name,
        "extra_vars": {"host": "{{ incident.labels.instance }}", "reason": "{{ incident.title }}"},
        "limit": "{{ incident.labels.instance }}",
        "timeout": "30s",
        **step,
    }
    return runbook("restart-via-awx", "NginxDown", {"awx": spec})


def start(make_api: Callable[..., Api], awx: AwxStandIn, book: dict[str, Any], **extra: Any) -> Api:
    return make_api([book], engines=awx_config(awx), **extra)


def fire(api: Api, instance: str = "web-1", fingerprint: str = "fp-1") -> str:
    answer = api.alertmanager(alert("NginxDown", instance=instance, fingerprint=fingerprint))
    assert answer.status_code == 202, answer.text
    (execution_id,) = answer.json()["executions"]
    return str(execution_id)


def test_a_job_runs_with_the_incidents_values_and_succeeds(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    awx.template("restart-nginx", seconds=0.6, artifacts={"restarted": ["web-7"], "took_s": 3})
    api = start(make_api, awx, awx_runbook())
    execution = api.wait(fire(api, instance="web-7"))
    assert execution["status"] == "succeeded", execution
    # The job's artifacts (its play's set_stats) are the step's outputs.
    assert execution["steps"][0]["outputs"] == {"restarted": ["web-7"], "took_s": 3}
    (launch,) = awx.launches
    assert launch["limit"] == "web-7"
    assert launch["extra_vars"]["host"] == "web-7"
    step = execution["steps"][0]
    assert step["detail"]["engine_status"] == "successful"
    assert step["detail"]["url"].endswith(f"/#/jobs/playbook/{step['detail']['job']}/output")
    assert "limit=web-7" in step["output_tail"]
    assert awx.violations == []


def test_a_failed_job_is_escalated_with_its_output_and_link(
    make_api: Callable[..., Api], awx: AwxStandIn, recorder: Any
) -> None:
    awx.template("restart-nginx", outcome="failed", seconds=0.3)
    api = make_api(
        [awx_runbook()], engines=awx_config(awx),
        escalation={"webhook": {"url": recorder.url}}, default_escalate=["webhook"],
    )  # fmt: skip
    execution = api.wait(fire(api))
    assert execution["status"] == "failed"
    assert "AWX job" in execution["error"] and "failed" in execution["error"]
    (sent,) = recorder.wait_for(1)
    attempt = sent.json()["execution"]["steps"][0]["attempt_log"][0]
    assert "PLAY RECAP *** failed" in attempt["output_tail"]
    assert attempt["detail"]["url"].startswith(f"{awx.base}/#/jobs/playbook/")
    assert attempt["detail"]["engine_status"] == "failed"
    assert awx.violations == []


def test_a_job_past_its_timeout_is_cancelled_on_the_engine(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    awx.template("restart-nginx", seconds=60)
    api = start(make_api, awx, awx_runbook(timeout="1s"))
    execution = api.wait(fire(api), timeout=30)
    assert execution["status"] == "timed_out", execution
    assert awx.cancels == [next(iter(awx.jobs))]
    assert execution["steps"][0]["detail"]["engine_status"] == "canceled"


def test_cancel_asks_the_engine_to_stop_the_job(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    awx.template("restart-nginx", seconds=60)
    api = start(make_api, awx, awx_runbook())
    execution_id = fire(api)
    api.wait(execution_id, until=lambda e: bool(awx.launches) and e["steps"][0]["detail"])
    assert api.act(execution_id, "cancel", reason="doing it by hand").status_code == 200
    execution = api.wait(execution_id, timeout=20)
    assert execution["status"] == "cancelled"
    assert len(awx.cancels) == 1
    assert "doing it by hand" in execution["error"]


@pytest.mark.parametrize("prompt", ["ask_limit", "ask_variables"])
def test_a_template_that_would_drop_our_values_is_refused_before_any_job(
    make_api: Callable[..., Api], awx: AwxStandIn, prompt: str
) -> None:
    awx.template("restart-nginx", **{prompt: False})
    api = start(make_api, awx, awx_runbook())
    execution = api.wait(fire(api))
    assert execution["status"] == "refused"
    assert execution["guard"] == "prompt_on_launch"
    assert "Prompt on launch" in execution["error"]
    assert ("Limit" if prompt == "ask_limit" else "Variables") in execution["error"]
    assert awx.launches == []


def test_ignored_fields_in_the_launch_answer_cancel_the_job_and_refuse(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    awx.template("restart-nginx", seconds=30, ignores=("limit",))
    api = start(make_api, awx, awx_runbook())
    execution = api.wait(fire(api))
    assert execution["status"] == "refused"
    assert "ignored limit" in execution["error"] and "was cancelled" in execution["error"]
    assert awx.cancels == [next(iter(awx.jobs))]


def test_a_limit_from_the_payload_may_only_name_hosts(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    awx.template("restart-nginx")
    api = start(make_api, awx, awx_runbook())
    execution = api.wait(fire(api, instance="all:!db-1"))
    assert execution["status"] == "failed"
    assert "limit" in execution["error"]
    assert awx.launches == []


def test_the_aap_gateway_root_is_found_and_used(make_api: Callable[..., Api]) -> None:
    with awx_stand_in(root="/api/controller/v2/") as aap:
        aap.template("restart-nginx")
        api = start(make_api, aap, awx_runbook())
        execution = api.wait(fire(api))
        assert execution["status"] == "succeeded", execution
        assert "/execution/jobs/playbook/" in execution["steps"][0]["detail"]["url"]
        assert aap.violations == []


def test_a_busy_engine_is_waited_out_and_launched_once(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    awx.template("restart-nginx", seconds=0.5)
    awx.busy = 3
    api = start(make_api, awx, awx_runbook())
    execution = api.wait(fire(api), timeout=40)
    assert execution["status"] == "succeeded", execution
    assert len(awx.launches) == 1


def test_an_engine_down_while_a_job_runs_is_followed_once_it_is_back(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    awx.template("restart-nginx", seconds=2)
    api = start(make_api, awx, awx_runbook())
    execution_id = fire(api)
    api.wait(execution_id, until=lambda e: bool(awx.launches) and bool(e["steps"][0]["detail"]))
    awx.stop()
    time.sleep(1.0)
    assert api.execution(execution_id)["status"] == "running"
    awx.start()
    execution = api.wait(execution_id, timeout=30)
    assert execution["status"] == "succeeded", execution
    assert len(awx.launches) == 1


def test_an_unconfigured_engine_fails_the_step_saying_so(make_api: Callable[..., Api]) -> None:
    api = make_api([awx_runbook()])
    execution = api.wait(fire(api))
    assert execution["status"] == "failed"
    assert "no executor for 'awx'" in execution["error"]


def test_a_workflow_job_template_is_launched_and_followed(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    awx.template("patch-and-restart", workflow=True, seconds=0.4)
    book = awx_runbook()
    book["steps"] = [{"awx": {"workflow_job_template": "patch-and-restart",
                              "extra_vars": {"host": "{{ incident.labels.instance }}"}}}]  # fmt: skip
    api = start(make_api, awx, book)
    execution = api.wait(fire(api))
    assert execution["status"] == "succeeded", execution
    assert "/#/jobs/workflow/" in execution["steps"][0]["detail"]["url"]
    assert awx.violations == []


def test_a_local_step_after_a_remote_one_runs_once_the_job_succeeded(
    make_api: Callable[..., Api], awx: AwxStandIn, tmp_path: Any
) -> None:
    awx.template("restart-nginx", seconds=0.3)
    dest = tmp_path / "after.json"
    book = awx_runbook()
    book["steps"].append({"ansible": {"playbook": "write.yml", "extra_vars": {
        "message": "after awx", "host": "{{ incident.labels.instance }}", "dest": str(dest)}}})  # fmt: skip
    api = start(make_api, awx, book)
    execution = api.wait(fire(api, instance="web-2"))
    assert execution["status"] == "succeeded", execution
    assert [s["status"] for s in execution["steps"]] == ["succeeded", "succeeded"]
    assert '"host": "web-2"' in dest.read_text()


def test_a_failed_job_is_launched_again_as_the_retry_policy_says(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    awx.template("restart-nginx", outcome="failed", seconds=0.2)
    book = awx_runbook()
    book["retry"] = {"attempts": 2, "backoff": "0.1s"}
    api = start(make_api, awx, book)
    execution = api.wait(fire(api))
    assert execution["status"] == "failed"
    assert execution["steps"][0]["attempts"] == 2
    assert len(awx.launches) == 2


def test_jobs_are_followed_on_each_database(
    make_api: Callable[..., Api], awx: AwxStandIn, database_url: str
) -> None:
    awx.template("restart-nginx", seconds=0.5)
    api = make_api([awx_runbook()], engines=awx_config(awx), database_url=database_url)
    ids = [fire(api, instance=f"web-{i}", fingerprint=f"fp-{i}") for i in range(5)]
    for execution_id in ids:
        assert api.wait(execution_id)["status"] == "succeeded"
    assert len(awx.launches) == 5


def shadow_runbook(**step: Any) -> dict[str, Any]:
    book = awx_runbook(**step)
    book["mode"] = "shadow"
    return book


def test_a_shadow_launches_a_check_job_and_says_which_hosts_would_change(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    awx.template("restart-nginx", seconds=0.3, ask_job_type=True)
    api = start(make_api, awx, shadow_runbook(check=True))
    execution = api.wait(fire(api, instance="web-7"))
    assert execution["status"] == "shadowed", execution
    [launch] = awx.launches
    assert launch["job_type"] == "check" and launch["limit"] == "web-7"
    [step] = execution["steps"]
    assert step["status"] == "would_run"
    assert step["detail"]["shadow"] == {"outcome": "would change"}
    assert step["detail"]["changed"] == ["web-7"]
    assert step["detail"]["summary"].startswith("would change: 1 host(s) would change: web-7")
    assert awx.violations == []


def test_a_shadow_check_on_a_template_without_the_job_type_prompt_is_refused_clearly(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    awx.template("restart-nginx")  # Prompt on launch for Job Type is off
    api = start(make_api, awx, shadow_runbook(check=True))
    execution = api.wait(fire(api))
    assert execution["status"] == "shadowed", execution
    [step] = execution["steps"]
    assert "Job Type" in step["error"] and awx.launches == []  # no job ran at all


def test_a_shadow_without_check_sends_nothing_to_awx(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    awx.template("restart-nginx", ask_job_type=True)
    api = start(make_api, awx, shadow_runbook())
    execution = api.wait(fire(api))
    assert execution["status"] == "shadowed", execution
    assert execution["steps"][0]["detail"]["shadow"] == {"outcome": "rendered only"}
    assert awx.launches == []


def test_remote_steps_decide_read_outputs_and_run_on_failure(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    """Each step launched on the engine in turn, from any worker: the second is decided
    by what the first job's artifacts said and launched with them (rendered just before
    it runs), it fails, and the runbook's on_failure job runs with the failed run in view."""
    awx.template("restart-nginx", seconds=0.2, artifacts={"restarted": "web-7", "took_s": 3})
    awx.template("warm-cache", outcome="failed", seconds=0.2)
    awx.template("never", seconds=0.1)
    awx.template("rollback", seconds=0.1)
    book = {
        "name": "restart-warm-or-roll-back",
        "match": {"all": [{"field": "labels.alertname", "equals": "NginxDown"}]},
        "steps": [
            {"id": "restart", "awx": {"job_template": "restart-nginx", "timeout": "30s"}},
            {"id": "warm", "when": "steps.restart.outputs.took_s > 1", "awx": {
                "job_template": "warm-cache", "timeout": "30s",
                "extra_vars": {"host": "{{ steps.restart.outputs.restarted }}"}}},
            {"awx": {"job_template": "never", "timeout": "30s"}},
        ],
        "on_failure": [{"awx": {"job_template": "rollback", "timeout": "30s", "extra_vars": {
            "why": "{{ steps.warm.status }}", "host": "{{ steps.restart.outputs.restarted }}"}}}],
    }  # fmt: skip
    api = start(make_api, awx, book)
    execution = api.wait(fire(api))
    assert execution["status"] == "failed", execution
    assert execution["error"].startswith("step 2 (awx): AWX job")
    assert [(s["phase"], s["status"]) for s in execution["steps"]] == [
        ("steps", "succeeded"), ("steps", "failed"), ("steps", "skipped"),
        ("on_failure", "succeeded"),
    ]  # fmt: skip
    launched = [(launch["template"], launch.get("extra_vars")) for launch in awx.launches]
    assert launched == [
        ("restart-nginx", None),
        ("warm-cache", {"host": "web-7"}),
        ("rollback", {"why": "failed", "host": "web-7"}),
    ]
    assert awx.violations == []


def test_a_running_jobs_output_is_followed_live_from_the_engine(
    make_api: Callable[..., Api], awx: AwxStandIn
) -> None:
    """Each look at a running job asks AWX for the lines after those already shown
    (`stdout/?format=json&start_line=N`, checked against the contract): the output grows
    while the job runs, each line once, colour codes taken out."""
    awx.template("restart-nginx", seconds=3.0)
    api = start(make_api, awx, awx_runbook())
    execution_id = fire(api)

    def live() -> str:
        answer = api.client.get(f"/api/executions/{execution_id}/attempts/1/output",
                                headers=api.auth)  # fmt: skip
        if answer.status_code == 404:  # not launched yet
            return ""
        return "".join(chunk["text"] for chunk in answer.json()["chunks"])

    deadline = time.monotonic() + 30
    while "progress 3" not in live() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "progress 3" in live()
    assert api.execution(execution_id)["status"] == "running"  # seen while it runs
    done = api.wait(execution_id)
    assert done["status"] == "succeeded"
    text = live()
    assert text.startswith("PLAY [restart-nginx] ***\nTASK [restart] ***\n")
    assert "\x1b" not in text
    # Each line once, in order (the ones printed after the last look come with the end,
    # in the step's output tail).
    progress = [line for line in text.splitlines() if line.startswith("progress")]
    assert progress == [f"progress {n}" for n in range(1, len(progress) + 1)]
    assert awx.violations == []

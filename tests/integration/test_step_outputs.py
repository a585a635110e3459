"""A step's outputs, through the real app and a real `ansible-playbook`: what a play sets
with `set_stats` is the step's `outputs` in the API, as data (a payload's text stays text),
masked like everything shown (the runbook's `secret_vars`, the service's secrets), and
bounded (over 64 KiB the step fails saying so)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from app.execution_text import describe_execution
from app.views import ExecutionView
from tests.support.service import AM_TOKEN, Api, alert, ansible_step, runbook

pytestmark = pytest.mark.ansible


def test_what_a_play_sets_is_the_steps_outputs_as_data_and_masked(
    make_api: Callable[..., Api],
) -> None:
    step = ansible_step("outputs.yml", lag_s="12", seen="{{ incident.labels.instance }}")
    api = make_api([runbook("look", "Look", step)])
    hostile = "web-1 {{ lookup('env', 'HOME') }} ../ <!channel>"
    answer = api.alertmanager(alert("Look", instance=hostile))
    done = api.wait(answer.json()["executions"][0])
    assert done["status"] == "succeeded", done
    outputs = done["steps"][0]["outputs"]
    assert outputs["lag_s"] in (12, "12") and outputs["big"] == ""
    assert outputs["seen"] == hostile  # as it came: data, never rendered
    # `remediator executions show` lists them under the step.
    shown = describe_execution(ExecutionView.model_validate(done))
    assert f"     output seen: {json.dumps(hostile)}" in shown.splitlines()

    # A value the runbook names in `secret_vars`, and one of the service's own secrets,
    # are masked in the outputs as everywhere else they are shown.
    masked = make_api([runbook("look", "Look", ansible_step(
        "outputs.yml", lag_s="1", seen="{{ incident.labels.token }} and {{ incident.title }}",
        token="{{ incident.labels.token }}",
    ), secret_vars=["token"])], database_url="sqlite:///masked.db")  # fmt: skip
    answer = masked.alertmanager(alert("Look", instance=AM_TOKEN, token="tok-from-the-alert-01"))
    done = masked.wait(answer.json()["executions"][0])
    assert done["steps"][0]["outputs"]["seen"] == "*** and Look on ***"


def test_outputs_over_64_kib_fail_the_step_saying_so(make_api: Callable[..., Api]) -> None:
    step = ansible_step("outputs.yml", lag_s="1", seen="x", big="70000")
    api = make_api([runbook("look", "Look", step)], escalation={})
    done = api.wait(api.alertmanager(alert("Look")).json()["executions"][0])
    assert done["status"] == "failed"
    [shown] = done["steps"]
    assert shown["outputs"] is None
    assert "outputs are 68 KiB, over the 64 KiB a step may keep" in shown["error"]


def test_a_shadow_run_shows_the_outputs_its_check_mode_play_set(
    make_api: Callable[..., Api],
) -> None:
    step = ansible_step("outputs.yml", lag_s="7", seen="{{ incident.labels.instance }}")
    api = make_api([runbook("look", "Look", step, mode="shadow")])
    done = api.wait(api.alertmanager(alert("Look", instance="db-2")).json()["executions"][0])
    assert done["status"] == "shadowed", done
    assert done["steps"][0]["outputs"]["seen"] == "db-2"

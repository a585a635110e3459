"""The `pipeline` step through the real app against stand-in GitHub Actions and GitLab CI
that check each call against the engines' documented contracts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.errors import RunbookError
from app.runbooks.models import Runbook
from tests.support.service import Api, alert, runbook
from tests.support.standins.pipeline import (
    GITHUB_TOKEN,
    GITLAB_TOKEN,
    PipelineStandIn,
    pipeline_stand_in,
)


@pytest.fixture
def ci() -> Iterator[PipelineStandIn]:
    with pipeline_stand_in() as stand_in:
        yield stand_in


def engines(ci: PipelineStandIn) -> dict[str, Any]:
    return {
        "github": {"url": ci.base, "token": GITHUB_TOKEN, "poll_interval_s": 0.1},
        "gitlab": {"url": ci.base, "token": GITLAB_TOKEN, "poll_interval_s": 0.1},
    }


GITHUB_STEP = {"github": {"repo": "acme/web", "workflow": "rollback.yml", "ref": "main",
                          "inputs": {"service": "{{ incident.labels.service }}", "dry_run": False}}}  # fmt: skip
GITLAB_STEP = {"gitlab": {"project": "acme/web", "ref": "main",
                          "variables": {"SERVICE": "{{ incident.labels.service }}"}}}  # fmt: skip


def start(
    make_api: Callable[..., Api], ci: PipelineStandIn, step: dict[str, Any], **extra: Any
) -> Api:
    book = runbook("rollback", "WebErrors", {"pipeline": {**step, **extra}})
    return make_api([book], engines=engines(ci))


def fire(api: Api, service: str = "web") -> str:
    answer = api.alertmanager(alert("WebErrors", service=service))
    assert answer.status_code == 202, answer.text
    (execution_id,) = answer.json()["executions"]
    return str(execution_id)


@pytest.mark.parametrize("step", [GITHUB_STEP, GITLAB_STEP], ids=["github", "gitlab"])
def test_a_pipeline_runs_with_the_incidents_values_and_succeeds(
    make_api: Callable[..., Api], ci: PipelineStandIn, step: dict[str, Any]
) -> None:
    api = start(make_api, ci, step)
    execution = api.wait(fire(api, service="checkout"))
    assert execution["status"] == "succeeded", execution
    (dispatch,) = ci.dispatches
    if "github" in step:
        assert dispatch["inputs"] == {"service": "checkout", "dry_run": "false"}
        assert dispatch["return_run_details"] is True
    else:
        assert dispatch["variables"] == [
            {"key": "SERVICE", "value": "checkout", "variable_type": "env_var"}
        ]
        assert dispatch["where"] == "acme/web"
    assert execution["steps"][0]["detail"]["url"].startswith(ci.base)
    assert ci.violations == []


@pytest.mark.parametrize("step", [GITHUB_STEP, GITLAB_STEP], ids=["github", "gitlab"])
def test_a_failed_pipeline_fails_with_what_failed(
    make_api: Callable[..., Api], ci: PipelineStandIn, step: dict[str, Any]
) -> None:
    ci.outcome = "failure"
    api = start(make_api, ci, step)
    execution = api.wait(fire(api))
    assert execution["status"] == "failed"
    tail = execution["steps"][0]["output_tail"]
    assert ("step deploy" in tail) if "github" in step else ("ERROR: rollback failed" in tail)
    assert ci.violations == []


@pytest.mark.parametrize("step", [GITHUB_STEP, GITLAB_STEP], ids=["github", "gitlab"])
def test_a_pipeline_past_its_timeout_is_cancelled(
    make_api: Callable[..., Api], ci: PipelineStandIn, step: dict[str, Any]
) -> None:
    ci.seconds = 60
    api = start(make_api, ci, step, timeout="1s")
    execution = api.wait(fire(api), timeout=30)
    assert execution["status"] == "timed_out", execution
    assert ci.cancels == list(ci.runs)
    assert ci.violations == []


def test_an_older_github_without_run_details_is_followed_by_finding_the_run(
    make_api: Callable[..., Api],
) -> None:
    with pipeline_stand_in(old_github=True) as ci:
        api = start(make_api, ci, GITHUB_STEP)
        execution = api.wait(fire(api))
        assert execution["status"] == "succeeded", execution
        assert len(ci.runs) == 1
        assert ci.violations == []


def test_a_ref_or_repo_that_would_leave_its_path_is_refused_at_load(
    make_api: Callable[..., Api], ci: PipelineStandIn
) -> None:
    for bad in ({"repo": "acme/web/../../orgs", "workflow": "r.yml", "ref": "main"},
                {"repo": "acme/web", "workflow": "r.yml", "ref": "--upload-pack=x"},
                {"repo": "acme/web", "workflow": "../r.yml", "ref": "main"}):  # fmt: skip
        with pytest.raises((ValueError, RunbookError)):
            Runbook.model_validate(runbook("r", "A", {"pipeline": {"github": bad}}))


@pytest.mark.parametrize("step", [GITHUB_STEP, GITLAB_STEP], ids=["github", "gitlab"])
def test_a_hostile_payload_value_reaches_the_engine_as_inert_data(
    make_api: Callable[..., Api], ci: PipelineStandIn, step: dict[str, Any]
) -> None:
    hostile = "{{ 7*7 }} $(rm -rf /); ../../orgs ${{ secrets.TOKEN }}"
    api = start(make_api, ci, step)
    assert api.wait(fire(api, service=hostile))["status"] == "succeeded"
    (dispatch,) = ci.dispatches
    sent = dispatch["inputs"]["service"] if "github" in step else dispatch["variables"][0]["value"]
    assert sent == hostile
    assert dispatch["where"] == "acme/web"
    assert ci.violations == []

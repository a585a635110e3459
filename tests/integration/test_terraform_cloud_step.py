"""The `terraform_cloud` step through the real app against a stand-in HCP Terraform that
checks each call against its documented contract: a revert plans on the earlier
configuration version, the guard discards a plan that destroys too much, a timeout
cancels the run, and a verified revert is recorded as known good for `last_good`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.service import Api, alert, runbook
from tests.support.standins.tfc import TFC_TOKEN, TfcStandIn, tfc_stand_in


@pytest.fixture
def tfc() -> Iterator[TfcStandIn]:
    with tfc_stand_in() as stand_in:
        yield stand_in


def start(make_api: Callable[..., Api], tfc: TfcStandIn, **step: Any) -> Api:
    spec = {"organization": "acme", "workspace": "web-prod", "revert_to": "previous", **step}
    book = runbook("revert-web", "WebReleaseErrors", {"terraform_cloud": spec})
    return make_api([book], engines={"terraform_cloud": {"url": tfc.base, "token": TFC_TOKEN,
                                                           "poll_interval_s": 0.1}})  # fmt: skip


def fire(api: Api, fingerprint: str = "fp-1") -> str:
    answer = api.alertmanager(alert("WebReleaseErrors", fingerprint=fingerprint))
    assert answer.status_code == 202, answer.text
    (execution_id,) = answer.json()["executions"]
    return str(execution_id)


def test_a_revert_plans_the_previous_version_applies_it_and_records_it_good(
    make_api: Callable[..., Api], tfc: TfcStandIn
) -> None:
    tfc.outputs = {"release": ("release-1", False), "db_password": ("hunter2-long", True)}
    api = start(make_api, tfc)
    execution = api.wait(fire(api))
    assert execution["status"] == "succeeded", execution
    # The state's outputs once processed (the first look found them not yet), masked
    # where sensitive.
    assert execution["steps"][0]["outputs"] == {"release": "release-1", "db_password": "***"}
    (created,) = tfc.created
    version = created["data"]["relationships"]["configuration-version"]["data"]["id"]
    assert version == "cv-before"
    assert created["data"]["attributes"]["auto-apply"] is False
    (run_id,) = tfc.runs
    assert (run_id, "apply") in tfc.actions
    assert execution["steps"][0]["detail"]["engine_status"] == "applied"
    assert tfc.violations == []
    # Now known good: a last_good revert asks for that version.
    second = start(make_api, tfc, revert_to="last_good")
    assert second.wait(fire(second, "fp-2"))["status"] == "succeeded"
    assert tfc.created[-1]["data"]["relationships"]["configuration-version"]["data"]["id"] == (
        "cv-before"
    )


def test_a_plan_that_destroys_too_much_is_discarded_and_refused(
    make_api: Callable[..., Api], tfc: TfcStandIn
) -> None:
    tfc.versions["cv-before"] = 3
    api = start(make_api, tfc)
    execution = api.wait(fire(api))
    assert execution["status"] == "refused"
    assert execution["guard"] == "max_destroy"
    (run_id,) = tfc.runs
    assert (run_id, "discard") in tfc.actions
    assert (run_id, "apply") not in tfc.actions
    assert tfc.runs[run_id].status == "discarded"


def test_a_plan_with_no_changes_succeeds_without_applying(
    make_api: Callable[..., Api], tfc: TfcStandIn
) -> None:
    tfc.no_changes = True
    tfc.outputs = {"release": ("release-1", False)}
    api = start(make_api, tfc)
    execution = api.wait(fire(api))
    assert execution["status"] == "succeeded"
    assert [a for _, a in tfc.actions] == []
    assert execution["steps"][0]["outputs"] == {"release": "release-1"}  # the state as it is


def test_a_run_past_its_timeout_is_cancelled(make_api: Callable[..., Api], tfc: TfcStandIn) -> None:
    tfc.plan_seconds = 60
    api = start(make_api, tfc, timeout="1s")
    execution = api.wait(fire(api), timeout=30)
    assert execution["status"] == "timed_out", execution
    (run_id,) = tfc.runs
    assert (run_id, "cancel") in tfc.actions
    assert tfc.runs[run_id].status == "canceled"


def test_last_good_with_nothing_recorded_fails_clearly(
    make_api: Callable[..., Api], tfc: TfcStandIn
) -> None:
    api = start(make_api, tfc, revert_to="last_good")
    execution = api.wait(fire(api))
    assert execution["status"] == "failed"
    assert "no version of tfc:acme/web-prod is recorded as good" in execution["error"]
    assert tfc.runs == {}


def start_shadow(make_api: Callable[..., Api], tfc: TfcStandIn) -> Api:
    spec = {"organization": "acme", "workspace": "web-prod", "revert_to": "previous"}
    book = runbook("revert-web", "WebReleaseErrors", {"terraform_cloud": spec}, mode="shadow")
    return make_api([book], engines={"terraform_cloud": {"url": tfc.base, "token": TFC_TOKEN,
                                                           "poll_interval_s": 0.1}})  # fmt: skip


@pytest.mark.parametrize(("destroys", "outcome"), [(0, "would change"), (3, "would be refused")])
def test_a_shadow_revert_is_a_plan_only_run_never_applied(
    make_api: Callable[..., Api], tfc: TfcStandIn, destroys: int, outcome: str
) -> None:
    tfc.versions["cv-before"] = destroys
    api = start_shadow(make_api, tfc)
    execution = api.wait(fire(api))
    assert execution["status"] == "shadowed", execution
    (created,) = tfc.created
    assert created["data"]["attributes"]["plan-only"] is True
    assert tfc.actions == []  # never applied, nothing to discard
    [step] = execution["steps"]
    assert step["status"] == "would_run" and step["detail"]["shadow"] == {"outcome": outcome}
    assert "HCP Terraform plan-only run" in step["detail"]["summary"]
    if destroys:
        assert "more than max_destroy 0" in step["detail"]["summary"]
    else:
        assert step["detail"]["plan"]["change"] == ["aws_lb.web"]
    # A shadow records no version as good.
    assert api.client.get("/api/terraform/versions", params={"workdir": "tfc:acme/web-prod"},
                          headers=api.auth).json() == []  # fmt: skip
    assert tfc.violations == []


def test_outputs_never_processed_end_the_applied_step_without_them(
    make_api: Callable[..., Api], tfc: TfcStandIn
) -> None:
    tfc.outputs, tfc.processing_looks = {"release": ("release-1", False)}, 1000
    api = start(make_api, tfc)
    execution = api.wait(fire(api))
    assert execution["status"] == "succeeded", execution  # the run applied: done
    assert execution["steps"][0]["outputs"] is None
    (run_id,) = tfc.runs
    assert tfc.state_looks[run_id] == 11  # the first look and ten more, then no longer

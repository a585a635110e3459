"""The trust rules alone: which mode wins (refuse > shadow > approve > auto), when a
freeze is active (cron in its time zone, across a DST change), which pause covers which
runbook, and what each step kind counts as its targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from app.config.sections import EngineConfig
from app.config.settings import Settings
from app.config.trust import Freeze
from app.runbooks.models import Batch, Runbook
from app.runbooks.trust import Pause, decide
from app.steps.ansible.executor import AnsibleExecutor
from app.steps.awx import AwxExecutor
from app.steps.pipeline.executor import PipelineExecutor
from app.steps.terraform.executor import TerraformExecutor
from app.steps.terraform_cloud import TerraformCloudExecutor
from tests.support.service import TEST_PLAYBOOKS

NOW = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)  # a Wednesday


def decided(**given: Any) -> tuple[str, str]:
    arguments: dict[str, Any] = {
        "runbook": "clear-cache", "own": "auto", "now": NOW, "pause": None,
        "pause_mode": "shadow", "freezes": [], "breaker_then": None,
    } | given  # fmt: skip
    decision = decide(**arguments)
    return decision.mode, decision.by


def one_off(mode: str, runbooks: list[str] | None = None, hours: float = 1) -> Freeze:
    return Freeze(name="f", start=NOW - timedelta(hours=hours), end=NOW + timedelta(hours=hours),
                  mode=mode, runbooks=runbooks or ["*"])  # fmt: skip


PAUSE = Pause("alice", "major incident", NOW - timedelta(minutes=5), None, None)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, ("auto", "runbook")),
        ({"own": "approve"}, ("approve", "runbook")),
        ({"own": "shadow", "breaker_then": "approve"}, ("shadow", "runbook")),
        ({"pause": PAUSE}, ("shadow", "pause")),
        ({"pause": PAUSE, "pause_mode": "approve", "own": "shadow"}, ("shadow", "runbook")),
        ({"freezes": [one_off("approve")]}, ("approve", "freeze")),
        ({"freezes": [one_off("approve")], "breaker_then": "shadow"}, ("shadow", "breaker")),
        ({"pause": PAUSE, "breaker_then": "refuse"}, ("refuse", "breaker")),
        ({"freezes": [one_off("shadow", ["other-*"])]}, ("auto", "runbook")),
        ({"pause": Pause("a", "r", NOW - timedelta(hours=2), NOW - timedelta(hours=1), None)},
         ("auto", "runbook")),  # its `until` is past
        ({"pause": Pause("a", "r", NOW, None, ["restart-*"])}, ("auto", "runbook")),
        ({"pause": Pause("a", "r", NOW, None, ["clear-*"])}, ("shadow", "pause")),
    ],
)  # fmt: skip
def test_the_strictest_wins(given: dict[str, Any], expected: tuple[str, str]) -> None:
    assert decided(**given) == expected


def test_approval_true_still_means_approve_and_mode_says_it_outright() -> None:
    step = {"ansible": {"playbook": "write.yml"}}
    assert (
        Runbook.model_validate({"name": "a", "steps": [step], "approval": True}).own_mode
        == "approve"
    )
    assert Runbook.model_validate({"name": "a", "steps": [step]}).own_mode == "auto"
    assert (
        Runbook.model_validate({"name": "a", "steps": [step], "mode": "shadow"}).own_mode
        == "shadow"
    )


FRIDAYS = {"name": "weekend", "schedule": "0 18 * * FRI", "duration": "64h",
           "timezone": "Europe/Berlin"}  # fmt: skip


@pytest.mark.parametrize(
    ("at", "active"),
    [
        ("2026-12-04T16:59:59Z", False),  # 17:59:59 in Berlin (UTC+1)
        ("2026-12-04T17:00:00Z", True),  # Friday 18:00 in Berlin
        ("2026-12-06T21:00:00Z", True),  # Sunday night
        ("2026-12-07T08:59:59Z", True),  # Monday 09:59:59 in Berlin
        ("2026-12-07T09:00:00Z", False),  # Monday 10:00 in Berlin: 64 h on
        # Spring forward on Sunday 2027-03-28: Friday 18:00 (UTC+1) + 64 h of wall clock
        # ends Monday 10:00 in summer time (UTC+2), 08:00 UTC.
        ("2027-03-29T07:59:59Z", True),
        ("2027-03-29T08:00:00Z", False),
        # Fall back on Sunday 2027-10-31: Monday 10:00 winter time is 09:00 UTC.
        ("2027-11-01T08:59:59Z", True),
        ("2027-11-01T09:00:00Z", False),
    ],
)
def test_a_recurring_freeze_follows_its_time_zone_across_dst(at: str, active: bool) -> None:
    freeze = Freeze.model_validate(FRIDAYS)
    now = datetime.fromisoformat(at)
    assert (freeze.active(now) is not None) == active


def test_a_freeze_that_is_not_active_shows_its_next_window() -> None:
    freeze = Freeze.model_validate(FRIDAYS)
    start, end = freeze.window(datetime.fromisoformat("2026-12-09T12:00:00+00:00")) or (None, None)
    assert start == datetime(2026, 12, 11, 17, 0, tzinfo=UTC)
    assert end == datetime(2026, 12, 14, 9, 0, tzinfo=UTC)
    past = Freeze(name="x", start=NOW - timedelta(days=2), end=NOW - timedelta(days=1))
    assert past.window(NOW) is None


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"schedule": "0 18 * * FRYDAY", "duration": "1h"}, "not a cron expression"),
        ({"schedule": "0 18 * * FRI"}, "needs both schedule and duration"),
        ({"schedule": "0 18 * * FRI", "duration": "1h", "timezone": "Mars/Olympus"},
         "unknown time zone"),
        ({"start": "2026-12-01T00:00:00Z"}, "needs both start and end"),
        ({"start": "2026-12-01T00:00:00", "end": "2026-12-02T00:00:00"}, "need a time zone"),
        ({"start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"}, "end must be after"),
        ({"schedule": "0 18 * * FRI", "duration": "1h", "start": "2026-12-01T00:00:00Z",
          "end": "2026-12-02T00:00:00Z"}, "either schedule and duration, or start and end"),
    ],
)  # fmt: skip
def test_a_wrong_freeze_is_refused_at_start(given: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings.model_validate({"freezes": [{"name": "f", **given}]})


def test_max_errors_is_a_count_or_a_percentage_of_the_hosts() -> None:
    assert Batch(max_errors=5).errors_allowed().limit(200) == 5  # type: ignore[union-attr]
    assert Batch(max_errors="10%").errors_allowed().limit(200) == 20  # type: ignore[union-attr]
    assert Batch(max_errors="1%").errors_allowed().limit(10) == 1  # type: ignore[union-attr]
    assert Batch().errors_allowed() is None
    for wrong in ("ten", "10", "%", 0):
        with pytest.raises(ValidationError):
            Batch(max_errors=wrong)


def test_each_kind_counts_what_it_acts_on(tmp_path: Path) -> None:
    ansible = AnsibleExecutor(TEST_PLAYBOOKS)
    fleet = {"playbook": "touch-hosts.yml", "inventory": "inventories/fleet.ini", "extra_vars": {}}
    assert ansible.targets(fleet | {"limit": "web", "limit_names": ["web"]}) == ["web-1", "web-2"]
    assert ansible.targets(fleet | {"limit": "web-1,db-1"}) == ["db-1", "web-1"]
    assert ansible.targets(fleet) == ["db-1", "web-1", "web-2"]  # no limit: every host
    assert ansible.targets({"playbook": "write.yml", "extra_vars": {}}) == ["localhost"]
    terraform = TerraformExecutor(tmp_path, lambda _: None)
    assert terraform.targets({"workdir": "web", "revert_to": "previous"}) == ["workdir:web"]
    engine = EngineConfig(url="https://engine.test", token=SecretStr("t"))
    awx = AwxExecutor(engine)
    assert awx.targets({"job_template": "restart", "limit": "web-1,web-2:web-1"}) == [
        "web-1",
        "web-2",
    ]
    assert awx.targets({"workflow_job_template": "rollout"}) == ["workflow_job_template:rollout"]
    cloud = TerraformCloudExecutor(engine, lambda _: None)
    assert cloud.targets({"organization": "acme", "workspace": "web-prod"}) == [
        "workspace:acme/web-prod"
    ]
    pipeline = PipelineExecutor({"github": engine, "gitlab": engine})
    assert pipeline.targets({"github": {"repo": "acme/web", "workflow": "rollback.yml"}}) == [
        "github:acme/web/rollback.yml"
    ]
    assert pipeline.targets({"gitlab": {"project": "acme/web", "ref": "main"}}) == [
        "gitlab:acme/web@main"
    ]

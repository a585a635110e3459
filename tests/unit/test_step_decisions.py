"""The rules of `when` and of reading earlier steps: a `when` yields true or false or
fails naming itself, says what it saw, and cannot reach past the sandbox; a step may read
only steps that run before it (checked when the runbook loads, with file and line); a
step that reads them is stored as written and rendered just before it runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from app.config.trust import Breaker
from app.errors import RunbookError, TemplateError
from app.executions.trust import with_targets
from app.runbooks.decisions import decide, reads_steps
from app.runbooks.loader import load_runbooks
from app.runbooks.plan import plan
from app.runbooks.trust import TrustPolicy
from tests.unit.test_matcher import incident as incident_with

ROOT = Path(__file__).resolve().parents[2]
STEPS = {"lag": {"status": "succeeded", "outputs": {"lag_s": 45, "role": "replica"}}}


def _context(**steps: Any) -> dict[str, Any]:
    return {"incident": {"severity": "critical"}, "runbook": {"name": "r"}, "steps": steps}


def test_a_when_decides_and_says_what_it_saw() -> None:
    decision = decide("steps.lag.outputs.lag_s < 30", _context(**STEPS))
    assert decision.run is False
    assert decision.saw == {"steps.lag.outputs.lag_s": 45}
    both = decide(
        "steps.lag.outputs['role'] == 'replica' and incident.severity == 'critical'",
        _context(**STEPS),
    )
    assert both.run is True
    assert both.saw == {"steps.lag.outputs.role": "replica", "incident.severity": "critical"}
    assert decision.summary("steps.lag.outputs.lag_s < 30") == (
        "skipped: when `steps.lag.outputs.lag_s < 30` is false (steps.lag.outputs.lag_s = 45)"
    )


@pytest.mark.parametrize(
    ("when", "said"),
    [
        ("steps.lag.outputs.role", "gave str 'replica', not true or false"),
        ("steps.lag.outputs.lag_s", "gave int 45, not true or false"),
        ("steps.lag.outputs.missing < 30", "has no attribute 'missing'"),
        ("steps.lag.outputs.missing", "has no attribute 'missing'"),
        ("steps.lag.outputs.role < 30", "not supported between"),
        # The sandbox: no way from a value to Python's internals.
        ("steps.lag.outputs.__class__.__mro__ == 1", "__class__"),
    ],
)
def test_a_when_that_is_not_a_boolean_fails_naming_itself(when: str, said: str) -> None:
    with pytest.raises(TemplateError) as info:
        decide(when, _context(**STEPS))
    assert str(info.value).startswith(f"when `{when}`")
    assert said in str(info.value)


def test_an_output_is_compared_never_rendered() -> None:
    hostile = {"lag": {"status": "succeeded", "outputs": {"x": "{{ 7 * 7 }}"}}}
    assert decide("steps.lag.outputs.x == '{{ 7 * 7 }}'", _context(**hostile)).run is True
    assert decide("steps.lag.outputs.x == '49'", _context(**hostile)).run is False


def _load(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "rb.yml").write_text(text)
    try:
        load_runbooks([tmp_path], playbooks_dir=ROOT / "playbooks")
    except RunbookError as exc:
        return [re.sub(r"^.*?:\d+: (at )?", "", str(p)) for p in exc.problems]
    return []


LOOK = "{ansible: {playbook: clear-cache.yml}}"


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        # Reading a step that runs later (or itself) is known at load, not at 3 a.m.
        (
            "[{id: a, when: 'steps.b.status == \"failed\"', ansible: {playbook: clear-cache.yml}},"
            " {id: b, ansible: {playbook: clear-cache.yml}}]",
            "steps[0].when template reads steps, but no step with an id runs before it",
        ),
        (
            "[{id: a, ansible: {playbook: clear-cache.yml}}, {when: steps.b.outputs.x, "
            "ansible: {playbook: clear-cache.yml}}]",
            "steps[1].when template reads steps.b: no step with that id runs before it "
            "(before it: a)",
        ),
        (
            "[{id: a, ansible: {playbook: clear-cache.yml}}, {when: steps.a.output.x, "
            "ansible: {playbook: clear-cache.yml}}]",
            "steps[1].when template reads steps.a.output: a step has status, outputs",
        ),
        (
            "[{id: a, ansible: {playbook: clear-cache.yml}}, {ansible: {playbook: "
            "clear-cache.yml, extra_vars: {x: '{{ steps.a.outputs.x }}'}}},"
            " {ansible: {playbook: clear-cache.yml, limit: '{{ steps.c.outputs.h }}'}}]",
            "steps[2].ansible.limit template reads steps.c: no step with that id runs before "
            "it (before it: a)",
        ),
        (
            "[{id: a, when: '{{ true }}', ansible: {playbook: clear-cache.yml}}]",
            "steps[0].when when is a bare expression, as in Ansible: write it without {{ }}",
        ),
        (
            f"[{{id: a, {LOOK[1:-1]}}}, {{id: a, {LOOK[1:-1]}}}]",
            "steps[1]: step id 'a' is already steps[0]'s",
        ),
        (f"[{{id: Bad-Id, {LOOK[1:-1]}}}]", "steps[0].id String should match pattern"),
        (f"[{{when: 'steps.a.status ==', {LOOK[1:-1]}}}]", "steps[0].when template does not parse"),
    ],
)
def test_what_a_step_may_read_is_checked_at_load(tmp_path: Path, steps: str, problem: str) -> None:
    found = _load(tmp_path, f"name: r\nsteps: {steps}\n")
    assert any(p.startswith(problem) for p in found), found


def test_on_failure_steps_read_the_run_so_far(tmp_path: Path) -> None:
    text = (
        f"name: r\nsteps: [{{id: act, {LOOK[1:-1]}}}]\non_failure:\n"
        "  - {id: fence, when: steps.act.status == 'failed', ansible: {playbook: clear-cache.yml,"
        " extra_vars: {why: '{{ steps.act.status }}'}}}\n"
        "  - {when: steps.fence.status == 'failed', ansible: {playbook: clear-cache.yml}}\n"
    )
    assert _load(tmp_path, text) == []
    wrong = f"name: r\nsteps: [{{when: steps.fence.status == 'x', {LOOK[1:-1]}}}]\n" + (
        f"on_failure: [{{id: fence, {LOOK[1:-1]}}}]\n"
    )
    assert _load(tmp_path, wrong) == [
        "steps[0].when template reads steps, but no step with an id runs before it"
    ]


def test_a_step_reading_earlier_steps_is_stored_as_written(tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text(
        "name: r\nsteps:\n  - {id: look, ansible: {playbook: clear-cache.yml, extra_vars: "
        "{host: '{{ incident.labels.host }}'}}}\n"
        "  - {ansible: {playbook: clear-cache.yml, extra_vars: {lag: '{{ steps.look.outputs.x }}',"
        " host: '{{ incident.labels.host }}'}}}\n"
    )
    [loaded] = load_runbooks([tmp_path], playbooks_dir=ROOT / "playbooks")
    incident = incident_with(labels={"host": "db-1"})
    planned = plan(loaded.runbook, incident)
    first, second = planned.steps
    assert not first.deferred and first.spec["extra_vars"] == {"host": "db-1"}
    assert second.deferred and second.spec["extra_vars"]["host"] == "{{ incident.labels.host }}"
    # What the later render needs is kept: the incident as it arrived.
    assert planned.context is not None
    assert planned.context["incident"]["labels"] == {"host": "db-1"}
    plain = plan(loaded.runbook.model_copy(update={"steps": loaded.runbook.steps[:1]}), incident)
    assert plain.context is None


def test_reads_steps_looks_at_names_not_text() -> None:
    assert reads_steps("{{ steps.a.outputs.x }}")
    assert reads_steps("{{ steps['a'].status }}")
    assert not reads_steps("steps: {{ incident.title }}")
    assert not reads_steps("{{ incident.labels.steps }}")


def test_a_step_whose_targets_come_from_outputs_counts_as_one_named_target(
    tmp_path: Path,
) -> None:
    """Budgets count targets before anything runs; a limit read from an earlier step is
    known only then, so the step counts as one target, named so a refusal says why."""
    (tmp_path / "rb.yml").write_text(
        "name: r\nbudget: {targets: 5, per: 1h}\nsteps:\n"
        "  - {id: look, ansible: {playbook: clear-cache.yml}}\n"
        "  - {ansible: {playbook: clear-cache.yml, limit: '{{ steps.look.outputs.host }}'}}\n"
    )
    [loaded] = load_runbooks([tmp_path], playbooks_dir=ROOT / "playbooks")
    policy = TrustPolicy(Breaker(), "shadow", (), None)
    # No executors: a kind without one counts as itself (its engine is not configured).
    planned = with_targets(plan(loaded.runbook, incident_with()), policy, {})
    assert planned.targets == ("ansible", "step 2 (ansible): its targets come from earlier steps")

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.errors import RunbookError
from app.runbooks.loader import load_runbooks
from app.steps.ansible.spec import AnsibleStep
from app.steps.terraform.spec import TerraformStep

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
- name: one
  match: {all: [{field: labels.a, equals: x}]}
  steps: [{ansible: {playbook: clear-cache.yml}}]
- name: two
  steps: [{ansible: {playbook: clear-cache.yml, timeout: 1m30s}}]
  retry: {attempts: 3, backoff: 2s}
"""


def problems(tmp_path: Path, text: str, **kw: Any) -> list[str]:
    (tmp_path / "rb.yml").write_text(text)
    with pytest.raises(RunbookError) as info:
        load_runbooks([tmp_path], **kw)
    return [str(p) for p in info.value.problems]


def test_a_file_may_hold_a_list(tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text(GOOD)
    loaded = load_runbooks([tmp_path], playbooks_dir=ROOT / "playbooks")
    assert [(r.runbook.name, r.line) for r in loaded] == [("one", 1), ("two", 4)]
    ansible = loaded[1].runbook.steps[0].spec
    assert isinstance(ansible, AnsibleStep) and ansible.timeout == 90
    assert loaded[1].runbook.retry.backoff == 2


def test_the_repository_examples_load(tmp_path: Path) -> None:
    loaded = load_runbooks(
        [ROOT / "runbooks"], playbooks_dir=ROOT / "playbooks", known_targets={"webhook"}
    )
    assert len(loaded) >= 4


def test_unknown_key_names_file_line_and_path(tmp_path: Path) -> None:
    text = "name: x\nsteps:\n  - ansible:\n      playbook: p.yml\n      timeot: 5s\n"
    [problem] = problems(tmp_path, text)
    assert problem == f"{tmp_path / 'rb.yml'}:5: at steps[0].ansible.timeot unknown key"


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = (
        "- name: Bad Name\n  steps: []\n"
        "- name: ok\n  steps: [{ansible: {playbook: p.yml, timeout: soon}}]\n"
        "  match: {all: [{field: f, equals: 1, in: [1]}], any: [{field: f, matches: '('}]}\n"
    )
    found = "\n".join(problems(tmp_path, text))
    assert "rb.yml:1: at [0].name" in found
    assert "rb.yml:2: at [0].steps" in found
    assert "'soon' is not a duration" in found
    assert "exactly one of" in found
    assert "not a valid regular expression" in found


def test_duplicate_names_and_keys(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("name: same\nsteps: [{ansible: {playbook: p}}]\n")
    found = problems(tmp_path, "name: same\nname: same\nsteps: [{ansible: {playbook: p}}]\n")
    assert any("rb.yml:2: at name duplicate key" in p for p in found)
    assert any("already used at" in p and "a.yml:1" in p for p in found)


def test_playbook_paths_cannot_leave_their_directory(tmp_path: Path) -> None:
    for path in ("../../etc/passwd", "/etc/passwd", "missing.yml"):
        found = problems(
            tmp_path, f"name: x\nsteps: [{{ansible: {{playbook: '{path}'}}}}]\n",
            playbooks_dir=ROOT / "playbooks",
        )  # fmt: skip
        assert "leaves its directory" in found[0] or "not found" in found[0]


def test_escalation_targets_must_be_configured(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "name: x\nsteps: [{ansible: {playbook: p}}]\nescalate: [pagerduty]\n",
        known_targets={"slack"},
    )
    assert "escalation target 'pagerduty' is not configured (configured: slack)" in found[0]


def test_success_notice_targets_must_be_configured_and_a_resolve_needs_one(
    tmp_path: Path,
) -> None:
    steps = "name: x\nsteps: [{ansible: {playbook: p}}]\n"
    found = problems(tmp_path, steps + "notify_on_success: [rootly]\n", known_targets={"slack"})
    assert "at notify_on_success escalation target 'rootly' is not configured" in found[0]
    found = problems(tmp_path, steps + "resolve_on_success: true\n", known_targets={"slack"})
    assert "resolve_on_success needs the platform's target in notify_on_success" in found[0]
    (tmp_path / "rb.yml").write_text(
        steps + "notify_on_success: [slack]\nresolve_on_success: true\n"
    )
    [loaded] = load_runbooks([tmp_path], known_targets={"slack"})
    assert loaded.runbook.notify_on_success == ["slack"] and loaded.runbook.resolve_on_success


@pytest.mark.parametrize("text", ["[", "42", "- 1\n- 2\n", "name: x\nsteps: {}\n", "\t"])
def test_nonsense_is_an_error_not_a_crash(tmp_path: Path, text: str) -> None:
    assert problems(tmp_path, text)


def test_a_terraform_step_is_checked(tmp_path: Path) -> None:
    terraform_dir = tmp_path / "terraform"
    (terraform_dir / "web").mkdir(parents=True)
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "rb.yml").write_text(
        "name: revert\nsteps:\n"
        "  - terraform: {workdir: web, revert_to: 'git:v1.4.2', var: {release: '{{ incident.title }}'}}\n"
    )
    [loaded] = load_runbooks([runbooks], terraform_dir=terraform_dir)
    step = loaded.runbook.steps[0]
    assert step.kind == "terraform"
    assert isinstance(step.spec, TerraformStep)
    assert (step.spec.max_destroy, step.spec.timeout, step.spec.lock_timeout) == (
        0, 600, 60,
    )  # fmt: skip

    def found(step_yaml: str) -> str:
        return "\n".join(problems(tmp_path, f"name: x\nsteps:\n  - {step_yaml}\n",
                                  terraform_dir=terraform_dir))  # fmt: skip

    assert "revert_to" in found("terraform: {workdir: web, revert_to: yesterday}")
    assert "revert_to" in found("terraform: {workdir: web, revert_to: 'git:--output=/tmp/x'}")
    assert "revert_to" in found("terraform: {workdir: web, revert_to: 'git:a b'}")
    assert "revert_to" in found("terraform: {workdir: web}")
    assert "max_destroy" in found("terraform: {workdir: web, revert_to: previous, max_destroy: -1}")
    assert "exactly one of" in found(
        "{ansible: {playbook: p.yml}, terraform: {workdir: web, revert_to: previous}}"
    )
    assert "var" in found("terraform: {workdir: web, revert_to: previous, var: {'a b': 1}}")
    assert "leaves its directory" in found("terraform: {workdir: ../.., revert_to: previous}")
    assert "not found in" in found("terraform: {workdir: db, revert_to: previous}")


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{ incident.titel }}", "incident.titel: not a field of incident"),
        ("{{ incident['sevrity'] }}", "incident.sevrity: not a field of incident"),
        ("{{ runbook.owner }}", "runbook.owner: not a field of runbook"),
        ("{{ alert.title }}", "template names alert"),
        ("{{ incident.title ", "template does not parse"),
    ],
)
def test_templates_may_only_name_what_they_are_given(
    tmp_path: Path, template: str, why: str
) -> None:
    text = (
        "name: x\nconcurrency: '{{ incident.service }}'\n"
        f"steps: [{{ansible: {{playbook: p.yml, extra_vars: {{a: {{b: [ok, {template!r}]}}}}}}}}]\n"
    )
    [found] = problems(tmp_path, text)
    assert found.endswith(f"at steps[0].ansible.extra_vars.a.b[1] {why}") or why in found, found
    assert "rb.yml:1:" in found


def test_templates_that_name_known_fields_load(tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text(
        "name: x\nconcurrency: '{{ incident.labels.instance | default(incident.service) }}'\n"
        "steps: [{ansible: {playbook: p.yml, limit: '{{ incident.labels.host }}', extra_vars:"
        " {a: '{% for k in incident.labels %}{{ k }}{% endfor %} {{ runbook.name }}',"
        " b: '{{ incident.raw.alerts[0].status }} {{ range(3) | list }}'}}}]\n"
    )
    assert load_runbooks([tmp_path])

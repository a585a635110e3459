"""`remediator test` through the CLI: the example runbooks' own tests pass; a failing
case says what was expected and what rendered; a broken test file is exit 2 at
file:line; the JUnit XML is valid against the JUnit schema CI systems read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import xmlschema

from tests.support.service import FIXTURES, ROOT, alert, write_config

JUNIT = xmlschema.XMLSchema(FIXTURES / "contracts" / "junit.xsd")
# The repository's config reads these through `env:` (the demo sets the same names).
DEMO_ENV = {
    "REMEDIATOR_API_TOKEN": "demo-api-token-0001",
    "ALERTMANAGER_TOKEN": "demo-alertmanager-token",
    "GENERIC_WEBHOOK_SECRET": "whsec_ZGVtby1nZW5lcmljLXNlY3JldA==",
    "ESCALATION_WEBHOOK_URL": "http://127.0.0.1:9/",
    "ESCALATION_SECRET": "whsec_ZGVtby1lc2NhbGF0aW9uLXNlY3JldA==",
}


def junit(report: Path) -> Any:
    """The report as a mapping, validated against the JUnit schema on the way."""
    return JUNIT.to_dict(report, validation="strict")


def remediator(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})  # fmt: skip


def test_the_example_runbooks_pass_their_tests(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    ran = remediator("--config", str(ROOT / "remediator.yaml"), "test",
                     "--junit-xml", str(report), env=DEMO_ENV)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "FAIL" not in ran.stdout and ran.stdout.rstrip().endswith("11 passed, 0 failed")
    assert "ok   " in ran.stdout and "clears the cache" in ran.stdout
    JUNIT.validate(report)
    assert junit(report)["@tests"] == 11


def test_a_failing_case_shows_expected_and_rendered(tmp_path: Path) -> None:
    runbook = {"name": "clear", "match": {"source": "alertmanager",
               "all": [{"field": "labels.alertname", "equals": "CacheFull"}]},
               "steps": [{"ansible": {"playbook": "write.yml", "limit": "{{ incident.labels.instance }}",
                                      "extra_vars": {"dest": "/tmp/x"}}}]}  # fmt: skip
    config = write_config(tmp_path, [runbook])
    payload = alert("CacheFull", instance="web-1")
    (tmp_path / "cases.test.yaml").write_text(json.dumps([
        {"name": "renders web-1", "source": "alertmanager", "payload": payload,
         "expect": {"runbooks": ["clear"], "steps": {"clear": [{"ansible": {"limit": "web-1"}}]}}},
        {"name": "wrongly expects web-2 and approval", "source": "alertmanager",
         "payload": payload, "expect": {"runbooks": ["clear"], "mode": "approve",
                                        "steps": {"clear": [{"ansible": {"limit": "web-2"}}]}}},
        {"name": "wrongly expects nothing", "source": "alertmanager", "payload": payload,
         "expect": {"runbooks": []}},
    ]))  # fmt: skip
    report = tmp_path / "report.xml"
    ran = remediator("--config", str(config), "test", str(tmp_path), "--junit-xml", str(report))
    assert ran.returncode == 1, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("ok   ") and lines[0].endswith("renders web-1")
    assert 'steps.clear[0].ansible.limit: expected "web-2", got "web-1"' in ran.stdout
    assert '    expected: [{"ansible": {"limit": "web-2"}}]' in ran.stdout
    assert "mode of clear: expected approve, would be auto" in ran.stdout
    assert "    expected: []\n" in ran.stdout and '    rendered: ["clear"]' in ran.stdout
    assert lines[-1] == "1 passed, 2 failed"
    JUNIT.validate(report)
    suites = junit(report)
    assert (suites["@tests"], suites["@failures"]) == (3, 2)
    failures = [c["failure"][0]["@message"] for c in suites["testsuite"][0]["testcase"]
                if "failure" in c]  # fmt: skip
    assert failures == [
        "not as expected: steps of clear; mode of clear",
        "not as expected: runbooks",
    ]


def test_a_case_gives_outputs_to_decide_and_render_later_steps(tmp_path: Path) -> None:
    """Outputs stand for what earlier steps would find: a `when` reading them is decided
    (and one that cannot be is a failure saying so), a step reading them is rendered."""
    write = {"playbook": "write.yml", "extra_vars": {"dest": "/tmp/x"}}
    runbook = {"name": "decide", "match": {"all": [{"field": "labels.alertname", "equals": "Lag"}]},
               "steps": [{"id": "look", "ansible": write},
                         {"id": "act", "when": "steps.look.outputs.n < 30",
                          "ansible": {**write, "extra_vars": {"n": "{{ steps.look.outputs.n }}"}}}]}  # fmt: skip
    config = write_config(tmp_path, [runbook])
    payload = alert("Lag")
    (tmp_path / "cases.test.yaml").write_text(json.dumps([
        {"name": "close", "source": "alertmanager", "payload": payload, "outputs": {"look": {"n": 12}},
         "expect": {"runs": {"decide": {"look": True, "act": True}},
                    "steps": {"decide": [{"ansible": {}}, {"ansible": {"extra_vars": {"n": "12"}}}]}}},
        {"name": "far, wrongly expected to act", "source": "alertmanager", "payload": payload,
         "outputs": {"look": {"n": 45}}, "expect": {"runs": {"decide": {"act": True}}}},
        {"name": "no outputs given", "source": "alertmanager", "payload": payload,
         "expect": {"runs": {"decide": {"act": False, "nope": True}}}},
    ]))  # fmt: skip
    ran = remediator("--config", str(config), "test", str(tmp_path))
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert ran.stdout.splitlines()[0].endswith("close")
    assert (
        "runs of decide.act: expected to run, would be skipped: skipped: when "
        "`steps.look.outputs.n < 30` is false (steps.look.outputs.n = 45)"
    ) in ran.stdout
    assert (
        "runs of decide.act: undecided (decided when it runs: when `steps.look.outputs.n < 30`:"
        in ran.stdout
    )
    assert "runs of decide: it has no step with id 'nope'" in ran.stdout


def test_a_broken_test_file_is_exit_2_at_file_and_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, [])
    broken = {
        "unknown.test.yaml": (
            "- name: x\n  source: alertmanager\n  payload: {}\n  expect: {runbookz: []}\n",
            ":4: at [0].expect.runbookz unknown key",
        ),
        "both.test.yaml": (
            "- name: x\n  source: alertmanager\n  payload: {}\n  payload_file: a.json\n"
            "  expect: {}\n",
            ":1: at [0] give exactly one of payload and payload_file",
        ),
        "mapping.test.yaml": ("name: not a list\n", ":1: a test file is a list of cases"),
        "yaml.test.yaml": ("- name: x\n  source: [\n", ":3: not valid YAML"),
    }
    cases = tmp_path / "cases"
    cases.mkdir()
    for name, (text, _) in broken.items():
        (cases / name).write_text(text)
    # Every file's problems at once, as lint reports runbooks.
    ran = remediator("--config", str(config), "test", str(cases))
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert ran.stderr.startswith("4 problem(s) in the test files:")
    for name, (_, said) in broken.items():
        assert f"{cases / name}{said}" in ran.stderr, (said, ran.stderr)
    unreadable = tmp_path / "unreadable.test.yaml"
    unreadable.write_text(
        "- {name: x, source: alertmanager, payload_file: gone.json, expect: {}}\n"
    )
    missing = remediator(
        "--config", str(config), "test", str(unreadable), str(tmp_path / "nowhere")
    )
    assert missing.returncode == 2 and "nowhere: no such file" in missing.stderr
    gone = remediator("--config", str(config), "test", str(unreadable))
    assert gone.returncode == 2 and f"{unreadable}:1: at payload_file cannot read" in gone.stderr


def test_test_files_beside_runbooks_are_not_runbooks(tmp_path: Path) -> None:
    config = write_config(tmp_path, [])
    (tmp_path / "runbooks" / "beside.test.yaml").write_text(
        "- {name: a, source: x, payload: 1, expect: {}}\n"
    )
    linted = remediator("--config", str(config), "lint")
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_pre_commit_hooks_run_as_written_on_this_repository() -> None:
    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert [hook["id"] for hook in hooks] == ["remediator-lint", "remediator-test"]
    for hook in hooks:
        program, *arguments = hook["entry"].split()
        assert program == "remediator" and hook["language"] == "python"
        ran = remediator("--config", str(ROOT / "remediator.yaml"), *arguments, env=DEMO_ENV)
        assert ran.returncode == 0, (hook["id"], ran.stdout, ran.stderr)

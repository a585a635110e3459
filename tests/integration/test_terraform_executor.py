"""The terraform step with the real `terraform` binary on real local state in a real git
repository: revert, guard, no-op, variables, a held lock, a hung apply, a cancel."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.gitops.versions import GoodVersion, LastGoodLookup
from app.steps.base import StepInput, StepResult
from app.steps.terraform.executor import TerraformExecutor
from tests.support.terraform_repo import (
    CANARY,
    TERRAFORM,
    TerraformRepo,
    hang,
    hanging_version,
    requires_terraform,
    sleepers,
    terraform_repo,
)

pytestmark = requires_terraform


def no_record(_workdir: str) -> GoodVersion | None:
    return None


def run(
    repo: TerraformRepo,
    *,
    timeout: float = 120,
    last_good: LastGoodLookup = no_record,
    cancelled: Any = lambda: False,
    shadow: bool = False,
    **spec: Any,
) -> StepResult:
    assert TERRAFORM is not None
    executor = TerraformExecutor(repo.terraform_dir, last_good, binary=TERRAFORM)
    step = {"workdir": "web", "revert_to": "previous", "timeout": timeout, **spec}
    return executor.run(StepInput("e-1", 0, 1, step, timeout, shadow), cancelled=cancelled)


def test_previous_reverts_the_real_state_and_leaves_the_checkout_alone(tmp_path: Path) -> None:
    repo = terraform_repo(tmp_path)
    assert repo.state()["terraform_data.web"] == "release-2-broken"
    result = run(repo)
    assert result.status == "succeeded", (result.error, result.output_tail)
    assert repo.state()["terraform_data.web"] == "release-1"
    assert result.detail is not None
    assert result.detail["version"]["commit"] == repo.good
    assert result.detail["version"]["subject"] == "web: release 1"
    assert result.detail["plan"]["change"] == ["terraform_data.web"]
    assert result.detail["applied"] is True
    assert "plan: 0 to add, 1 to change, 0 to destroy" in result.detail["summary"]
    assert "Apply complete!" in result.output_tail
    # The live checkout still holds the bad commit, untouched; no state file was copied.
    assert repo.git("status", "--porcelain") == ""
    assert "release-2-broken" in (repo.workdir / "main.tf").read_text()
    assert not repo.locked()

    again = run(repo)  # already there: nothing to apply
    assert again.status == "succeeded"
    assert again.detail is not None and again.detail["applied"] is False
    assert again.detail["plan"]["text"] == "no changes"


def test_git_ref_and_last_good_name_the_version(tmp_path: Path) -> None:
    repo = terraform_repo(tmp_path)
    assert run(repo, revert_to="git:v1").detail["version"]["commit"] == repo.good  # type: ignore[index]
    assert repo.state()["terraform_data.web"] == "release-1"

    recorded = GoodVersion(repo.bad, "ci", datetime.now(UTC))
    result = run(repo, revert_to="last_good", last_good=lambda workdir: recorded)
    assert result.status == "succeeded", result.error
    assert result.detail is not None
    assert result.detail["version"]["chosen_by"].startswith("last_good: recorded by ci")
    assert repo.state()["terraform_data.web"] == "release-2-broken"

    nothing = run(repo, revert_to="last_good")
    assert nothing.status == "failed"
    assert "no version of web has been recorded as good" in str(nothing.error)
    unknown = run(repo, revert_to="git:no-such-tag")
    assert unknown.status == "failed" and "'no-such-tag' is not a branch" in str(unknown.error)


def test_guard_refuses_a_revert_that_destroys(tmp_path: Path) -> None:
    repo = terraform_repo(tmp_path, bad_extra=CANARY)
    result = run(repo)
    assert result.status == "refused"
    assert result.error is not None and result.error.startswith("max_destroy:")
    assert "terraform_data.canary" in result.error
    assert result.detail is not None and result.detail["guard"] == "max_destroy"
    assert result.detail["plan"]["destroy"] == ["terraform_data.canary"]
    assert repo.state()["terraform_data.web"] == "release-2-broken"  # nothing applied
    assert "terraform apply" not in result.output_tail

    allowed = run(repo, max_destroy=1)
    assert allowed.status == "succeeded", allowed.error
    assert "terraform_data.canary" not in repo.state()


def test_vars_arrive_exactly_and_undeclared_ones_fail(tmp_path: Path) -> None:
    repo = terraform_repo(tmp_path)
    hostile = "x\"; $(touch /tmp/pwned) ${path.root} %{if true}y%{endif} 'z'"
    result = run(repo, var={"note": hostile})
    assert result.status == "succeeded", (result.error, result.output_tail)
    assert repo.state()["terraform_data.note"] == hostile

    typo = run(repo, revert_to="git:main", var={"note": "a", "notes": "b"})
    assert typo.status == "failed"
    assert "var ['notes'] not declared by web" in str(typo.error)


def test_a_lock_held_by_someone_else_is_waited_for_then_named(tmp_path: Path) -> None:
    repo = terraform_repo(tmp_path)
    # Someone applies from the live checkout and holds the state lock meanwhile.
    (repo.workdir / "slow.tf").write_text(hang(30))
    assert TERRAFORM is not None
    holder = subprocess.Popen(
        [TERRAFORM, f"-chdir={repo.workdir}", "apply", "-auto-approve", "-input=false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(200):
            if repo.locked():
                break
            time.sleep(0.05)
        assert repo.locked()
        started = time.monotonic()
        result = run(repo, lock_timeout="2s")
        assert result.status == "failed"
        assert result.error is not None and "the state is locked by" in result.error
        assert "OperationTypeApply" in result.error and "waited 2s" in result.error
        assert time.monotonic() - started >= 2
    finally:
        holder.send_signal(signal.SIGINT)
        holder.wait(60)
    assert not repo.locked()


def test_a_hung_apply_times_out_interrupted_and_leaves_the_state_unlocked(
    tmp_path: Path,
) -> None:
    repo = terraform_repo(tmp_path)
    hanging_version(repo, 171)
    started = time.monotonic()
    result = run(repo, revert_to="git:hangs", timeout=6)
    assert result.status == "timed_out", (result.error, result.output_tail)
    assert result.error is not None and "interrupted with SIGINT" in result.error
    assert time.monotonic() - started < 60
    assert "Interrupt received" in result.output_tail
    assert not repo.locked()
    # Terraform wrote state on its way out: what it finished is recorded.
    assert repo.state()["terraform_data.web"] == "release-3"
    assert sleepers(171) == []  # the provisioner's process went with it
    assert repo.terraform("plan", "-lock-timeout=0s", "-input=false").returncode == 0


def test_cancel_interrupts_the_apply(tmp_path: Path) -> None:
    repo = terraform_repo(tmp_path)
    hanging_version(repo, 173)
    flag = threading.Event()
    timer = threading.Timer(5, flag.set)
    timer.start()
    try:
        result = run(repo, revert_to="git:hangs", cancelled=flag.is_set)
    finally:
        timer.cancel()
    assert result.status == "cancelled"
    assert result.error is not None and "cancelled during terraform apply" in result.error
    assert not repo.locked()
    assert sleepers(173) == []


@pytest.mark.parametrize("workdir", ["../..", "/etc", "missing"])
def test_workdir_must_be_a_directory_inside_terraform_dir(tmp_path: Path, workdir: str) -> None:
    repo = terraform_repo(tmp_path)
    result = run(repo, workdir=workdir)
    assert result.status == "failed"
    assert "is not a directory in terraform_dir" in str(result.error)


OUTPUTS = (
    '\noutput "release" {\n  value = terraform_data.web.input\n}\n'
    '\noutput "note" {\n  value     = var.note\n  sensitive = true\n}\n'
)


def test_the_workdirs_outputs_after_the_revert_are_the_steps_sensitive_ones_masked(
    tmp_path: Path,
) -> None:
    repo = terraform_repo(tmp_path, extra=OUTPUTS)
    # A shadow shows the outputs the plan would leave (and applies nothing).
    planned = run(repo, var={"note": "a secret note"}, shadow=True)
    assert planned.outputs == {"release": "release-1", "note": "***"}
    assert repo.state()["terraform_data.web"] == "release-2-broken"
    result = run(repo, var={"note": "a secret note"})
    assert result.status == "succeeded", (result.error, result.output_tail)
    assert result.outputs == {"release": "release-1", "note": "***"}

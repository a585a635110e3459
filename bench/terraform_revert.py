"""How long a terraform revert takes through remediator's executor, next to the same
commands typed by hand, on real local state in a throwaway git repository.

Each round applies the bad commit (as a deploy would), then reverts it to `previous`:
  remediator: TerraformExecutor.run (git archive export, init twice for the local backend
              override, plan -out, show -json, guard, apply of the plan file);
  by hand:    in a checkout of the good commit, init, plan -out, show -json, apply.

    .venv/bin/python bench/terraform_revert.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.steps.base import StepInput  # noqa: E402
from app.steps.terraform.executor import TerraformExecutor  # noqa: E402
from tests.support.terraform_repo import TERRAFORM, TerraformRepo, terraform_repo  # noqa: E402


def by_hand(repo: TerraformRepo, checkout: Path) -> None:
    assert TERRAFORM is not None
    state = repo.workdir / "terraform.tfstate"
    for args in (
        ["init", "-input=false"],
        ["plan", "-input=false", f"-state={state}", "-out=revert.tfplan"],
        ["show", "-json", "revert.tfplan"],
        ["apply", "-input=false", f"-state={state}", "revert.tfplan"],
    ):
        subprocess.run([TERRAFORM, f"-chdir={checkout}", *args], check=True,
                       capture_output=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if TERRAFORM is None:
        print("no terraform (or tofu) on PATH: nothing measured")
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        repo = terraform_repo(Path(scratch))
        checkout = Path(scratch) / "good"
        repo.git("worktree", "add", "-q", str(checkout), repo.good)
        executor = TerraformExecutor(repo.terraform_dir, lambda _: None, binary=TERRAFORM)
        step = {"workdir": "web", "revert_to": "previous", "timeout": 600}
        ours: list[float] = []
        theirs: list[float] = []
        for round_ in range(args.rounds):
            repo.apply_checkout()
            started = time.perf_counter()
            result = executor.run(
                StepInput(f"bench-{round_}", 0, 1, step, 600), cancelled=lambda: False
            )
            ours.append(time.perf_counter() - started)
            assert result.status == "succeeded", result.error
            assert repo.state()["terraform_data.web"] == "release-1"

            repo.apply_checkout()
            started = time.perf_counter()
            by_hand(repo, checkout / "terraform" / "web")
            theirs.append(time.perf_counter() - started)
            assert repo.state()["terraform_data.web"] == "release-1"
    version = subprocess.run([TERRAFORM, "version"], capture_output=True, text=True).stdout
    print(f"{version.splitlines()[0]}, {args.rounds} rounds, {datetime.now(UTC):%Y-%m-%d}")
    print(f"revert through remediator: median {statistics.median(ours):.2f} s "
          f"(min {min(ours):.2f}, max {max(ours):.2f})")  # fmt: skip
    print(f"the same revert by hand:   median {statistics.median(theirs):.2f} s "
          f"(min {min(theirs):.2f}, max {max(theirs):.2f})")  # fmt: skip
    print(f"remediator / by hand: x{statistics.median(ours) / statistics.median(theirs):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

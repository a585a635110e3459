"""A git repository holding a terraform workdir with a good and a bad commit, the bad one
applied to real local state with the real `terraform` binary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.servers import Server
from tests.support.service import alert

TERRAFORM = shutil.which("terraform") or shutil.which("tofu")
requires_terraform = pytest.mark.skipif(
    TERRAFORM is None,
    reason="no terraform (or tofu) on PATH: the terraform step is NOT tested here "
    "(install Terraform >= 1.4 to run these tests)",
)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "sre",
    "GIT_AUTHOR_EMAIL": "sre@example.test",
    "GIT_COMMITTER_NAME": "sre",
    "GIT_COMMITTER_EMAIL": "sre@example.test",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}


def web_tf(release: str, extra: str = "") -> str:
    """The workdir's configuration: one `terraform_data` whose input is the release."""
    return (
        'variable "note" {\n  type    = string\n  default = ""\n}\n\n'
        'resource "terraform_data" "web" {\n'
        f'  input = "{release}"\n'
        "}\n\n"
        'resource "terraform_data" "note" {\n  input = var.note\n}\n' + extra
    )


CANARY = '\nresource "terraform_data" "canary" {\n  input = "canary"\n}\n'


def hang(seconds: int) -> str:
    """A resource whose creation takes `seconds` (a local-exec provisioner)."""
    return (
        '\nresource "terraform_data" "hang" {\n'
        '  provisioner "local-exec" {\n'
        f'    command = "sleep {seconds}"\n'
        "  }\n}\n"
    )


@dataclass
class TerraformRepo:
    root: Path
    terraform_dir: Path
    workdir: Path
    good: str = ""
    bad: str = ""

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.root), *args],
            capture_output=True, text=True, check=False, env={**os.environ, **GIT_ENV},
        )  # fmt: skip
        assert done.returncode == 0, f"git {args[0]}: {done.stderr}"
        return done.stdout.strip()

    def commit(self, main_tf: str, message: str) -> str:
        (self.workdir / "main.tf").write_text(main_tf)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def terraform(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert TERRAFORM is not None
        return subprocess.run(
            [TERRAFORM, f"-chdir={self.workdir}", *args, "-no-color"],
            capture_output=True, text=True, check=check, timeout=120,
            env={**os.environ, "CHECKPOINT_DISABLE": "1"},
        )  # fmt: skip

    def apply_checkout(self) -> None:
        """Apply what the live checkout holds, as the team's pipeline would."""
        self.terraform("init", "-input=false")
        self.terraform("apply", "-input=false", "-auto-approve")

    def state(self) -> dict[str, Any]:
        """Each resource's `input` in the live state, by address."""
        state = json.loads((self.workdir / "terraform.tfstate").read_text())
        return {
            f"{r['type']}.{r['name']}": (r["instances"][0]["attributes"].get("input") or {}).get(
                "value"
            )
            for r in state["resources"]
        }

    def locked(self) -> bool:
        return (self.workdir / ".terraform.tfstate.lock.info").exists()


def terraform_repo(directory: Path, *, bad_extra: str = "", extra: str = "") -> TerraformRepo:
    """Good commit (tag `v1`), then a bad one (release broken, plus `bad_extra`), each with
    `extra`, and the bad one applied to the live state."""
    root = directory / "infra"
    repo = TerraformRepo(root, root / "terraform", root / "terraform" / "web")
    repo.workdir.mkdir(parents=True)
    repo.git("init", "-q", "-b", "main")
    (root / ".gitignore").write_text("*.tfstate\n*.tfstate.*\n.terraform/\n.terraform.*\n")
    repo.good = repo.commit(web_tf("release-1", extra), "web: release 1")
    repo.git("tag", "v1")
    repo.bad = repo.commit(web_tf("release-2-broken", extra + bad_extra), "web: release 2")
    repo.apply_checkout()
    return repo


def hanging_version(repo: TerraformRepo, seconds: int) -> None:
    """A version tagged `hangs` whose apply takes `seconds`, then a newer one on top."""
    repo.commit(web_tf("release-3", hang(seconds)), "web: release 3 (hangs)")
    repo.git("tag", "hangs")
    repo.commit(web_tf("release-4"), "web: release 4")


def sleepers(seconds: int) -> list[psutil.Process]:
    """The `sleep <seconds>` processes a hanging provisioner started and that still run."""
    return [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"]
        and p.info["cmdline"][-1:] == [str(seconds)]
        and p.info["cmdline"][0].endswith("sleep")
    ]


def fire(server: Server, **labels: str) -> dict[str, Any]:
    """A WebReleaseErrors alert for the web service; the execution once it ended."""
    answer = server.alertmanager(alert("WebReleaseErrors", service="web", **labels))
    assert answer.status_code == 202, answer.text
    [execution_id] = answer.json()["executions"]
    [execution] = server.wait_all_final([execution_id])
    return dict(execution)

"""The `terraform` step kind: revert a workdir to a known-good version, and propose the
revert in git.

What a payload may fill: `var` values (as data, in a var file). The workdir, the version
to revert to and where a revert is proposed are runbook text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from app.fields.templating import render_value
from app.gitops.code_host import Reviews
from app.gitops.code_hosts import code_host
from app.gitops.proposer import ProposalWatch, RevertProposer
from app.gitops.versions import GitVersions
from app.steps.base import Executor, KindDefaults, strings_in
from app.steps.terraform.executor import TerraformExecutor
from app.steps.terraform.spec import TerraformStep

if TYPE_CHECKING:
    from app.config.settings import Settings
    from app.gitops.records import Records


class TerraformKind(KindDefaults):
    name = "terraform"
    spec_model = TerraformStep

    def templates(self, spec: TerraformStep) -> Iterator[tuple[str, str]]:
        yield from strings_in(spec.var, "var")

    def render(self, spec: TerraformStep, context: Mapping[str, Any]) -> dict[str, Any]:
        rendered = spec.model_dump(mode="json")
        rendered["var"] = render_value(spec.var, context)
        return rendered

    def variables(self, spec: TerraformStep) -> Mapping[str, Any]:
        return spec.var

    def paths(self, spec: TerraformStep) -> Iterator[tuple[str, str, str]]:
        yield "workdir", "terraform_dir", spec.workdir

    def executor(self, settings: Settings, records: Records) -> Executor:
        host = code_host(settings.git_hosting)
        proposer = RevertProposer(
            GitVersions(settings.terraform_dir), Reviews(host) if host else None,
            settings.public_url, records.origin, settings.git_hosting.remotes, records,
        )  # fmt: skip
        watch = ProposalWatch(proposer, records, settings.retention_days,
                              settings.drift_check_interval_s)  # fmt: skip
        return TerraformExecutor(
            settings.terraform_dir, records.last_good, binary=settings.terraform_bin,
            step_env=settings.step_env, proposer=proposer, watch=watch,
        )  # fmt: skip

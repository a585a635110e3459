"""A terraform step's `propose`, whole: push the applied revert to a branch
(`git_propose`), then, where a code host is configured (`git_hosting`), open its pull
or merge request or add this revert to the open one (`code_host`). What comes back is
what the step records: the proposal, the request's link (which the success notice
carries, through the step's summary), and, when any of it failed, the `attention` a
human is escalated with. The revert itself has applied by then and stays succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.errors import ExecutorError, VersionError
from app.gitops.code_host import Incident, RevertStory, Reviews
from app.gitops.propose import Ledger, Propose, git_says, propose_revert
from app.gitops.records import Records
from app.gitops.versions import GitVersions, Version
from app.incident import Incident as ArrivedIncident

log = logging.getLogger("remediator.executors")

# The runbook an execution runs and the incident that started it (None: unknown id).
OriginLookup = Callable[[str], tuple[str, ArrivedIncident] | None]


@dataclass(frozen=True)
class Proposed:
    detail: dict[str, Any]
    summary: str  # added to the step's summary
    attention: str | None = None


@dataclass(frozen=True)
class RevertProposer:
    versions: GitVersions
    reviews: Reviews | None
    public_url: str
    origin: OriginLookup | None
    # Push URLs by remote name, from the config (`git_hosting.remotes`).
    remotes: Mapping[str, str]
    ledger: Ledger

    def propose(
        self,
        settings: Propose,
        name: str,
        workdir: Path,
        version: Version,
        execution_id: str,
        plan: str,
    ) -> Proposed:
        """Propose the revert of `workdir` (as the step names it: `name`) to `version`,
        applied by `execution_id` with `plan`."""
        message = (
            f"Revert {name} to {version.commit[:12]} ({version.subject})\n\n"
            f"remediator applied this version to the infrastructure after an incident "
            f"(execution {execution_id}); plan: {plan.splitlines()[0] if plan else 'none'}.\n"
        )
        try:
            proposal = propose_revert(
                self.versions.root(), self.versions.in_repo(workdir), name, version,
                execution_id, settings, message, self.ledger, reviews=self.reviews,
                url=self.remotes.get(settings.remote),
            )  # fmt: skip
        except (VersionError, ExecutorError) as exc:
            why = f"the revert applied, but it could not be proposed in git: {exc}"
            return Proposed({"error": str(exc)}, f"NOT proposed in git: {exc}", why)
        detail, said = proposal.as_dict(), [proposal.drift] if proposal.drift else []
        said += [f"ignored {ignored}" for ignored in proposal.ignored]
        if self.reviews is None or not proposal.drifted:
            return Proposed(detail, "; ".join(said))
        noun = self.reviews.host.noun
        found = self.origin(execution_id) if self.origin is not None else None
        runbook, incident = found or ("", None)
        story = RevertStory(
            name, version, proposal, plan, runbook, execution_id,
            f"{self.public_url.rstrip('/')}/ui/#/executions/{execution_id}",
            Incident(incident.title, incident.source, incident.url) if incident else None,
        )  # fmt: skip
        try:
            published = self.reviews.publish(story)
        except ExecutorError as exc:
            said.append(f"pushed {proposal.branch}, but NO {noun} was opened: {exc}")
            why = f"the revert applied and was pushed, but its {noun} could not be opened: {exc}"
            return Proposed(detail | {"request_error": str(exc)}, "; ".join(said), why)
        request = published.request
        detail |= {"request": {"url": request.url, "number": request.number,
                               "opened": published.opened}}  # fmt: skip
        said.append(f"{noun}: {request.url}")
        return Proposed(detail, "; ".join(said))


@dataclass
class RememberedPushes:
    """The ledger of an executor built outside a service: what this process pushed."""

    pushed: set[tuple[str, str, str]] = field(default_factory=set)

    def ours(self, remote: str, branch: str, commit: str) -> bool:
        return (remote, branch, commit) in self.pushed

    def record(self, remote: str, branch: str, commit: str, execution_id: str) -> None:
        del execution_id  # one process: which of its executions pushed is not asked
        self.pushed.add((remote, branch, commit))


@dataclass(frozen=True)
class ProposalWatch:
    """Until git says what a revert applied, its execution shows the drift: each look
    fetches the remote's `base` for the newest proposal of each workdir and, once its
    files are the applied version's (the request was merged, or someone committed the
    same), settles it: the step's drift is cleared and its summary says since when. An
    older proposal of a workdir that a newer revert changed again is settled as
    superseded. A request closed without merging is noted; the drift stays."""

    proposer: RevertProposer
    records: Records
    keep_days: float  # older steps are not looked at (retention prunes them anyway)
    interval_s: float  # between looks

    def look_after(self) -> None:
        now = datetime.now(UTC)
        steps = [
            (step.id, step.execution_id, step.detail)
            for step in self.records.ended_steps("terraform", now - timedelta(days=self.keep_days))
            if _drifting(step.detail)
        ]
        newest: dict[str, str] = {}  # workdir → the execution whose revert is newest
        for step_id, execution_id, detail in steps:
            assert detail is not None  # _drifting
            workdir = str(detail.get("workdir"))
            if workdir in newest:
                said = f"superseded by the revert of execution {newest[workdir][:8]}"
                self._record(step_id, detail, settled=said)
                continue
            newest[workdir] = execution_id
            self._check(step_id, detail, workdir, now)

    def _check(self, step_id: int, detail: dict[str, Any], workdir: str, now: datetime) -> None:
        proposal = detail["proposal"]
        versions, reviews = self.proposer.versions, self.proposer.reviews
        settings = Propose(remote=proposal["remote"], base=proposal["base"])
        says = git_says(
            versions.root(), versions.in_repo(versions.workdir(workdir)), proposal["applied"],
            settings, reviews, self.proposer.remotes.get(settings.remote),
        )  # fmt: skip
        if says.agrees:
            settled = (
                f"git at {says.base_commit[:12]} ({settings.base}) says the applied version "
                f"since {now.strftime('%Y-%m-%d %H:%M')} UTC"
            )
            self._record(step_id, detail, settled=settled)
            return
        request = proposal.get("request")
        if reviews is None or not isinstance(request, dict):
            return
        found = reviews.host.find(str(proposal["branch"]), settings.base)
        state = found.state if found is not None else "gone"
        if state != request.get("state", "open"):
            # Closed unmerged (or merged, and base changed the workdir again since): the
            # drift stays, and the execution says what became of its request.
            self._record(step_id, detail, request=request | {"state": state})

    def _record(
        self,
        step_id: int,
        detail: dict[str, Any],
        *,
        settled: str | None = None,
        request: dict[str, Any] | None = None,
    ) -> None:
        proposal, summary = dict(detail["proposal"]), str(detail.get("summary", ""))
        if settled is not None:
            summary = summary.replace(str(proposal["drift"]), f"no drift: {settled}")
            proposal |= {"drift": None, "settled": settled}
        if request is not None:
            proposal["request"] = request
        self.records.set_step_detail(step_id, detail | {"summary": summary, "proposal": proposal})
        log.info("proposal %s: %s", proposal.get("branch"), settled or f"request {request}")


def _drifting(detail: dict[str, Any] | None) -> bool:
    proposal = (detail or {}).get("proposal")
    return isinstance(proposal, dict) and bool(proposal.get("drift"))

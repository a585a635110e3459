"""A terraform step's `propose`, whole: push the applied revert to a branch
(`git_propose`), then, where a code host is configured (`git_hosting`), open its pull
or merge request or add this revert to the open one (`code_host`). What comes back is
what the step records: the proposal, the request's link (which the success notice
carries, through the step's summary), and, when any of it failed, the `attention` a
human is escalated with. The revert itself has applied by then and stays succeeded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import ExecutorError, VersionError
from app.executors.code_host import Incident, RevertStory, Reviews
from app.executors.git_propose import Propose, propose_revert
from app.executors.git_versions import GitVersions, Version
from app.incident import Incident as ArrivedIncident
from app.store.db import Database
from app.store.records import execution_origin

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
                execution_id, settings, message, reviews=self.reviews,
                url=self.remotes.get(settings.remote),
            )  # fmt: skip
        except (VersionError, ExecutorError) as exc:
            why = f"the revert applied, but it could not be proposed in git: {exc}"
            return Proposed({"error": str(exc)}, f"NOT proposed in git: {exc}", why)
        detail, said = proposal.as_dict(), [proposal.drift] if proposal.drift else []
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


def origin_lookup(db: Database) -> OriginLookup:
    def lookup(execution_id: str) -> tuple[str, ArrivedIncident] | None:
        with db.read() as session:
            return execution_origin(session=session, execution_id=execution_id)

    return lookup

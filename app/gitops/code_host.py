"""Pull and merge requests for proposed reverts: the `CodeHost` protocol that each code
host's module implements (GitHub, GitLab; registered in `code_hosts`), and what every
host shares: which proposal branch is still under review, git's credentials for the
push, and the request's description.

One request per proposal branch: a later revert of the same workdir pushes to the same
branch and adds its section to the request's description instead of opening another.
Opening first looks for the branch's request, so a step retried after a crash, or two
replicas racing, find the one already opened (and a host's "already exists" answer is
read the same way).

What a payload fills in a description: the incident's title and URL, through
`app.fields.sinks.markdown_text` and `markdown_link` (no mention, reference, link or markup of
its own), and the plan's resource addresses (which may hold `for_each` keys from
payload vars) inside a code block whose fence is longer than any backtick run in it.
Everything else is runbook text, configuration, git's own answers or ours.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

from app.engine_http import EngineError
from app.fields.sinks import markdown_code_block, markdown_link, markdown_text
from app.gitops.propose import Proposal
from app.gitops.versions import Version

RequestState = Literal["open", "closed", "merged"]
SECTION_RULE = "\n\n---\n\n"


@dataclass(frozen=True)
class ReviewRequest:
    """A pull or merge request as the host answered it."""

    number: int
    url: str
    state: RequestState
    body: str


class CodeHost(Protocol):
    # "pull request", "merge request": how the host names what it reviews
    noun: str
    # The longest description the host keeps (GitHub refuses a longer one).
    max_body: int
    # Where the host serves git over HTTPS: its token goes only to remotes there.
    git_host: str

    def find(self, branch: str, base: str) -> ReviewRequest | None:
        """The newest request from `branch` into `base`, in any state."""

    def open(self, branch: str, base: str, title: str, body: str) -> ReviewRequest:
        """Open a request; one already open for the branch is answered instead."""

    def update(self, request: ReviewRequest, body: str) -> ReviewRequest:
        """Replace the request's description."""

    def git_password(self) -> tuple[str, str]:
        """The user and password git sends over HTTPS to `git_host`."""


def already_open(host: CodeHost, branch: str, base: str, refusal: str) -> ReviewRequest:
    """The request the host said is already open for `branch` (another replica, or an
    earlier attempt of the step, opened it); EngineError with its `refusal` if none is."""
    found = host.find(branch, base)
    if found is None or found.state != "open":
        raise EngineError(f"{host.noun} refused: {refusal[:300]}")
    return found


@dataclass(frozen=True)
class Incident:
    """What a description says of the incident (payload data, escaped where written)."""

    title: str
    source: str
    url: str | None


@dataclass(frozen=True)
class RevertStory:
    """One applied revert, as a request tells it."""

    workdir: str
    version: Version
    proposal: Proposal
    plan: str
    runbook: str
    execution_id: str
    execution_url: str
    incident: Incident | None


@dataclass(frozen=True)
class Published:
    request: ReviewRequest
    opened: bool  # False: an open request's description gained this revert


class Reviews:
    """A code host as proposing a revert needs it."""

    def __init__(self, host: CodeHost) -> None:
        self.host = host

    def still_open(self, branch: str, base: str) -> bool:
        """A proposal branch on the remote is still under review: its request is open,
        or it has none yet (opening it failed after the push, say). A merged or closed
        one is history: a later revert opens a new branch."""
        request = self.host.find(branch, base)
        return request is None or request.state == "open"

    def git_env(self, url: str) -> Mapping[str, str]:
        """git's environment for `url`: the host's token as an HTTP header, only for an
        HTTPS remote on the host itself (never to a mirror or another host), through
        GIT_CONFIG_* variables so it is in neither the process list nor any file."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        # Plain http only to this machine (a code host on loopback): never over a network.
        secure = parts.scheme == "https" or (parts.scheme == "http" and _loopback(host))
        if not secure or host != self.host.git_host:
            return {}
        user, password = self.host.git_password()
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"http.{parts.scheme}://{parts.netloc}/.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }

    def publish(self, story: RevertStory) -> Published:
        """Open the proposal's request, or add this revert to the open one."""
        proposal, section = story.proposal, describe(story)
        found = self.host.find(proposal.branch, proposal.base)
        if found is not None and found.state == "open":
            if story.execution_id in found.body:
                return Published(found, opened=False)  # a retried step: already said
            body = found.body + SECTION_RULE + section
            if len(body) > self.host.max_body:
                body = f"{section}{SECTION_RULE}_Earlier reverts: see the branch's commits._"
            return Published(self.host.update(found, body), opened=False)
        title = f"Revert {story.workdir} to {story.version.commit[:12]} (remediator)"
        return Published(self.host.open(proposal.branch, proposal.base, title, section), True)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def describe(story: RevertStory) -> str:
    """One revert's section of a request's description (markdown)."""
    version, proposal = story.version, story.proposal
    incident = story.incident
    said = (
        f"{markdown_link(markdown_text(incident.title, 200), incident.url)} "
        f"(from {markdown_text(incident.source, 40)})"
        if incident is not None
        else "none recorded (run by hand)"
    )
    lines = [
        f"### Reverted by remediator, execution `{story.execution_id[:8]}`",
        "",
        f"remediator applied `{story.workdir}` as of `{version.commit[:12]}` "
        f"({markdown_text(version.subject, 200)}; {markdown_text(version.chosen_by, 200)}) "
        f"to the infrastructure after an incident. Until this is merged, `{proposal.base}` "
        "says another version, and the next apply from it would undo the fix.",
        "",
        f"- **Incident:** {said}",
        f"- **Runbook:** `{story.runbook}`",
        f"- **Execution:** {story.execution_url} (`{story.execution_id}`)",
        f"- **Drift:** `{proposal.drift or 'none'}`",
        "",
        "**Plan applied:**",
        "",
        markdown_code_block(story.plan[:20_000]),
    ]
    return "\n".join(lines)

"""The GitHub and GitLab code hosts against their stand-ins: a request opened twice (a
race between replicas, a step retried after a crash) is one request, a revert already
in the description is not added again, and a description past the host's limit keeps
the newest revert."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from app.config.sections import GitHubHosting, GitLabHosting
from app.engine_http import EngineError
from app.gitops.code_host import CodeHost, Incident, RevertStory, Reviews
from app.gitops.github import GitHubHost
from app.gitops.gitlab import GitLabHost
from app.gitops.propose import Proposal
from app.gitops.versions import Version
from tests.support.standins.code_host import (
    GITHUB_TOKEN,
    GITLAB_TOKEN,
    CodeHostStandIn,
    code_host_stand_in,
)

BRANCH = "remediator/revert-web-0123abcd"


@pytest.fixture(params=["github", "gitlab"])
def host(request: pytest.FixtureRequest) -> Iterator[tuple[CodeHost, CodeHostStandIn]]:
    with code_host_stand_in() as stand_in:
        if request.param == "github":
            config: Any = GitHubHosting(url=stand_in.base, token=SecretStr(GITHUB_TOKEN),
                                        repo="acme/infra")  # fmt: skip
            yield GitHubHost(config), stand_in
        else:
            config = GitLabHosting(url=stand_in.base, token=SecretStr(GITLAB_TOKEN),
                                   project="acme/infra")  # fmt: skip
            yield GitLabHost(config), stand_in
        assert stand_in.violations == []


def story(execution_id: str) -> RevertStory:
    version = Version("a" * 40, "web: release 1", "2026-12-01T00:00:00Z", "previous")
    proposal = Proposal(BRANCH, "c" * 40, "origin", "main", "b" * 40, "b" * 40, "a" * 40,
                        False, True)  # fmt: skip
    return RevertStory("web", version, proposal, "0 to add, 1 to change", "web-revert",
                       execution_id, f"http://remediator.test/ui/#/executions/{execution_id}",
                       Incident("WebReleaseErrors", "alertmanager", None))  # fmt: skip


def test_a_request_opened_twice_is_one_request(host: tuple[CodeHost, CodeHostStandIn]) -> None:
    code_host, stand_in = host
    first = code_host.open(BRANCH, "main", "Revert web", "one")
    again = code_host.open(BRANCH, "main", "Revert web", "two")  # the host says it exists
    assert again.number == first.number and again.state == "open"
    assert len(stand_in.requests) == 1


def test_publishing_the_same_revert_twice_says_it_once(
    host: tuple[CodeHost, CodeHostStandIn],
) -> None:
    code_host, stand_in = host
    reviews = Reviews(code_host)
    opened = reviews.publish(story("11111111-aaaa"))
    assert opened.opened and "11111111" in opened.request.body
    repeated = reviews.publish(story("11111111-aaaa"))  # a retried step
    assert not repeated.opened and repeated.request.number == opened.request.number
    [request] = stand_in.requests.values()
    assert request.updates == []
    added = reviews.publish(story("22222222-bbbb"))
    assert "11111111" in added.request.body and "22222222" in added.request.body


def test_a_description_past_the_hosts_limit_keeps_the_newest_revert(
    host: tuple[CodeHost, CodeHostStandIn],
) -> None:
    code_host, _ = host
    reviews = Reviews(code_host)
    first = reviews.publish(story("11111111-aaaa"))
    code_host.max_body = len(first.request.body) + 100
    newest = reviews.publish(story("22222222-bbbb")).request.body
    assert "22222222" in newest and "11111111" not in newest
    assert "Earlier reverts: see the branch's commits" in newest


def test_a_request_from_a_branch_the_remote_lacks_is_refused(
    tmp_path: Any, host: tuple[CodeHost, CodeHostStandIn]
) -> None:
    code_host, stand_in = host
    stand_in.remote = tmp_path  # an empty directory: no branch is there
    with pytest.raises(EngineError):
        code_host.open(BRANCH, "main", "Revert web", "body")
    stand_in.violations.clear()

"""A code host's token reaches git only for an HTTPS remote on that host."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr, ValidationError

from app.config.sections import GitHosting, GitHubHosting, GitLabHosting
from app.gitops.code_host import Reviews
from app.gitops.github import GitHubHost
from app.gitops.gitlab import GitLabHost

TOKEN = SecretStr("ghp_unit_token_0001")


def header(env: dict[str, str] | object) -> str:
    assert isinstance(env, dict)
    return base64.b64decode(
        env["GIT_CONFIG_VALUE_0"].removeprefix("Authorization: Basic ")
    ).decode()


def test_the_github_token_goes_only_to_github_over_https() -> None:
    reviews = Reviews(GitHubHost(GitHubHosting(token=TOKEN, repo="acme/infra")))
    env = dict(reviews.git_env("https://github.com/acme/infra.git"))
    assert env["GIT_CONFIG_COUNT"] == "1"
    assert env["GIT_CONFIG_KEY_0"] == "http.https://github.com/.extraHeader"
    assert header(env) == "x-access-token:ghp_unit_token_0001"
    for elsewhere in ("http://github.com/acme/infra.git", "http://10.0.0.1/acme/infra", "https://mirror.example/acme/infra",
                      "git@github.com:acme/infra.git", "/srv/git/infra.git",
                      "https://github.com.evil.example/acme/infra"):  # fmt: skip
        assert reviews.git_env(elsewhere) == {}, elsewhere


def test_plain_http_only_to_a_code_host_on_this_machine() -> None:
    local = GitHubHosting(url="http://127.0.0.1:8929/api/v3", token=TOKEN, repo="acme/infra")
    assert Reviews(GitHubHost(local)).git_env("http://127.0.0.1:8930/acme/infra.git") != {}
    spoofed = GitHubHosting(url="http://10.0.0.1/api/v3", token=TOKEN, repo="acme/infra")
    assert Reviews(GitHubHost(spoofed)).git_env("http://10.0.0.1/acme/infra.git") == {}


def test_a_github_enterprise_and_a_gitlab_token_go_to_their_own_host() -> None:
    ghe = GitHubHosting(url="https://ghe.example/api/v3", token=TOKEN, repo="acme/infra")
    assert Reviews(GitHubHost(ghe)).git_env("https://ghe.example/acme/infra.git") != {}
    gitlab = GitLabHosting(url="https://gitlab.example", token=TOKEN, project="acme/infra")
    env = dict(Reviews(GitLabHost(gitlab)).git_env("https://gitlab.example/acme/infra.git"))
    assert header(env) == "oauth2:ghp_unit_token_0001"
    assert Reviews(GitLabHost(gitlab)).git_env("https://github.com/acme/infra.git") == {}


def test_one_code_host_at_most_and_names_that_stay_in_their_path() -> None:
    with pytest.raises(ValidationError, match="name one of"):
        GitHosting.model_validate({
            "github": {"token": "t", "repo": "a/b"}, "gitlab": {"token": "t", "project": "a/b"}
        })  # fmt: skip
    for repo in ("acme", "acme/infra/more", "../x", "../..", "acme/in fra"):
        with pytest.raises(ValidationError):
            GitHubHosting(token=TOKEN, repo=repo)
    with pytest.raises(ValidationError):
        GitLabHosting(token=TOKEN, project="acme/../other")

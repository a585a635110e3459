"""The code hosts a proposed revert can be opened on, by their `git_hosting` key. Adding
one is a module implementing `code_host.CodeHost` and a line here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.config.sections import GitHosting
from app.gitops.code_host import CodeHost
from app.gitops.github import GitHubHost
from app.gitops.gitlab import GitLabHost

CODE_HOSTS: dict[str, Callable[[Any], CodeHost]] = {"github": GitHubHost, "gitlab": GitLabHost}


def code_host(hosting: GitHosting) -> CodeHost | None:
    """The configured code host, or None: proposals are pushed, and nothing is opened."""
    for name, build in CODE_HOSTS.items():
        config = getattr(hosting, name)
        if config is not None:
            return build(config)
    return None

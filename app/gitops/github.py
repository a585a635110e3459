"""GitHub (REST API 2022-11-28) as a code host: a proposal branch's pull request.

`GET /repos/{owner}/{repo}/pulls?head={owner}:{branch}&base=&state=all` finds it (newest
first; `merged_at` set means merged), `POST /repos/{owner}/{repo}/pulls` {title, head,
base, body} opens it (201; 422 "A pull request already exists for ..." when one is
open: that one is read back), `PATCH /repos/{owner}/{repo}/pulls/{number}` {body}
updates it. A description is at most 65,536 characters. Over HTTPS, git authenticates
with the token as the password of `x-access-token`. The repository is configuration.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from app.config.sections import GitHubHosting
from app.engine_http import EngineClient
from app.gitops.code_host import RequestState, ReviewRequest, already_open

API_VERSION = "2022-11-28"


class GitHubHost:
    noun = "pull request"
    max_body = 65_536

    def __init__(self, config: GitHubHosting) -> None:
        self.config = config
        self.owner = config.repo.split("/")[0]
        self.pulls = "/repos/" + "/".join(quote(part, safe="") for part in config.repo.split("/"))
        self.pulls += "/pulls"
        host = (urlsplit(config.url).hostname or "").lower()
        # api.github.com serves git at github.com; GitHub Enterprise Server at its own host
        self.git_host = host.removeprefix("api.")
        self.client = EngineClient(
            "GitHub",
            config.engine(),
            auth=lambda token: {"authorization": f"Bearer {token}"},
            headers={"accept": "application/vnd.github+json", "x-github-api-version": API_VERSION},
        )

    def find(self, branch: str, base: str) -> ReviewRequest | None:
        params = {"head": f"{self.owner}:{branch}", "base": base, "state": "all",
                  "sort": "created", "direction": "desc", "per_page": "10"}  # fmt: skip
        found = self.client.get(self.pulls, params=params, busy_wait_s=20.0).json()
        pulls = [_request(pull) for pull in found if isinstance(pull, dict)]
        return pulls[0] if pulls else None

    def open(self, branch: str, base: str, title: str, body: str) -> ReviewRequest:
        asked = {"title": title, "head": branch, "base": base, "body": body}
        answer = self.client.post(self.pulls, asked, ok=(422,))
        if answer.status_code == 422:
            return already_open(self, branch, base, answer.text)
        return _request(answer.json())

    def update(self, request: ReviewRequest, body: str) -> ReviewRequest:
        answer = self.client.update("PATCH", f"{self.pulls}/{request.number}", {"body": body})
        return _request(answer.json())

    def git_password(self) -> tuple[str, str]:
        return "x-access-token", self.config.token.get_secret_value()


def _request(pull: dict[str, Any]) -> ReviewRequest:
    state: RequestState = "open" if pull.get("state") == "open" else "closed"
    if pull.get("merged_at"):
        state = "merged"
    return ReviewRequest(int(pull["number"]), str(pull["html_url"]), state, pull.get("body") or "")

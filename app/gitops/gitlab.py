"""GitLab (REST v4) as a code host: a proposal branch's merge request.

`GET /api/v4/projects/{id}/merge_requests?source_branch=&target_branch=&state=all` finds
it (newest first; state opened, closed, locked or merged), `POST .../merge_requests`
{source_branch, target_branch, title, description, remove_source_branch} opens it (201;
409 "Another open merge request already exists for this source branch" when one is
open: that one is read back), `PUT .../merge_requests/{iid}` {description} updates it.
The project (path or id) is configuration, percent-encoded as one path segment. A
description is at most 1,048,576 characters. Over HTTPS, git authenticates with the
token as the password of `oauth2`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from app.config.sections import GitLabHosting
from app.engine_http import EngineClient
from app.gitops.code_host import RequestState, ReviewRequest, already_open

STATES: dict[str, RequestState] = {"opened": "open", "merged": "merged"}


class GitLabHost:
    noun = "merge request"
    max_body = 1_048_576

    def __init__(self, config: GitLabHosting) -> None:
        self.config = config
        self.requests = f"/api/v4/projects/{quote(config.project, safe='')}/merge_requests"
        self.git_host = (urlsplit(config.url).hostname or "").lower()
        self.client = EngineClient(
            "GitLab", config.engine(), auth=lambda token: {"private-token": token}
        )

    def find(self, branch: str, base: str) -> ReviewRequest | None:
        params = {"source_branch": branch, "target_branch": base, "state": "all",
                  "order_by": "created_at", "sort": "desc", "per_page": "10"}  # fmt: skip
        found = self.client.get(self.requests, params=params, busy_wait_s=20.0).json()
        requests = [_request(one) for one in found if isinstance(one, dict)]
        return requests[0] if requests else None

    def open(self, branch: str, base: str, title: str, body: str) -> ReviewRequest:
        asked = {"source_branch": branch, "target_branch": base, "title": title,
                 "description": body, "remove_source_branch": True}  # fmt: skip
        answer = self.client.post(self.requests, asked, ok=(409,))
        if answer.status_code == 409:
            return already_open(self, branch, base, answer.text)
        return _request(answer.json())

    def update(self, request: ReviewRequest, body: str) -> ReviewRequest:
        answer = self.client.update(
            "PUT", f"{self.requests}/{request.number}", {"description": body}
        )
        return _request(answer.json())

    def git_password(self) -> tuple[str, str]:
        return "oauth2", self.config.token.get_secret_value()


def _request(one: dict[str, Any]) -> ReviewRequest:
    state = STATES.get(str(one.get("state")), "closed")
    return ReviewRequest(int(one["iid"]), str(one["web_url"]), state, one.get("description") or "")

"""Stand-in GitHub and GitLab APIs for pull and merge requests, on one loopback port.
Each call is checked against the cut-outs in fixtures/contracts/ (github-pulls.json,
gitlab-merge-requests.json: paths, auth headers, query parameters, body shapes and
limits) and answered as the host does, including its refusals: a request from a branch
the remote does not have (GitHub 422, GitLab 404... here both refuse it), a second open
request for one branch (GitHub 422 "already exists", GitLab 409), a spent rate limit
(GitHub 403 with x-ratelimit-remaining 0, GitLab 429 with Retry-After), and a host that
answers 500 to everything."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

import jsonschema

from tests.support.contracts import EXTRACTS
from tests.support.loopback import LoopbackStandIn, StandInHandler, answer_json

GITHUB_TOKEN = "ghp_code_host_stand_in_0001"
GITLAB_TOKEN = "glpat-code-host-stand-in-0001"
GITHUB: dict[str, Any] = json.loads((EXTRACTS / "github-pulls.json").read_text())
GITLAB: dict[str, Any] = json.loads((EXTRACTS / "gitlab-merge-requests.json").read_text())


@dataclass
class Request:
    number: int
    where: str  # owner/repo or the GitLab project path
    branch: str
    base: str
    title: str
    body: str
    created_at: str
    state: str = "open"  # open | closed | merged
    updates: list[str] = field(default_factory=list)


@dataclass
class CodeHostStandIn(LoopbackStandIn):
    # The bare repository the proposals are pushed to: a request's branch must be there.
    remote: Path | None = None
    # How many calls are answered "rate limit spent" before any is served.
    rate_limited: int = 0
    failing: bool = False
    requests: dict[int, Request] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    handler_name: ClassVar[str] = "host"

    def handler_class(self) -> type[StandInHandler]:
        return _Handler

    def merge(self, number: int) -> None:
        """Someone merged the request: `base` on the remote fast-forwards to the branch
        (which stays on the remote, as it may)."""
        with self.lock:
            request = self.requests[number]
            request.state = "merged"
            if self.remote is not None:
                subprocess.run(["git", "--git-dir", str(self.remote), "update-ref",
                                f"refs/heads/{request.base}", f"refs/heads/{request.branch}"],
                               check=True)  # fmt: skip

    def close(self, number: int) -> None:
        """Someone closed the request without merging it."""
        with self.lock:
            self.requests[number].state = "closed"

    def has_branch(self, branch: str) -> bool:
        if self.remote is None:
            return True
        found = subprocess.run(
            ["git", "--git-dir", str(self.remote), "rev-parse", "--verify", "-q",
             f"refs/heads/{branch}"], capture_output=True, check=False,
        )  # fmt: skip
        return found.returncode == 0

    def new(self, where: str, branch: str, base: str, title: str, body: str) -> Request:
        request = Request(len(self.requests) + 1, where, branch, base, title, body,
                          datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip
        self.requests[request.number] = request
        return request

    def find(self, where: str, branch: str, base: str | None) -> list[Request]:
        return sorted(
            (r for r in self.requests.values()
             if r.where == where and r.branch == branch and base in (None, r.base)),
            key=lambda r: -r.number,
        )  # fmt: skip


@contextmanager
def code_host_stand_in(**options: Any) -> Iterator[CodeHostStandIn]:
    host = CodeHostStandIn(**options)
    host.start()
    try:
        yield host
    finally:
        host.stop()


class _Handler(StandInHandler):
    host: CodeHostStandIn

    def answer(self, method: str, raw: bytes) -> None:
        split = urlsplit(self.path)
        host = self.host
        with host.lock:
            host.calls.append(f"{method} {split.path}")
            if host.failing:
                answer_json(self, 500, {"message": "Server Error"})
                return
            if host.rate_limited > 0:
                host.rate_limited -= 1
                if split.path.startswith("/api/v4/"):
                    answer_json(self, 429, {"message": "429 Too Many Requests"},
                                {"retry-after": "1"})  # fmt: skip
                else:
                    reset = str(int(time.time()) + 1)
                    answer_json(self, 403, {"message": "API rate limit exceeded"},
                                {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})  # fmt: skip
                return
            query = dict(parse_qsl(split.query, keep_blank_values=True))
            if split.path.startswith("/repos/"):
                self._github(method, split.path, query, raw)
            elif split.path.startswith("/api/v4/"):
                self._gitlab(method, split.path, query, raw)
            else:
                self.refuse(404, "neither a GitHub nor a GitLab API path")

    def _query(self, query: dict[str, str], schema: dict[str, Any]) -> bool:
        try:
            jsonschema.validate(query, schema)
        except jsonschema.ValidationError as exc:
            self.refuse(422, f"query breaks the contract: {exc.message[:200]}")
            return False
        return True

    # ------------------------------------------------------------------ GitHub

    def _github(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        for name, value in GITHUB["headers"].items():
            expected = f"Bearer {GITHUB_TOKEN}" if name == "authorization" else value
            if self.headers.get(name) != expected:
                self.refuse(401 if name == "authorization" else 400,
                            f"header {name} is not {expected}")  # fmt: skip
                return
        host = self.host
        pulls = re.fullmatch(r"/repos/([^/]+)/([^/]+)/pulls(?:/(\d+))?", path)
        if pulls is None:
            self.refuse(404, "no such GitHub endpoint")
            return
        owner, where = (
            unquote(pulls.group(1)),
            f"{unquote(pulls.group(1))}/{unquote(pulls.group(2))}",
        )
        number = pulls.group(3)
        if method == "GET" and number is None:
            if not self._query(query, GITHUB["list_query"]):
                return
            head_owner, _, branch = query.get("head", ":").partition(":")
            found = host.find(where, branch, query.get("base")) if head_owner == owner else []
            if query.get("state", "open") != "all":
                found = [
                    r
                    for r in found
                    if (r.state == "open") == (query.get("state", "open") == "open")
                ]
            answer_json(self, 200, [self._pull(r) for r in found])
            return
        if method == "POST" and number is None:
            body = self.contract_body(raw, GITHUB["create_request"], 422, "pull request")
            if body is None:
                return
            if not host.has_branch(body["head"]):
                self.refuse(422, f"head {body['head']} is not a branch of the repository")
                return
            if any(r.state == "open" for r in host.find(where, body["head"], None)):
                exists = json.loads(json.dumps(GITHUB["already_exists"]).replace(
                    "{head}", f"{owner}:{body['head']}"))  # fmt: skip
                answer_json(self, 422, exists)
                return
            request = host.new(
                where, body["head"], body["base"], body["title"], body.get("body", "")
            )
            answer_json(self, 201, self._pull(request))
            return
        if method == "PATCH" and number is not None and int(number) in host.requests:
            body = self.contract_body(raw, GITHUB["update_request"], 422, "pull request update")
            if body is None:
                return
            request = host.requests[int(number)]
            request.body = body.get("body", request.body)
            request.updates.append(request.body)
            answer_json(self, 200, self._pull(request))
            return
        self.refuse(404, "no such GitHub endpoint")

    def _pull(self, request: Request) -> dict[str, Any]:
        answer = {
            "url": f"{self.host.base}/repos/{request.where}/pulls/{request.number}",
            "id": 9000 + request.number, "number": request.number,
            "html_url": f"{self.host.base}/{request.where}/pull/{request.number}",
            "state": "open" if request.state == "open" else "closed",
            "title": request.title, "body": request.body, "created_at": request.created_at,
            "merged_at": request.created_at if request.state == "merged" else None,
            "head": {"ref": request.branch, "sha": "0" * 40},
            "base": {"ref": request.base, "sha": "0" * 40},
        }  # fmt: skip
        jsonschema.validate(answer, GITHUB["pull_request"])
        return answer

    # ------------------------------------------------------------------ GitLab

    def _gitlab(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        if self.headers.get("private-token") != GITLAB_TOKEN:
            answer_json(self, 401, {"message": "401 Unauthorized"})
            return
        host = self.host
        found = re.fullmatch(r"/api/v4/projects/([^/]+)/merge_requests(?:/(\d+))?", path)
        if found is None:
            self.refuse(404, "no such GitLab endpoint (a project path must be one segment)")
            return
        where, iid = unquote(found.group(1)), found.group(2)
        if method == "GET" and iid is None:
            if not self._query(query, GITLAB["list_query"]):
                return
            requests = host.find(where, query.get("source_branch", ""), query.get("target_branch"))
            state = {"opened": "open"}.get(query.get("state", "all"), query.get("state", "all"))
            if state != "all":
                requests = [r for r in requests if r.state == state]
            answer_json(self, 200, [self._merge_request(r) for r in requests])
            return
        if method == "POST" and iid is None:
            body = self.contract_body(raw, GITLAB["create_request"], 400, "merge request")
            if body is None:
                return
            if not host.has_branch(body["source_branch"]):
                self.refuse(400, f"source branch {body['source_branch']} does not exist")
                return
            open_ones = [
                r for r in host.find(where, body["source_branch"], None) if r.state == "open"
            ]
            if open_ones:
                exists = json.loads(json.dumps(GITLAB["already_exists"]).replace(
                    "{iid}", str(open_ones[0].number)))  # fmt: skip
                answer_json(self, 409, exists)
                return
            request = host.new(where, body["source_branch"], body["target_branch"],
                               body["title"], body.get("description", ""))  # fmt: skip
            answer_json(self, 201, self._merge_request(request))
            return
        if method == "PUT" and iid is not None and int(iid) in host.requests:
            body = self.contract_body(raw, GITLAB["update_request"], 400, "merge request update")
            if body is None:
                return
            request = host.requests[int(iid)]
            request.body = body.get("description", request.body)
            request.updates.append(request.body)
            answer_json(self, 200, self._merge_request(request))
            return
        self.refuse(404, "no such GitLab endpoint")

    def _merge_request(self, request: Request) -> dict[str, Any]:
        answer = {
            "id": 7000 + request.number, "iid": request.number, "project_id": 42,
            "title": request.title, "description": request.body,
            "state": {"open": "opened"}.get(request.state, request.state),
            "source_branch": request.branch, "target_branch": request.base,
            "web_url": f"{self.host.base}/{request.where}/-/merge_requests/{request.number}",
            "created_at": request.created_at,
            "merged_at": request.created_at if request.state == "merged" else None,
        }  # fmt: skip
        jsonschema.validate(answer, GITLAB["merge_request"])
        return answer

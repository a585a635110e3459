"""Jira as the tests play it: the calls remediator makes (search by JQL, create issue,
comment, transitions), each body checked against Atlassian's published OpenAPI cut-out
(tests/fixtures/contracts/jira-cloud-v3-openapi.json) and, on Cloud, every description
and comment against the Atlassian Document Format's rules for what text may be; issues
kept with a workflow (To Do → Done by `Done`; Done → To Do by `Reopen`); Cloud's Basic
email:token or Data Center's Bearer PAT; errors in Jira's shape, rate limits with
Retry-After."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tests.support.contracts import problems, request_schema
from tests.support.loopback import LoopbackStandIn, StandInHandler, answer_json

CONTRACT = "jira-cloud-v3-openapi.json"
EMAIL, API_TOKEN, PAT = "sre-bot@example.com", "ATATT3xFfGF0-jira-api-token", "NjM4-jira-dc-pat"
JQL = re.compile(r'^project = "(?P<project>[A-Z][A-Z0-9_]+)" AND labels = "(?P<label>[a-z0-9-]+)"'
                 r" ORDER BY created DESC$")  # fmt: skip
ISSUE = re.compile(
    r"^/rest/api/(?P<v>[23])/issue/(?P<key>[A-Z][A-Z0-9_]+-\d+)/(?P<what>comment|transitions)$"
)
# The workflow: transition id → (name, from status category, to status).
TRANSITIONS = {"21": ("Done", "new", "Done"), "31": ("Reopen", "done", "To Do"),
               "11": ("In Progress", "new", "In Progress")}  # fmt: skip
CATEGORY = {"To Do": "new", "In Progress": "indeterminate", "Done": "done"}
# ADF nodes a text-only document may hold, and the one mark (a link to the service).
ADF_NODES = {"doc", "paragraph", "text"}


@dataclass
class Issue:
    key: str
    fields: dict[str, Any]
    status: str = "To Do"
    comments: list[Any] = field(default_factory=list)
    moves: list[str] = field(default_factory=list)


@dataclass
class JiraStandIn(LoopbackStandIn):
    handler_name = "jira"
    version: int = 3
    # Where links may point: the service's own pages.
    link_prefix: str = "http://"
    issues: list[Issue] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    # Answers given before serving the next calls (429, 503, ...).
    script: list[int] = field(default_factory=list)

    def issue(self, key: str) -> Issue | None:
        return next((i for i in self.issues if i.key == key), None)

    def handler_class(self) -> type[StandInHandler]:
        return _JiraHandler


def adf_problems(document: Any, link_prefix: str) -> list[str]:
    """What in `document` is more than text: a node other than doc/paragraph/text, a
    mark other than a link to the service's pages."""
    found: list[str] = []
    if (
        not isinstance(document, dict)
        or document.get("type") != "doc"
        or document.get("version") != 1
    ):
        return ["not an ADF doc of version 1"]
    pending = [document]
    while pending:
        node = pending.pop()
        if node.get("type") not in ADF_NODES:
            found.append(f"node {node.get('type')!r}")
        if node.get("type") == "text" and not isinstance(node.get("text"), str):
            found.append("a text node without text")
        for mark in node.get("marks") or []:
            href = (mark.get("attrs") or {}).get("href", "")
            if mark.get("type") != "link" or not str(href).startswith(link_prefix):
                found.append(f"mark {mark}")
        pending.extend(node.get("content") or [])
    return found


class _JiraHandler(StandInHandler):
    jira: JiraStandIn
    error_key = "errorMessages"

    def refuse(self, status: int, why: str) -> None:
        self.violations.append(f"{self.command} {self.path}: {why}")
        answer_json(self, status, {"errorMessages": [why], "errors": {}})

    def answer(self, method: str, raw: bytes) -> None:
        jira = self.jira
        path = urlsplit(self.path).path
        with jira.lock:
            jira.calls.append(f"{method} {path}")
            scripted = jira.script.pop(0) if jira.script else None
        if not self._authorised():
            answer_json(self, 401, {"errorMessages": ["You are not authenticated."], "errors": {}})
            return
        if scripted is not None:
            answer_json(self, scripted, {"errorMessages": ["Rate limit exceeded."], "errors": {}},
                        {"Retry-After": "1"} if scripted == 429 else None)  # fmt: skip
            return
        api = f"/rest/api/{jira.version}"
        if not path.startswith(api + "/"):
            self.refuse(404, f"this Jira serves API v{jira.version}")
            return
        if method == "POST" and path in (f"{api}/search/jql", f"{api}/search"):
            self._search(raw, path)
        elif method == "POST" and path == f"{api}/issue":
            self._create(raw)
        elif match := ISSUE.match(path):
            self._on_issue(method, match.group("key"), match.group("what"), raw)
        else:
            self.refuse(404, f"no {method} {path} here")

    def _authorised(self) -> bool:
        given = self.headers.get("authorization", "")
        if self.jira.version == 3:
            pair = base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode()).decode()
            return given == f"Basic {pair}"
        return given == f"Bearer {PAT}"

    def _checked(self, raw: bytes, path: str) -> Any:
        """The JSON body if it keeps the published schema of `path` (as v3 names it)."""
        body = json.loads(raw or b"{}")
        wrong = problems(request_schema(CONTRACT, path.replace("/api/2/", "/api/3/")), body)
        if wrong:
            self.refuse(400, "; ".join(wrong))
            return None
        return body

    def _text(self, value: Any, what: str) -> bool:
        """A description or comment: ADF text on Cloud, one {noformat} block on DC."""
        jira = self.jira
        if jira.version == 3:
            wrong = adf_problems(value, jira.link_prefix)
        else:
            inner = (
                value[len("{noformat}\n") : -len("\n{noformat}")] if isinstance(value, str) else ""
            )
            wrong = ([] if isinstance(value, str) and value.startswith("{noformat}\n")
                     and value.endswith("\n{noformat}") and "{noformat" not in inner.lower()
                     else ["not one {noformat} block"])  # fmt: skip
        if wrong:
            self.refuse(400, f"{what}: {'; '.join(wrong)}")
        return not wrong

    def _search(self, raw: bytes, path: str) -> None:
        # Data Center's /search takes the same jql, fields and maxResults as /search/jql.
        body = self._checked(raw, "/rest/api/3/search/jql")
        if body is None:
            return
        match = JQL.match(str(body.get("jql", "")))
        if match is None:
            self.refuse(400, f"unexpected JQL {body.get('jql')!r}")
            return
        found = [i for i in reversed(self.jira.issues)
                 if i.fields["project"]["key"] == match["project"] and match["label"] in i.fields.get("labels", [])]  # fmt: skip
        issues = [{"id": str(10000 + self.jira.issues.index(i)), "key": i.key, "fields": {
            "status": {"name": i.status, "statusCategory": {"key": CATEGORY[i.status]}}}}
            for i in found[: int(body.get("maxResults", 50))]]  # fmt: skip
        answer_json(self, 200, {"issues": issues, "isLast": True})

    def _create(self, raw: bytes) -> None:
        body = self._checked(raw, "/rest/api/3/issue")
        if body is None:
            return
        fields = body.get("fields") or {}
        summary = fields.get("summary")
        if not isinstance(summary, str) or not 0 < len(summary) <= 255 or "\n" in summary:
            self.refuse(400, "summary: one line of at most 255 characters")
            return
        if any(" " in label for label in fields.get("labels", [])):
            self.refuse(400, "labels: no spaces")
            return
        if not self._text(fields.get("description"), "description"):
            return
        with self.jira.lock:
            key = f"{fields['project']['key']}-{len(self.jira.issues) + 1}"
            self.jira.issues.append(Issue(key, fields))
        answer_json(self, 201, {"id": str(10000 + len(self.jira.issues)), "key": key,
                                "self": f"{self.jira.base}/rest/api/3/issue/{key}"})  # fmt: skip

    def _on_issue(self, method: str, key: str, what: str, raw: bytes) -> None:
        issue = self.jira.issue(key)
        if issue is None:
            self.refuse(404, f"Issue does not exist or you do not have permission to see it: {key}")
            return
        if what == "comment" and method == "POST":
            body = self._checked(raw, "/rest/api/3/issue/{issueIdOrKey}/comment")
            if body is not None and self._text(body.get("body"), "comment"):
                issue.comments.append(body["body"])
                answer_json(self, 201, {"id": str(len(issue.comments))})
        elif what == "transitions" and method == "GET":
            offered = [{"id": tid, "name": name, "to": {"name": to}}
                       for tid, (name, source, to) in TRANSITIONS.items()
                       if CATEGORY[issue.status] == source or (source == "new" and CATEGORY[issue.status] == "indeterminate")]  # fmt: skip
            answer_json(self, 200, {"transitions": offered})
        elif what == "transitions" and method == "POST":
            body = self._checked(raw, "/rest/api/3/issue/{issueIdOrKey}/transitions")
            if body is None:
                return
            tid = str((body.get("transition") or {}).get("id"))
            if tid not in TRANSITIONS or TRANSITIONS[tid][1] != CATEGORY[issue.status].replace(
                "indeterminate", "new"
            ):
                self.refuse(400, f"transition {tid} is not valid for {issue.status}")
                return
            issue.status = TRANSITIONS[tid][2]
            issue.moves.append(TRANSITIONS[tid][0])
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()
        else:
            self.refuse(405, f"{method} {what}")

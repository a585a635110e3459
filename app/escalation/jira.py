"""Jira: a ticket per incident (app/escalation/tickets.py says how it follows it).

Endpoints (REST API v3 on Jira Cloud, `Authorization: Basic <email:api_token>`; v2 on
Data Center, `Authorization: Bearer <personal access token>`):
- find: `POST /rest/api/3/search/jql` (Data Center: `/rest/api/2/search`) with
  `project = "<project>" AND labels = "<key>" ORDER BY created DESC`, its status
  category (`done` is closed) and, for a done one, `GET .../issue/{key}/transitions` to
  see whether `reopen_transition` is offered;
- open: `POST .../issue` (project, `issue_type`, summary, description, `labels` and the
  key, `priorities[severity]`);
- comment: `POST .../issue/{key}/comment`;
- reopen and close: `POST .../issue/{key}/transitions` with the id of the transition
  named `reopen_transition` / `done_transition`, looked up by name on that issue.
  A success notice, or the incident resolving after an escalation, closes the ticket
  when `done_transition` is set.

What a payload may fill: only text. On Cloud the description and comments are Atlassian
Document Format whose payload text is in text nodes, with no marks: markup, mentions and
links in it are shown as written; the one link is the execution's page (the service's
own URL). On Data Center (wiki markup) the text is inside one `{noformat}` block, with
any `{noformat}` in it broken so it cannot end the block. The summary is one line of at
most 255 characters. An issue key from Jira's answer is used in a path only when it has
Jira's key form.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx

from app.config.sections import JiraTarget
from app.errors import EscalationError
from app.escalation.base import EscalationMessage, call_json, level, story
from app.escalation.tickets import Ticket, follow_incident

ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9_]{1,49}-[0-9]{1,12}")
_NOFORMAT = re.compile(r"\{noformat", re.IGNORECASE)


def adf(text: str, link: tuple[str, str] | None = None) -> dict[str, Any]:
    """`text` as an Atlassian Document Format document: a paragraph per line, each line
    one text node; `link` (label, URL) first, the only marked text."""
    content: list[dict[str, Any]] = []
    if link is not None:
        label, url = link
        marks = [{"type": "link", "attrs": {"href": url}}]
        content.append({"type": "paragraph",
                        "content": [{"type": "text", "text": label, "marks": marks}]})  # fmt: skip
    for line in text.splitlines():
        paragraph: dict[str, Any] = {"type": "paragraph"}
        if line.strip():
            paragraph["content"] = [{"type": "text", "text": line}]
        content.append(paragraph)
    return {"type": "doc", "version": 1, "content": content}


def noformat(text: str) -> str:
    """`text` shown as written in wiki markup (Data Center)."""
    return "{noformat}\n" + _NOFORMAT.sub("{ noformat", text) + "\n{noformat}"


def summary(message: EscalationMessage) -> str:
    return " ".join(message.headline.split())[:255]


class JiraNotifier:
    name = "jira"
    follows_incident = True

    def __init__(self, config: JiraTarget) -> None:
        self.config = config
        self.api = f"{config.url.rstrip('/')}/rest/api/{config.api_version}"

    def deliver(self, message: EscalationMessage, *, client: httpx.Client) -> None:
        follow_incident(self, message, client)

    def find(self, key: str, client: httpx.Client) -> Ticket | None:
        query = {"jql": f'project = "{self.config.project}" AND labels = "{key}" '
                        "ORDER BY created DESC",
                 "fields": ["status"], "maxResults": 1}  # fmt: skip
        path = "/search/jql" if self.config.api_version == 3 else "/search"
        found = self._call(client, "POST", path, query)
        issues = found.get("issues") if isinstance(found, dict) else None
        if not isinstance(issues, list) or not issues:
            return None
        issue_key = _issue_key(issues[0].get("key") if isinstance(issues[0], dict) else None)
        done = _dig(issues[0], "fields", "status", "statusCategory", "key") == "done"
        reopenable = (done and self.config.reopen_transition is not None
                      and self._transition(client, issue_key, self.config.reopen_transition)
                      is not None)  # fmt: skip
        return Ticket(issue_key, open=not done, reopenable=reopenable)

    def open(self, key: str, message: EscalationMessage, client: httpx.Client) -> None:
        fields: dict[str, Any] = {
            "project": {"key": self.config.project},
            "issuetype": {"name": self.config.issue_type},
            "summary": summary(message),
            "description": self._text(story(message), message),
            "labels": [*self.config.labels, key],
        }
        priorities: dict[str, str] = {str(k): v for k, v in self.config.priorities.items()}
        priority = level(message, priorities, notice="", default="")
        if priority:
            fields["priority"] = {"name": priority}
        self._call(client, "POST", "/issue", {"fields": fields})

    def comment(self, ticket: Ticket, text: str, client: httpx.Client) -> None:
        self._call(client, "POST", f"/issue/{ticket.id}/comment", {"body": self._text(text)})

    def reopen(self, ticket: Ticket, client: httpx.Client) -> None:
        self._move(client, ticket.id, self.config.reopen_transition)

    def close(self, ticket: Ticket, text: str, client: httpx.Client) -> None:  # noqa: ARG002
        self._move(client, ticket.id, self.config.done_transition)

    def closes(self, message: EscalationMessage) -> bool:  # noqa: ARG002
        return self.config.done_transition is not None

    def _text(self, text: str, message: EscalationMessage | None = None) -> Any:
        if self.config.api_version == 2:
            return noformat(text)
        link = ("Execution in remediator", message.execution_url) if message else None
        return adf(text, link)

    def _move(self, client: httpx.Client, issue_key: str, name: str | None) -> None:
        transition = self._transition(client, issue_key, name) if name else None
        if transition is None:
            raise EscalationError(f"jira: {issue_key} offers no transition {name!r}",
                                  retryable=False)  # fmt: skip
        self._call(client, "POST", f"/issue/{issue_key}/transitions",
                   {"transition": {"id": transition}})  # fmt: skip

    def _transition(self, client: httpx.Client, issue_key: str, name: str) -> str | None:
        """The id of the transition called `name` that the issue offers now."""
        offered = _dig(self._call(client, "GET", f"/issue/{issue_key}/transitions", None),
                       "transitions")  # fmt: skip
        for transition in offered if isinstance(offered, list) else []:
            if (
                isinstance(transition, dict)
                and str(transition.get("name", "")).casefold() == name.casefold()
            ):
                return str(transition.get("id"))
        return None

    def _call(self, client: httpx.Client, method: str, path: str, body: Any) -> Any:
        config = self.config
        if config.token is not None:
            auth = f"Bearer {config.token.get_secret_value()}"
        else:
            pair = (
                f"{config.email}:{config.api_token.get_secret_value() if config.api_token else ''}"
            )
            auth = "Basic " + base64.b64encode(pair.encode()).decode()
        return call_json(
            client, self.name, method, self.api + path, timeout_s=config.timeout_s,
            headers={"authorization": auth, "accept": "application/json"},
            content=None if body is None else json.dumps(body).encode(),
        )  # fmt: skip


def _dig(value: Any, *keys: str) -> Any:
    """`value[k1][k2]...` of an answer, or None where it is not an object with that key."""
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _issue_key(value: Any) -> str:
    if isinstance(value, str) and ISSUE_KEY.fullmatch(value):
        return value
    raise EscalationError(f"jira answered an issue key that is not one: {str(value)[:40]!r}")

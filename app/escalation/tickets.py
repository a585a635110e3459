"""Targets that keep a ticket in a ticketing system: one ticket per incident, that
follows it as Robusta's ticket sinks do.

The ticket is found again by a key made from the incident (`remediator-<hash of its
source and fingerprint>`), stored on the ticket (a label, a correlation id: each system
says where), so nothing here has to remember it, and a retry after a crash finds what the first
attempt made instead of opening a second:
- an escalation (or a diagnosis, an approval notice, a shadow run's report) opens a
  ticket when there is none, comments on the open one (a later escalation of the same
  execution, or of a later execution while the ticket is open), and reopens a closed one
  that the system can reopen (else opens a new one): never a duplicate;
- a success notice, or the incident resolving on its platform after its remediation
  escalated, comments on the open ticket and closes it (`closes`: the system's own rule
  for when it should); with no open ticket it says nothing.
Each call is one `once` part, so a retry resumes where the last attempt stopped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

import httpx

from app.escalation.base import INCIDENT_RESOLVED, REMEDIATED, EscalationMessage, once, story


@dataclass(frozen=True)
class Ticket:
    id: str
    open: bool
    # A closed ticket that the system can open again (a reopen its workflow offers).
    reopenable: bool = False


class TicketSystem(Protocol):
    def find(self, key: str, client: httpx.Client) -> Ticket | None:
        """The newest ticket that carries `key`, or None."""

    def open(self, key: str, message: EscalationMessage, client: httpx.Client) -> None:
        """Open a ticket carrying `key` with the whole story."""

    def comment(self, ticket: Ticket, text: str, client: httpx.Client) -> None: ...

    def reopen(self, ticket: Ticket, client: httpx.Client) -> None: ...

    def close(self, ticket: Ticket, text: str, client: httpx.Client) -> None: ...

    def closes(self, message: EscalationMessage) -> bool:
        """Whether this notice (a success, the incident resolving) closes the ticket, by
        the system's own rule."""


def ticket_key(message: EscalationMessage) -> str:
    """The key a ticket is found by: the same for every event of one incident (its
    source and fingerprint), and only letters, digits and dashes (a label, a query
    value: nothing to escape)."""
    incident = message.execution.incident
    identity = f"{incident.get('source')}/{incident.get('fingerprint')}".encode()
    return "remediator-" + hashlib.sha256(identity).hexdigest()[:24]


def follow_incident(system: TicketSystem, message: EscalationMessage, client: httpx.Client) -> None:
    """Open, comment on, reopen or close the incident's ticket, as the module says."""
    key = ticket_key(message)
    if message.progress.done("open"):
        return  # an earlier attempt opened it with this story: not told twice
    ticket = system.find(key, client)
    if message.reason in (REMEDIATED, INCIDENT_RESOLVED):
        if ticket is None or not ticket.open:
            return
        text = story(message)
        once(message.progress, "comment", lambda: system.comment(ticket, text, client))
        if system.closes(message):
            once(message.progress, "close", lambda: system.close(ticket, text, client))
        return
    if ticket is None or (not ticket.open and not ticket.reopenable):
        once(message.progress, "open", lambda: system.open(key, message, client))
        return
    if not ticket.open:
        once(message.progress, "reopen", lambda: system.reopen(ticket, client))
    text = story(message)
    once(message.progress, "comment", lambda: system.comment(ticket, text, client))

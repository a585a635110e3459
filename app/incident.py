"""The normalised incident: what every source turns its platform's payload into."""

from __future__ import annotations

from datetime import datetime, timedelta
from hashlib import sha256
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

KEY_MAX = 200
STARTED_WITHIN = timedelta(days=30)
Status = Literal["firing", "resolved"]
# Where an event stands in its incident's occurrence: `opened` starts one (a new alert, a
# trigger, a reopen), `updated` is anything later about the same one (acknowledged,
# escalated, priority changed, a repeat notification), `resolved` ends it.
Phase = Literal["opened", "updated", "resolved"]
Severity = Literal["critical", "high", "medium", "low", "info"]


class Incident(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    delivery_id: str
    event_type: str
    status: Status
    title: str
    severity: Severity
    service: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    fingerprint: str
    received_at: datetime
    # When the platform says the incident began (an alert's startsAt, an incident's
    # creation), where it says so: time to remediate counts from here, else from arrival.
    # Payload data, so believed only between 30 days before arrival and arrival.
    started_at: datetime | None = None
    # The occurrence this event belongs to (each source's rule is at the top of its
    # module); empty: the fingerprint's. An `opened` event whose occurrence is already
    # open is stored as `updated`: a repeat starts nothing (see app.ingest).
    occurrence: str = ""
    phase: Phase = "opened"
    raw: Any = None
    # Keys of `raw` that are the delivery's, not this incident's (a group's fields, shared
    # by each of its alerts): stored once with the event, not again with every incident.
    raw_shared: frozenset[str] = Field(default_factory=frozenset, exclude=True, repr=False)

    @model_validator(mode="after")
    def _defaults(self) -> Incident:
        # Keys come from payloads: a long one is kept as its hash, so it fits its column
        # (255) on every database instead of failing the whole delivery there.
        for name in ("fingerprint", "occurrence"):
            value = getattr(self, name)
            if len(value) > KEY_MAX:
                object.__setattr__(self, name, "sha256:" + sha256(value.encode()).hexdigest())
        if not self.occurrence:
            object.__setattr__(self, "occurrence", self.fingerprint)
        started = self.started_at
        if started is not None and not (
            self.received_at - STARTED_WITHIN <= started <= self.received_at
        ):
            object.__setattr__(self, "started_at", None)
        if self.status == "resolved" and self.phase != "resolved":
            object.__setattr__(self, "phase", "resolved")
        return self

    def template_context(self) -> dict[str, Any]:
        """The incident as plain data, the way runbook templates and conditions see it.
        `raw` is parsed JSON already, handed over as it is rather than dumped again: a
        group's payload is shared by every alert of it."""
        return self.model_dump(mode="json", exclude={"raw"}) | {"raw": self.raw}

    def stored(self) -> dict[str, Any]:
        """The incident as it is stored: its own part of `raw` only."""
        raw = self.raw
        if self.raw_shared and isinstance(raw, dict):
            raw = {key: value for key, value in raw.items() if key not in self.raw_shared}
        return self.model_dump(mode="json", exclude={"raw"}) | {"raw": raw}

"""The normalised incident: what every source turns its platform's payload into."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["firing", "resolved"]
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
    raw: Any = None
    # Keys of `raw` that are the delivery's, not this incident's (a group's fields, shared
    # by each of its alerts): stored once with the event, not again with every incident.
    raw_shared: frozenset[str] = Field(default_factory=frozenset, exclude=True, repr=False)

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

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

    def template_context(self) -> dict[str, Any]:
        """The incident as plain data, the way runbook templates and conditions see it."""
        return self.model_dump(mode="json")

"""Prometheus Alertmanager, webhook_config payload version 4.

Verification: `Authorization: Bearer <token>` (Alertmanager's `http_config.authorization`).
Mapping and delivery id: see `app.sources.grouped` (one Incident per alert).
"""

from __future__ import annotations

from typing import Any

from app.config.sections import SourceConfig
from app.sources.base import (
    Delivery,
    WebhookRequest,
    bearer_headers,
    require_token,
    verify_bearer,
)
from app.sources.grouped import group_delivery


class AlertmanagerSource:
    name = "alertmanager"
    default_replay_window_s: int | None = None
    calls_out = False

    def check_config(self, config: SourceConfig) -> None:
        require_token(self.name, config)

    def verify(self, request: WebhookRequest, config: SourceConfig) -> None:
        verify_bearer(request, config)

    def sign(self, _body: bytes, config: SourceConfig, _now: float) -> dict[str, str]:
        return bearer_headers(config)

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        return group_delivery(self.name, "Alertmanager", payload, request, version="4")

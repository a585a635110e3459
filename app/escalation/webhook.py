"""A generic webhook: the message as JSON, signed with Standard Webhooks headers.

The `webhook-id` is the escalation's id and stays the same on every retry, so a receiver
that deduplicates on it (as the standard recommends) sees each escalation once.
"""

from __future__ import annotations

import json
import time

import httpx

from app.config.sections import WebhookTarget
from app.escalation.base import EscalationMessage, post_json
from app.signing import secret_key, signed_headers


class WebhookNotifier:
    name = "webhook"
    follows_incident = False

    def __init__(self, config: WebhookTarget) -> None:
        self.config = config
        self.key = secret_key(config.secret.get_secret_value()) if config.secret else None

    def deliver(self, message: EscalationMessage, *, client: httpx.Client) -> None:
        body = json.dumps(message.as_json(), separators=(",", ":")).encode()
        headers = {"webhook-id": message.escalation_id}
        if self.key is not None:
            headers = signed_headers(
                self.key, msg_id=message.escalation_id, timestamp=int(time.time()), body=body
            )
        post_json(
            client, self.name, self.config.url,
            content=body, headers=headers, timeout_s=self.config.timeout_s,
        )  # fmt: skip

"""Any JSON sender, signed with Standard Webhooks headers.

Verification: `webhook-id`, `webhook-timestamp`, `webhook-signature` (HMAC-SHA256 over
`id.timestamp.body`, key from the `whsec_` secret), timestamp within the replay window.
A source configured with `token` instead takes `Authorization: Bearer <token>` (or the
raw token in the header named by `token_header`).

Body: one incident, or `{"incidents": [...]}`. Fields map one to one onto the Incident:
`title` (required), `status` (firing|resolved, default firing), `severity` (any common
word: critical/high/error/warning/p1..p5..., default medium), `service`, `labels`,
`annotations`, `url`, `fingerprint` (default: a hash of title, service and labels),
`event_type` (default `incident.<status>`), `occurrence` (default: the fingerprint) and
`phase` (`opened` or `updated`; default `opened` while firing: a repeat of an occurrence
that is still open is stored as `updated` and starts nothing; once it resolved, the same
fingerprint opens a new one), `started_at` (when it began, RFC 3339 with a zone; time
to remediate counts from it). The whole object is `raw`.
Delivery id: the `webhook-id` header when the call is signed (the signature covers it).
With a token the id is the sender's own choice, so it is the `webhook-id` with a hash of
the body: a captured id cannot be used to mark a different body as already seen, and a
body repeated under a new id is a new delivery only if its id differs.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from app.config.sections import SourceConfig
from app.errors import Unauthenticated, UnsupportedPayload
from app.incident import Incident
from app.signing import secret_key, signed_headers, verify
from app.sources.base import (
    Delivery,
    WebhookRequest,
    allow_options,
    bearer_headers,
    body_digest,
    severity_from,
    stable_fingerprint,
    string_map,
    verify_bearer,
)


def _delivery_id(request: WebhookRequest) -> str:
    given = request.headers.get("webhook-id", "")
    if request.signed and given and len(given) <= 200:
        return given
    digest = "sha256:" + body_digest(request.body)
    if not given:
        return digest
    # Long ids are hashed to fit the column; the body hash is kept whole.
    shown = given if len(given) <= 120 else "sha256:" + body_digest(given.encode())
    return f"{shown}|{digest}"


class GenericIncident(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: str
    status: Literal["firing", "resolved"] = "firing"
    severity: str = "medium"
    service: str | None = None
    labels: dict[str, Any] = {}
    annotations: dict[str, Any] = {}
    url: str | None = None
    fingerprint: str | None = None
    event_type: str | None = None
    occurrence: str | None = Field(default=None, max_length=255)
    phase: Literal["opened", "updated"] = "opened"
    started_at: AwareDatetime | None = None

    @field_validator("title")
    @classmethod
    def _title_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("title may not be blank")
        return value


class GenericSource:
    name = "generic"
    default_replay_window_s: int | None = None
    calls_out = False

    def check_config(self, config: SourceConfig) -> None:
        allow_options(self.name, config, "token_header")
        if config.secret is not None:
            secret_key(config.secret.get_secret_value())

    def verify(self, request: WebhookRequest, config: SourceConfig) -> None:
        if config.secret is not None:
            verify(
                secret_key(config.secret.get_secret_value()),
                headers=request.headers,
                body=request.body,
                now=request.now,
                window_s=request.replay_window_s,
            )
        elif config.token is not None:
            verify_bearer(request, config)
        else:
            raise Unauthenticated("this source has neither secret nor token configured")

    def sign(self, body: bytes, config: SourceConfig, now: float) -> dict[str, str]:
        if config.secret is None:
            return bearer_headers(config)
        key = secret_key(config.secret.get_secret_value())
        return signed_headers(key, msg_id=str(uuid.uuid4()), timestamp=int(now), body=body)

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        if isinstance(payload, dict) and "incidents" in payload:
            items = payload["incidents"]
            if not isinstance(items, list) or not items:
                raise UnsupportedPayload("`incidents` must be a non-empty list of objects")
        else:
            items = [payload]
        delivery_id = _delivery_id(request)
        incidents = [
            self._incident(item, index, delivery_id, request) for index, item in enumerate(items)
        ]
        return Delivery(delivery_id=delivery_id, event_type="incident", incidents=incidents)

    def _incident(
        self, item: Any, index: int, delivery_id: str, request: WebhookRequest
    ) -> Incident:
        if not isinstance(item, dict):
            raise UnsupportedPayload(f"incident {index} must be a JSON object")
        try:
            parsed = GenericIncident.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            raise UnsupportedPayload(f"incident {index}: {problems}") from exc
        labels = string_map(parsed.labels)
        return Incident(
            source=self.name,
            delivery_id=delivery_id,
            event_type=parsed.event_type or f"incident.{parsed.status}",
            status=parsed.status,
            title=parsed.title,
            severity=severity_from(parsed.severity),
            service=parsed.service,
            labels=labels,
            annotations=string_map(parsed.annotations),
            url=parsed.url,
            fingerprint=parsed.fingerprint
            or stable_fingerprint(parsed.title, parsed.service, labels),
            received_at=request.received_at,
            started_at=parsed.started_at,
            occurrence=parsed.occurrence or "",
            phase=parsed.phase,
            raw=item,
        )

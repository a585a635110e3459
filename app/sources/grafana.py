"""Grafana Alerting, webhook contact point (payload `version: "1"`).

Verification, whichever the contact point is set up with:
- its HMAC option: the header named by `signature_header` (Grafana's default
  `X-Grafana-Alerting-Signature`) holds the hex HMAC-SHA256 of the raw body keyed by
  `secret`, over `<timestamp>:<body>` with the timestamp from the header named by
  `timestamp_header` (default `X-Grafana-Alerting-Timestamp`: set the contact point's
  "Timestamp header" to it), and a timestamp outside the replay window is refused (401).
  Grafana sends unix seconds; milliseconds are also understood. Without a timestamp a
  captured body could be replayed for as long as its delivery id is remembered, so an
  unstamped HMAC is taken only with `allow_unstamped: true` (a warning at every start).
- or a token: `Authorization: Bearer <token>` (the contact point's "Authorization
  header" credentials), or the raw token in the header named by `token_header` (one of
  its extra headers).

Mapping: as Alertmanager (see `app.sources.grouped`, one Incident per alert), plus
Grafana's per-alert links and values as annotations: `dashboard_url`, `panel_url`,
`silence_url`, `image_url`, `values` (JSON) and `value_string`. The group's `orgId`,
`state`, `title` and `message` stay in `raw` (`raw.orgId`, `raw.title`, ...).
"""

from __future__ import annotations

import json
from typing import Any

from app.config.sections import SourceConfig
from app.errors import ConfigError, InvalidSignature, StaleTimestamp
from app.signing import parse_timestamp
from app.sources.base import (
    Delivery,
    WebhookRequest,
    allow_options,
    any_matches,
    bearer_headers,
    hmac_hex,
    signing_key,
    verify_bearer,
)
from app.sources.grouped import group_delivery

DEFAULT_SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"
DEFAULT_TIMESTAMP_HEADER = "X-Grafana-Alerting-Timestamp"
LINKS = {
    "dashboardURL": "dashboard_url",
    "panelURL": "panel_url",
    "silenceURL": "silence_url",
    "imageURL": "image_url",
    "valueString": "value_string",
}


def grafana_extras(alert: dict[str, Any]) -> dict[str, str]:
    extras = {name: alert[key] for key, name in LINKS.items() if isinstance(alert.get(key), str)}
    extras = {k: v for k, v in extras.items() if v}
    if isinstance(alert.get("values"), dict):
        extras["values"] = json.dumps(alert["values"], sort_keys=True)
    return extras


class GrafanaSource:
    name = "grafana"
    default_replay_window_s: int | None = None
    calls_out = False

    def check_config(self, config: SourceConfig) -> None:
        if config.secret is not None and config.token is not None:
            raise ConfigError("sources.grafana: set the HMAC `secret` or a `token`, not both")
        if config.secret is not None:
            allow_options(
                self.name, config, "signature_header", "timestamp_header", "allow_unstamped"
            )
        else:
            allow_options(self.name, config, "token_header")

    def verify(self, request: WebhookRequest, config: SourceConfig) -> None:
        if config.secret is None:
            verify_bearer(request, config)
            return
        header = config.signature_header or DEFAULT_SIGNATURE_HEADER
        signature = request.headers.get(header.lower())
        if not signature:
            raise InvalidSignature(f"missing {header} header")
        message = request.body
        stamp_header = config.timestamp_header or (
            None if config.allow_unstamped else DEFAULT_TIMESTAMP_HEADER
        )
        if stamp_header is not None:
            stamp = request.headers.get(stamp_header.lower())
            if not stamp:
                raise StaleTimestamp(f"missing {stamp_header} header (a replay window needs it)")
            seconds = stamp.strip()
            if seconds.isdigit() and len(seconds) >= 13:  # milliseconds
                seconds = seconds[:-3]
            parse_timestamp(seconds, now=request.now, window_s=request.replay_window_s)
            message = stamp.strip().encode() + b":" + request.body
        expected = hmac_hex(signing_key(config), message)
        if not any_matches(expected, [signature]):
            raise InvalidSignature(f"{header} does not match the body")

    def sign(self, body: bytes, config: SourceConfig, now: float) -> dict[str, str]:
        if config.secret is None:
            return bearer_headers(config)
        header = config.signature_header or DEFAULT_SIGNATURE_HEADER
        stamp_header = config.timestamp_header or (
            None if config.allow_unstamped else DEFAULT_TIMESTAMP_HEADER
        )
        if stamp_header is None:
            return {header: hmac_hex(signing_key(config), body)}
        stamp = str(int(now))
        return {header: hmac_hex(signing_key(config), stamp.encode() + b":" + body),
                stamp_header: stamp}  # fmt: skip

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        return group_delivery(
            self.name, "Grafana", payload, request, version="1", extras=grafana_extras
        )

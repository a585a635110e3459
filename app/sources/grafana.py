"""Grafana Alerting, webhook contact point (payload `version: "1"`).

Verification, whichever the contact point is set up with:
- its HMAC option: the header named by `signature_header` (Grafana's default
  `X-Grafana-Alerting-Signature`) holds the hex HMAC-SHA256 of the raw body keyed by
  `secret`; when the contact point also names a timestamp header (`timestamp_header`
  here, for example `X-Grafana-Alerting-Timestamp`), the HMAC is of `<timestamp>:<body>`
  and a timestamp outside the replay window is refused. Grafana sends unix seconds;
  a value in milliseconds is also understood.
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

from app.config import SourceConfig
from app.errors import ConfigError, InvalidSignature
from app.signing import parse_timestamp
from app.sources.base import (
    Delivery,
    WebhookRequest,
    allow_options,
    any_matches,
    hmac_hex,
    signing_key,
    verify_bearer,
)
from app.sources.grouped import group_delivery

DEFAULT_SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"
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

    def check_config(self, config: SourceConfig) -> None:
        if config.secret is not None and config.token is not None:
            raise ConfigError("sources.grafana: set the HMAC `secret` or a `token`, not both")
        if config.secret is not None:
            allow_options(self.name, config, "signature_header", "timestamp_header")
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
        if config.timestamp_header is not None:
            stamp = request.headers.get(config.timestamp_header.lower())
            if not stamp:
                raise InvalidSignature(f"missing {config.timestamp_header} header")
            seconds = stamp.strip()
            if seconds.isdigit() and len(seconds) >= 13:  # milliseconds
                seconds = seconds[:-3]
            parse_timestamp(seconds, now=request.now, window_s=request.replay_window_s)
            message = stamp.strip().encode() + b":" + request.body
        expected = hmac_hex(signing_key(config), message)
        if not any_matches(expected, [signature]):
            raise InvalidSignature(f"{header} does not match the body")

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        return group_delivery(
            self.name, "Grafana", payload, request, version="1", extras=grafana_extras
        )

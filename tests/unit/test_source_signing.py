"""Every source signs a body the way its platform does (`remediator send`): what `sign`
gives, `verify` takes, for each way the platform can be configured; a wrong secret or
token, a changed body (where a signature covers it) or a stale time is still refused."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from app.config.sections import SourceConfig
from app.errors import Unauthenticated
from app.sources.base import WebhookRequest
from app.sources.registry import SOURCES

SECRET, TOKEN = SecretStr("whsec_c2lnbmluZy10ZXN0LXNlY3JldA=="), SecretStr("a-token-0123456789")
# Each platform's ways of proving its calls, as its source module accepts them.
CONFIGS: dict[str, list[SourceConfig]] = {
    "alertmanager": [SourceConfig(token=TOKEN)],
    "datadog": [SourceConfig(token=TOKEN), SourceConfig(token=TOKEN, token_header="X-Key")],
    "opsgenie": [SourceConfig(token=TOKEN, token_header="X-Remediator-Token")],
    "grafana": [
        SourceConfig(secret=SECRET),
        SourceConfig(secret=SECRET, signature_header="X-Sig", timestamp_header="X-Time"),
        SourceConfig(secret=SECRET, allow_unstamped=True),
        SourceConfig(token=TOKEN),
    ],
    "pagerduty": [SourceConfig(secret=SECRET)],
    "rootly": [SourceConfig(secret=SECRET)],
    "sentry": [SourceConfig(secret=SECRET)],
    "incidentio": [SourceConfig(secret=SECRET)],
    # Proved by keys only the platform has: tests/unit/test_cloudwatch_source.py and
    # tests/unit/test_azure_monitor_source.py.
    "cloudwatch": [],
    "azure_monitor": [],
    "generic": [SourceConfig(secret=SECRET), SourceConfig(token=TOKEN)],
}


def request(name: str, headers: dict[str, str], body: bytes, now: float) -> WebhookRequest:
    lowered = {key.lower(): value for key, value in headers.items()}
    return WebhookRequest(name, lowered, body, datetime.fromtimestamp(now, UTC), now, 300)


def body_at(now: float) -> bytes:
    # PagerDuty's own time is in the body (event.occurred_at); the others ignore it.
    occurred = datetime.fromtimestamp(now, UTC).isoformat()
    return json.dumps({"event": {"id": "01", "occurred_at": occurred}, "title": "x"}).encode()


def test_every_source_has_its_ways_here() -> None:
    assert set(CONFIGS) == set(SOURCES)


@pytest.mark.parametrize(
    ("name", "config"), [(n, c) for n, configs in CONFIGS.items() for c in configs]
)
def test_what_a_source_signs_it_verifies_and_nothing_else(name: str, config: SourceConfig) -> None:
    source, now = SOURCES[name], time.time()
    source.check_config(config)
    body = body_at(now)
    headers = source.sign(body, config, now)
    source.verify(request(name, headers, body, now), config)
    if config.secret is not None:  # a signature covers the body; a static token does not
        with pytest.raises(Unauthenticated):
            source.verify(request(name, headers, body.replace(b'"x"', b'"y"'), now), config)
    other = config.model_copy(update={"secret": config.secret and SecretStr("whsec_b3RoZXI="),
                                      "token": config.token and SecretStr("other-token-0123")})  # fmt: skip
    with pytest.raises(Unauthenticated):
        source.verify(request(name, headers, body, now), other)


@pytest.mark.parametrize("name", ["grafana", "rootly", "generic"])
def test_a_signature_made_long_ago_is_stale(name: str) -> None:
    source, config, now = SOURCES[name], CONFIGS[name][0], time.time()
    body = body_at(now)
    headers = source.sign(body, config, now - 3600)
    with pytest.raises(Unauthenticated, match="(?i)window|old|stale|timestamp"):
        source.verify(request(name, headers, body, now), config)

"""What an incident platform module provides: verify a call, normalise its payload."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from app.config import SourceConfig
from app.errors import ConfigError, Unauthenticated
from app.incident import Incident, Severity
from app.signing import bearer_matches


@dataclass(frozen=True)
class WebhookRequest:
    """One call as it arrived: header names lower-cased, the body untouched."""

    source: str
    headers: Mapping[str, str]
    body: bytes
    received_at: datetime
    now: float
    replay_window_s: int


@dataclass(frozen=True)
class Delivery:
    """What one call carries: its id (for dedup), its kind, and zero or more incidents."""

    delivery_id: str
    event_type: str
    incidents: list[Incident] = field(default_factory=list)


class Source(Protocol):
    name: str

    def check_config(self, config: SourceConfig) -> None:
        """Raise `ConfigError` when the configuration cannot authenticate this platform."""

    def verify(self, request: WebhookRequest, config: SourceConfig) -> None:
        """Raise `Unauthenticated` (or a subclass) unless the call is the platform's."""

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        """Turn the parsed body into incidents; raise `UnsupportedPayload` when it is not
        the platform's shape."""


def require_token(name: str, config: SourceConfig) -> None:
    if config.secret is not None:
        raise ConfigError(f"sources.{name}: authenticates with a `token`, not a `secret`")


def verify_bearer(request: WebhookRequest, config: SourceConfig) -> None:
    """The check for platforms that send a static token in `Authorization: Bearer`."""
    if config.token is None:
        raise Unauthenticated("this source has no token configured")
    if "authorization" not in request.headers:
        raise Unauthenticated("missing Authorization header")
    if not bearer_matches(request.headers, config.token.get_secret_value()):
        raise Unauthenticated("the bearer token does not match")


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def stable_fingerprint(*parts: Any) -> str:
    """A fingerprint for platforms that do not send one: same inputs, same value."""
    encoded = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:32]


def string_map(value: Any) -> dict[str, str]:
    """Labels/annotations as str → str; platforms send numbers and booleans too."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


SEVERITY_WORDS: Mapping[str, Severity] = {
    "critical": "critical", "crit": "critical", "fatal": "critical", "emergency": "critical",
    "page": "critical", "p1": "critical", "sev1": "critical", "sev0": "critical",
    "high": "high", "error": "high", "major": "high", "p2": "high", "sev2": "high",
    "medium": "medium", "warning": "medium", "warn": "medium", "moderate": "medium",
    "p3": "medium", "sev3": "medium",
    "low": "low", "minor": "low", "p4": "low", "sev4": "low",
    "info": "info", "informational": "info", "none": "info", "debug": "info", "p5": "info",
}  # fmt: skip


def severity_from(word: Any, default: Severity = "medium") -> Severity:
    """One normalised severity from a platform's word for it (table above)."""
    if isinstance(word, str):
        return SEVERITY_WORDS.get(word.strip().lower(), default)
    return default

"""What an incident platform module provides: verify a call, normalise its payload."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from app.config.sections import SourceConfig
from app.errors import ConfigError, InvalidSignature, ProofUnavailable, Unauthenticated
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
    # The call's signature covers its body and id (not only a static token).
    signed: bool = False
    # The URL's query parameters (the last of each name), for a platform that can only
    # put its token there.
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """What one call carries: its id (for dedup), its kind, and zero or more incidents.
    `ignored` says why a well-formed call of the platform carries no incident (an event
    type that is not about an incident starting or ending): answered 202, never an error."""

    delivery_id: str
    event_type: str
    incidents: list[Incident] = field(default_factory=list)
    ignored: str | None = None
    # What the incidents share (a group's fields), stored once with the event.
    shared: dict[str, Any] | None = None
    # The newest time the body itself states (an alert's start or end, its creation):
    # for sources whose delivery id is a hash of the body, a body older than the dedup
    # window could be a replay whose id is forgotten, and is refused.
    sent_at: datetime | None = None


class Source(Protocol):
    name: str
    # The replay window when the source's configuration gives none (None: the service's).
    default_replay_window_s: int | None
    # `verify` may call out to the platform (for its signing keys): it runs in a worker
    # thread, never on the event loop.
    calls_out: bool

    def check_config(self, config: SourceConfig) -> None:
        """Raise `ConfigError` when the configuration cannot authenticate this platform."""

    def verify(self, request: WebhookRequest, config: SourceConfig) -> None:
        """Raise `Unauthenticated` (or a subclass) unless the call is the platform's."""

    def sign(self, body: bytes, config: SourceConfig, now: float) -> dict[str, str]:
        """The headers the platform would send with `body` at `now`: what `verify` takes
        (for `remediator send`, so nobody builds an HMAC by hand)."""

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        """Turn the parsed body into incidents; raise `UnsupportedPayload` when it is not
        the platform's shape."""


OPTIONS = ("signature_header", "timestamp_header", "token_header", "allow_unstamped",
           "topic_arns", "cert_host_pattern", "ca_file", "entra")  # fmt: skip


def allow_options(name: str, config: SourceConfig, *allowed: str) -> None:
    """Refuse options that this platform does not use, rather than silently ignore them."""
    for option in OPTIONS:
        if option not in allowed and getattr(config, option):
            raise ConfigError(f"sources.{name}: `{option}` does not apply to this source")


def require_token(name: str, config: SourceConfig, *allowed: str) -> None:
    if config.secret is not None:
        raise ConfigError(f"sources.{name}: authenticates with a `token`, not a `secret`")
    allow_options(name, config, *allowed)


def require_secret(name: str, platform: str, config: SourceConfig) -> None:
    """For platforms that sign their webhooks: a `secret`, never a `token`."""
    if config.token is not None:
        raise ConfigError(f"sources.{name}: {platform} signs its webhooks: set `secret`")
    allow_options(name, config)


def signing_key(config: SourceConfig) -> bytes:
    """The HMAC key of a signing platform; without one, every call is refused (401)."""
    if config.secret is None:
        raise InvalidSignature("this source has no secret configured")
    return config.secret.get_secret_value().encode()


def verify_bearer(request: WebhookRequest, config: SourceConfig) -> None:
    """The check for platforms that send a static token: `Authorization: Bearer <token>`,
    or the raw value of the header named by `token_header`."""
    if config.token is None:
        raise Unauthenticated("this source has no token configured")
    token = config.token.get_secret_value()
    if config.token_header is not None:
        given = request.headers.get(config.token_header.lower())
        if given is None:
            raise Unauthenticated(f"missing {config.token_header} header")
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise Unauthenticated(f"the {config.token_header} token does not match")
        return
    if "authorization" not in request.headers:
        raise Unauthenticated("missing Authorization header")
    if not bearer_matches(request.headers, token):
        raise Unauthenticated("the bearer token does not match")


def bearer_headers(config: SourceConfig) -> dict[str, str]:
    """What `verify_bearer` takes: the token as `Authorization: Bearer`, or as the raw
    value of the header named by `token_header`."""
    if config.token is None:
        raise ConfigError("this source has no token configured")
    token = config.token.get_secret_value()
    if config.token_header is not None:
        return {config.token_header: token}
    return {"Authorization": f"Bearer {token}"}


def hmac_hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def any_matches(expected: str, candidates: Iterable[str]) -> bool:
    """Constant-time comparison of one expected signature against each one offered."""
    wanted = expected.encode()
    # A list, not a generator: every candidate is compared, so the time taken does not
    # say which one matched.
    results = [hmac.compare_digest(wanted, c.strip().lower().encode()) for c in candidates]
    return any(results)


def text(value: Any) -> str | None:
    """A non-blank string from the payload, else None."""
    return value if isinstance(value, str) and value.strip() else None


def tag_labels(tags: Any) -> dict[str, str]:
    """Platform tags as labels: `key:value` becomes key → value, a bare `tag` → "true"."""
    if not isinstance(tags, list):
        return {}
    labels: dict[str, str] = {}
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            continue
        key, sep, value = tag.partition(":")
        labels[key.strip()] = value.strip() if sep else "true"
    return labels


def iso_time(value: Any) -> datetime | None:
    """An RFC 3339 time with a zone from a payload; None when absent, unset (Go's zero
    time, `0001-01-01T00:00:00Z`) or not one."""
    if not isinstance(value, str) or value.startswith("0001-"):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def epoch_time(value: Any) -> datetime | None:
    """Unix time in milliseconds (or seconds) as a number or a string of digits."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        return None
    seconds = value / 1000 if value > 10**11 else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def newest(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


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


_MAX_PROOF_BYTES = 64 * 1024
_PROOF_TIMEOUT_S = 10.0


def fetch_proof(url: str, ca_file: Path | None, what: str) -> bytes:
    """GET a platform's keys (a certificate, a JWKS) from `url`, which the caller has
    checked is the platform's: over verified TLS (the system's CAs, and `ca_file`), never
    following a redirect, at most 64 KiB. Not reachable now: ProofUnavailable (a 503, so
    the platform retries)."""
    try:
        verify = ssl.create_default_context()
        if ca_file is not None:
            verify.load_verify_locations(cafile=ca_file)
    except OSError as exc:  # ssl.SSLError included: not a CA file
        raise ProofUnavailable(f"{what}: the ca_file cannot be read: {exc}") from exc
    try:
        with (
            httpx.Client(verify=verify, timeout=_PROOF_TIMEOUT_S, follow_redirects=False) as client,
            client.stream("GET", url) as response,
        ):
            if not response.is_success:
                raise ProofUnavailable(f"{what} answered {response.status_code}")
            content = b""
            for chunk in response.iter_bytes():
                content += chunk
                if len(content) > _MAX_PROOF_BYTES:
                    raise InvalidSignature(f"{what} is larger than it can be")
            return content
    except httpx.HTTPError as exc:
        raise ProofUnavailable(f"{what} could not be fetched: {type(exc).__name__}") from exc

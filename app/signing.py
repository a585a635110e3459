"""Standard Webhooks (https://www.standardwebhooks.com/) signing and verification.

Written here rather than taken from the `standardwebhooks` package because that package
raises bare ValueErrors on malformed headers and cannot verify a body that is not UTF-8;
a webhook endpoint must answer 401 to both. The tests check interoperability against it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from app.errors import ConfigError, InvalidSignature, StaleTimestamp

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (the prefix is optional, as upstream)."""
    encoded = secret.removeprefix(SECRET_PREFIX).rstrip("=")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("a Standard Webhooks secret must be base64 (whsec_...)") from exc
    if not key:
        raise ConfigError("a Standard Webhooks secret may not be empty")
    return key


def sign(key: bytes, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value (`v1,<base64>`) for one message."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(key: bytes, *, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, msg_id=msg_id, timestamp=timestamp, body=body),
    }


def verify(
    key: bytes, *, headers: Mapping[str, str], body: bytes, now: float, window_s: int
) -> str:
    """Check the three headers against the raw body; answer the message id."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    missing = [
        name
        for name, value in (
            ("webhook-id", msg_id),
            ("webhook-timestamp", stamp),
            ("webhook-signature", signatures),
        )
        if not value
    ]
    if missing or msg_id is None or stamp is None or signatures is None:
        raise InvalidSignature(f"missing header(s): {', '.join(missing)}")
    timestamp = parse_timestamp(stamp, now=now, window_s=window_s)
    expected = sign(key, msg_id=msg_id, timestamp=timestamp, body=body).encode()
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected):
            return msg_id
    raise InvalidSignature("webhook-signature does not match the body")


def parse_timestamp(stamp: str, *, now: float, window_s: int) -> int:
    """A unix timestamp header, refused when it is outside `now ± window_s`."""
    try:
        timestamp = int(stamp.strip())
    except ValueError as exc:
        raise InvalidSignature("the timestamp is not a unix time in seconds") from exc
    if abs(now - timestamp) > window_s:
        raise StaleTimestamp(
            f"timestamp {timestamp} is outside the {window_s}s replay window (now {int(now)})"
        )
    return timestamp


def bearer_matches(headers: Mapping[str, str], token: str) -> bool:
    """Constant-time check of `Authorization: Bearer <token>`."""
    scheme, _, given = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )

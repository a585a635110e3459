"""Our Standard Webhooks code against the official `standardwebhooks` implementation."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from app.errors import ConfigError, InvalidSignature, StaleTimestamp
from app.signing import bearer_matches, secret_key, sign, signed_headers, verify

SECRET = "whsec_" + base64.b64encode(b"a shared secret").decode()
KEY = secret_key(SECRET)


def test_official_library_verifies_what_we_sign() -> None:
    body = b'{"title": "x"}'
    headers = signed_headers(KEY, msg_id="msg_1", timestamp=int(time.time()), body=body)
    assert Webhook(SECRET).verify(body, headers) == {"title": "x"}


def test_we_verify_what_the_official_library_signs() -> None:
    now = datetime.now(UTC)
    body = '{"a": 1}'
    signature = Webhook(SECRET).sign("msg_2", now, body)
    headers = {
        "webhook-id": "msg_2",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    assert (
        verify(KEY, headers=headers, body=body.encode(), now=time.time(), window_s=300) == "msg_2"
    )


def test_any_of_several_signatures_may_match() -> None:
    body = b"{}"
    good = sign(KEY, msg_id="m", timestamp=100, body=body)
    headers = {
        "webhook-id": "m",
        "webhook-timestamp": "100",
        "webhook-signature": f"v1,AAAA {good}",
    }
    assert verify(KEY, headers=headers, body=body, now=100, window_s=300) == "m"


@pytest.mark.parametrize("stamp", ["abc", "", "1e9", "99999999999999999999999"])
def test_bad_timestamps_are_refused(stamp: str) -> None:
    headers = {"webhook-id": "m", "webhook-timestamp": stamp, "webhook-signature": "v1,x"}
    with pytest.raises((InvalidSignature, StaleTimestamp)):
        verify(KEY, headers=headers, body=b"", now=time.time(), window_s=300)


def test_non_utf8_body_is_an_answer_not_a_crash() -> None:
    body = b"\xff\xfe\x00"
    headers = signed_headers(KEY, msg_id="m", timestamp=50, body=body)
    assert verify(KEY, headers=headers, body=body, now=60, window_s=300) == "m"
    with pytest.raises(InvalidSignature):
        verify(KEY, headers=headers, body=b"\xff", now=60, window_s=300)


def test_secret_must_be_base64() -> None:
    with pytest.raises(ConfigError):
        secret_key("whsec_")
    with pytest.raises(ConfigError):
        secret_key("whsec_!!!")


def test_bearer() -> None:
    assert bearer_matches({"authorization": "Bearer tok"}, "tok")
    assert bearer_matches({"authorization": "bearer tok"}, "tok")
    assert not bearer_matches({"authorization": "Basic tok"}, "tok")
    assert not bearer_matches({"authorization": "Bearer tok2"}, "tok")
    assert not bearer_matches({}, "tok")

"""Amazon CloudWatch alarms, through an Amazon SNS topic's HTTPS subscription
(CloudWatch alarm action → SNS topic → subscription with this service's URL).

Verification, as Amazon's "Verifying the signatures of Amazon SNS messages" says:
- the message's `TopicArn` must be one of the configured `topic_arns`;
- `SigningCertURL` must be `https://` on a host that matches `cert_host_pattern`
  (default `sns.<region>.amazonaws.com`, `.com.cn` in China); only then is it fetched,
  over verified TLS (the system's CAs, or `ca_file`), and its public key cached. No other
  host is ever contacted: a message naming one is refused before any connection;
- `Signature` (base64) is the RSA PKCS#1 v1.5 signature, with SHA1 (`SignatureVersion`
  1) or SHA256 (2), of the message's fields in SNS's fixed order, each `Name\\nvalue\\n`;
- its `Timestamp` must be within the replay window (an hour by default: SNS retries a
  delivery with the same message for as long as its delivery policy says, and the signed
  `MessageId` is the delivery id, so a replay within the dedup window is a duplicate).

A `SubscriptionConfirmation` for a configured topic is confirmed by fetching its
`SubscribeURL` under the same host rule; one for any other topic is refused (401).

A `Notification`'s `Message` is the alarm, as JSON. Its `NewStateValue` decides the
phase: `ALARM` opens (firing), `OK` resolves, `INSUFFICIENT_DATA` updates the occurrence
open for it (firing). Fingerprint and occurrence: the alarm's ARN. Labels: the metric's
dimensions, and the alarm's name, namespace, metric, account and region. Its start: the
`StateChangeTime`. A message on the topic that is not an alarm is taken and ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import quote, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature as BadRsaSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from app.config.sections import SourceConfig
from app.errors import ConfigError, InvalidSignature, UnsupportedPayload
from app.incident import Incident, Phase, Status
from app.signing import parse_timestamp
from app.sources.base import (
    Delivery,
    WebhookRequest,
    allow_options,
    fetch_proof,
    iso_time,
    text,
)

DEFAULT_HOSTS = r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
# The fields each message type signs, in the order SNS puts them in the string it signs.
SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp",
                                 "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp",
                                "Token", "TopicArn", "Type"),
}  # fmt: skip
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
STATES: dict[str, tuple[Status, Phase]] = {
    "ALARM": ("firing", "opened"),
    "OK": ("resolved", "resolved"),
    "INSUFFICIENT_DATA": ("firing", "updated"),
}
_CACHED_CERTS = 32


class CloudWatchSource:
    name = "cloudwatch"
    default_replay_window_s: int | None = 3600
    calls_out = True

    def __init__(self) -> None:
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._lock = threading.Lock()

    def check_config(self, config: SourceConfig) -> None:
        if config.secret is not None or config.token is not None:
            raise ConfigError(f"sources.{self.name}: SNS signs with AWS's keys: no secret or token")
        allow_options(self.name, config, "topic_arns", "cert_host_pattern", "ca_file")
        try:
            re.compile(_hosts(config))
        except re.error as exc:
            raise ConfigError(f"sources.{self.name}.cert_host_pattern: {exc}") from None

    def verify(self, request: WebhookRequest, config: SourceConfig) -> None:
        message = _message(request.body)
        kind = message["Type"]
        given_kind = request.headers.get("x-amz-sns-message-type")
        if given_kind is not None and given_kind != kind:
            raise InvalidSignature("x-amz-sns-message-type differs from the message's Type")
        if message["TopicArn"] not in config.topic_arns:
            raise InvalidSignature(f"topic {message['TopicArn']!r} is not one of topic_arns")
        algorithm = HASHES.get(str(message.get("SignatureVersion")))
        if algorithm is None:
            raise InvalidSignature("SignatureVersion must be 1 or 2")
        try:
            signature = base64.b64decode(str(message.get("Signature")), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidSignature("Signature is not base64") from None
        sent = iso_time(message["Timestamp"])
        if sent is None:
            raise InvalidSignature("Timestamp is not a time")
        # Before any fetch: a stale message costs no connection.
        parse_timestamp(str(int(sent.timestamp())), now=request.now,
                        window_s=request.replay_window_s)  # fmt: skip
        key = self._key(_allowed_url(message.get("SigningCertURL"), config, "SigningCertURL"),
                        config)  # fmt: skip
        try:
            key.verify(signature, _string_to_sign(message), padding.PKCS1v15(), algorithm())
        except BadRsaSignature:
            raise InvalidSignature("the SNS signature does not match the message") from None
        if kind == "SubscriptionConfirmation":
            # The topic is configured and the message is AWS's: taking the subscription
            # is what the operator asked for by listing the topic.
            url = _allowed_url(message.get("SubscribeURL"), config, "SubscribeURL")
            fetch_proof(url, config.ca_file, "the subscription confirmation")

    def sign(self, body: bytes, config: SourceConfig, now: float) -> dict[str, str]:  # noqa: ARG002
        raise ConfigError(
            "SNS signs its messages with AWS's private key: nothing here can sign for it; "
            "publish to the topic instead (aws sns publish, or set the alarm's state)"
        )

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        message = _fields(payload)
        kind, delivery_id = message["Type"], f"sns:{message['MessageId']}"
        if kind == "SubscriptionConfirmation":
            return Delivery(delivery_id, kind, [], f"subscription to {message['TopicArn']} "
                            "confirmed")  # fmt: skip
        if kind != "Notification":
            return Delivery(delivery_id, kind, [], f"an SNS {kind} carries no alarm")
        try:
            alarm = json.loads(str(message.get("Message")))
        except ValueError:
            alarm = None
        name = text(alarm.get("AlarmName")) if isinstance(alarm, dict) else None
        state = text(alarm.get("NewStateValue")) if isinstance(alarm, dict) else None
        if not isinstance(alarm, dict) or name is None or state not in STATES:
            return Delivery(delivery_id, kind, [], "this SNS message is not a CloudWatch alarm")
        return _alarm(alarm, name, STATES[state], message, request, delivery_id)

    def _key(self, url: str, config: SourceConfig) -> rsa.RSAPublicKey:
        with self._lock:
            if url in self._keys:
                self._keys.move_to_end(url)
                return self._keys[url]
        pem = fetch_proof(url, config.ca_file, "the signing certificate")
        try:
            key = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError:
            raise InvalidSignature("SigningCertURL is not a PEM certificate") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidSignature("the signing certificate's key is not RSA")
        with self._lock:
            self._keys[url] = key
            while len(self._keys) > _CACHED_CERTS:
                self._keys.popitem(last=False)
        return key


def _alarm(
    alarm: dict[str, Any], name: str, state: tuple[Status, Phase], message: dict[str, Any],
    request: WebhookRequest, delivery_id: str,
) -> Delivery:  # fmt: skip
    status, phase = state
    found = alarm.get("Trigger")
    trigger: dict[str, Any] = found if isinstance(found, dict) else {}
    labels = _dimensions(trigger.get("Dimensions"))
    arn = text(alarm.get("AlarmArn"))
    account = text(alarm.get("AWSAccountId"))
    region = arn.split(":")[3] if arn and arn.count(":") >= 6 else None
    for key, value in (("alarm_name", name), ("namespace", text(trigger.get("Namespace"))),
                       ("metric_name", text(trigger.get("MetricName"))),
                       ("aws_account_id", account), ("aws_region", region),
                       ("topic_arn", message["TopicArn"]),
                       ("state", alarm["NewStateValue"])):  # fmt: skip
        if value is not None:
            labels[key] = value
    fingerprint = arn or f"alarm:{account}:{region}:{name}"
    started = iso_time(alarm.get("StateChangeTime"))  # `2017-01-12T16:30:42.236+0000`
    annotations = {key: value for key, value in (
        ("description", text(alarm.get("AlarmDescription"))),
        ("reason", text(alarm.get("NewStateReason")))) if value is not None}  # fmt: skip
    incident = Incident(
        source=CloudWatchSource.name, delivery_id=delivery_id,
        event_type=f"alarm.{alarm['NewStateValue'].lower()}", received_at=request.received_at,
        status=status, phase=phase, title=name, severity="high",
        service=labels.get("namespace"), labels=labels, annotations=annotations,
        url=_console(region, name), fingerprint=fingerprint, occurrence=fingerprint,
        started_at=started, raw={**message, "Message": alarm},
    )  # fmt: skip
    return Delivery(delivery_id, incident.event_type, [incident],
                    sent_at=iso_time(message.get("Timestamp")))  # fmt: skip


def _message(body: bytes) -> dict[str, Any]:
    """The SNS message in a body, with the fields every type has, before its signature
    is known to be good: anything else is refused as not SNS's."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise InvalidSignature("the body is not an SNS message (not JSON)") from None
    try:
        return _fields(payload)
    except UnsupportedPayload as exc:
        raise InvalidSignature(str(exc)) from None


def _fields(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or text(payload.get("Type")) not in SIGNED:
        raise UnsupportedPayload("an SNS message is a JSON object with a known `Type`")
    for name in ("MessageId", "TopicArn", "Timestamp", "Message"):
        if not isinstance(payload.get(name), str):
            raise UnsupportedPayload(f"an SNS message has a `{name}` string")
    return payload


def _string_to_sign(message: dict[str, Any]) -> bytes:
    """`Name\\nvalue\\n` for each signed field the message has, in SNS's order (a
    Notification's `Subject` only when it has one)."""
    parts = []
    for name in SIGNED[message["Type"]]:
        value = message.get(name)
        if value is None or (name == "Subject" and value == ""):
            if name == "Subject":
                continue
            raise InvalidSignature(f"the message lacks {name}, which SNS signs")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode()


def _hosts(config: SourceConfig) -> str:
    return config.cert_host_pattern or DEFAULT_HOSTS


def _allowed_url(value: Any, config: SourceConfig, field: str) -> str:
    """`value` when it is an https URL on a host the configuration allows; refused before
    any connection otherwise."""
    url = value if isinstance(value, str) else ""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - a malformed port raises here, not at the fetch
    except ValueError:
        raise InvalidSignature(f"{field} is not a URL") from None
    if parts.scheme != "https" or parts.username is not None or parts.password is not None:
        raise InvalidSignature(f"{field} must be an https URL")
    if not re.fullmatch(_hosts(config), host):
        raise InvalidSignature(f"{field} host {host!r} is not SNS's (cert_host_pattern)")
    return url


def _dimensions(dimensions: Any) -> dict[str, str]:
    """`[{"name": ..., "value": ...}]` as labels."""
    labels: dict[str, str] = {}
    for item in dimensions if isinstance(dimensions, list) else []:
        if isinstance(item, dict):
            key, value = text(item.get("name")), item.get("value")
            if key is not None and isinstance(value, str):
                labels[key] = value
    return labels


def _console(region: str | None, name: str) -> str | None:
    """The alarm's page in the AWS console, when its region is known."""
    if region is None or not re.fullmatch(r"[a-z0-9-]{1,30}", region):
        return None
    return (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#alarmsV2:alarm/{quote(name, safe='')}")  # fmt: skip

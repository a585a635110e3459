"""Amazon SNS as the tests play it: a signing key and its certificate, served from a
loopback HTTPS host (`localhost`, under a CA the test makes) the way SNS serves
`SigningCertURL`, which also takes subscription confirmations (`?Action=
ConfirmSubscription`); and messages signed as SNS's documentation says it signs them
(written from those docs, not from the service's verifier)."""

from __future__ import annotations

import base64
import datetime
import functools
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.support.loopback import LoopbackStandIn, StandInHandler
from tests.support.platforms import SNS_TOPIC as TOPIC
from tests.support.platforms import live_sns, load
from tests.support.tls import self_signed, server_context

CERT_PATH = "/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem"
# The fields of each type that SNS signs, in its order ("Verifying the signatures of
# Amazon SNS messages").
SIGNED = {
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp",
                                 "Token", "TopicArn", "Type"],
}  # fmt: skip


@functools.cache
def _signing_certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class SnsStandIn(LoopbackStandIn):
    """The host SNS's certificates and subscription URLs are on. `fetches` lists every
    request it got; `confirmed` the topics whose subscriptions were confirmed."""

    handler_name = "sns"
    ca_file: Path = Path()
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    fetches: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        """`https://localhost:<port>`: the name the TLS certificate and the pattern hold."""
        return self.base.replace("127.0.0.1", "localhost")

    def source_config(self) -> dict[str, Any]:
        return {"topic_arns": [TOPIC], "cert_host_pattern": "^localhost$",
                "ca_file": str(self.ca_file)}  # fmt: skip

    def seal(self, message: dict[str, Any], *, version: str = "1",
             cert_url: str | None = None) -> dict[str, Any]:  # fmt: skip
        """`message` as SNS sends it: its certificate URL, and signed."""
        sealed = {**message, "SignatureVersion": version,
                  "SigningCertURL": cert_url or self.host + CERT_PATH}  # fmt: skip
        if sealed["Type"] == "SubscriptionConfirmation":
            token = sealed["Token"]
            sealed["SubscribeURL"] = (f"{self.host}/?Action=ConfirmSubscription&TopicArn="
                                      f"{sealed['TopicArn']}&Token={token}")  # fmt: skip
        text = "".join(f"{name}\n{sealed[name]}\n" for name in SIGNED[sealed["Type"]]
                       if name in sealed)  # fmt: skip
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), algorithm)
        sealed["Signature"] = base64.b64encode(signature).decode()
        return sealed

    def body(self, file: str, **changes: Any) -> bytes:
        """A documented sample, recent, with a fresh message id, changed and sealed."""
        message = {**live_sns(load(f"cloudwatch/{file}")), "MessageId": str(uuid.uuid4()),
                   **changes}  # fmt: skip
        return json.dumps(self.seal(message)).encode()

    def handler_class(self) -> type[StandInHandler]:
        return _SnsHandler


class _SnsHandler(StandInHandler):
    sns: SnsStandIn

    def answer(self, method: str, raw: bytes) -> None:  # noqa: ARG002
        stand_in = self.sns
        with stand_in.lock:
            stand_in.fetches.append(self.path)
        parts = urlsplit(self.path)
        if method == "GET" and parts.path == CERT_PATH:
            pem = _signing_certificate(stand_in.key)
            self.send_response(200)
            self.send_header("content-type", "application/x-x509-ca-cert")
            self.send_header("content-length", str(len(pem)))
            self.end_headers()
            self.wfile.write(pem)
            return
        query = parse_qs(parts.query)
        if method == "GET" and query.get("Action") == ["ConfirmSubscription"]:
            with stand_in.lock:
                stand_in.confirmed.append(query["TopicArn"][0])
            self.text(200, "<ConfirmSubscriptionResponse/>")
            return
        self.refuse(404, f"SNS has no {self.path}")


def start_sns(directory: Path) -> SnsStandIn:
    """The SNS stand-in, started, with its CA written under `directory`."""
    cert, key = self_signed(directory)
    sns = SnsStandIn(tls=server_context(cert, key), ca_file=cert)
    sns.start()
    return sns

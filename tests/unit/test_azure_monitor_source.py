"""Azure Monitor's common alert schema, authenticated by a Microsoft Entra ID token
(checked against a JWKS file, or a JWKS URL on a loopback host under the test's CA) or by
a token in the URL's query."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest

from app.config.sections import SourceConfig
from app.errors import (
    ConfigError,
    InvalidSignature,
    ProofUnavailable,
    Unauthenticated,
    UnsupportedPayload,
)
from app.sources.azure_monitor import AzureMonitorSource
from app.sources.base import WebhookRequest
from tests.support.contracts import contract
from tests.support.entra import AUDIENCE, ENTRA, ISSUER, EntraIssuer, entra_config
from tests.support.loopback import LoopbackStandIn, StandInHandler
from tests.support.platforms import PAYLOADS, live, load
from tests.support.tls import self_signed, server_context

TOKEN = "azure-url-token-0123456789"


def call(body: bytes, headers: dict[str, str] | None = None,
         query: dict[str, str] | None = None, later_s: float = 0) -> WebhookRequest:  # fmt: skip
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    now = time.time() + later_s
    return WebhookRequest("azure_monitor", lowered, body, datetime.fromtimestamp(now, UTC), now,
                          300, query=query or {})  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sample(file: str) -> tuple[dict[str, Any], bytes]:
    payload = live(load(f"azure_monitor/{file}"))
    return payload, json.dumps(payload).encode()


def test_fired_then_resolved_is_one_occurrence_of_one_fingerprint() -> None:
    source = AzureMonitorSource()
    payload, body = sample("metric-fired.json")
    [fired] = source.normalise(payload, call(body)).incidents
    assert (fired.status, fired.phase, fired.title, fired.severity) == (
        "firing",
        "opened",
        "WCUS-R2-Gen2",
        "high",
    )
    assert fired.occurrence.endswith("/alerts/b9569717-bc32-442f-add5-83a997729330")
    assert fired.fingerprint.startswith("3f2d4487-b0fc-4125-8bd5-7ad17384221e_PipeLineAlertRG")
    assert fired.labels["resource_group"] == "pipelinealertrg"
    assert fired.labels["resource_name"] == "wcus-r2-gen2" == fired.service
    assert fired.labels["resource_provider"] == "microsoft.compute/virtualmachines"
    assert fired.labels["ResourceId"] == "3efad9dc-3d50-4eac-9c87-8b3fd6f97e4e"
    assert fired.labels["metric_name"] == "Percentage CPU" and fired.labels["Key1"] == "Value1"
    assert fired.annotations["description"].startswith("CPU of the build agent")
    assert fired.url and fired.url.startswith("https://portal.azure.com/")
    payload, body = sample("metric-resolved.json")
    [resolved] = source.normalise(payload, call(body)).incidents
    assert (resolved.status, resolved.phase, resolved.severity) == ("resolved", "resolved", "low")
    assert (resolved.occurrence, resolved.fingerprint) == (fired.occurrence, fired.fingerprint)


@pytest.mark.parametrize(("sev", "expected"), [("Sev0", "critical"), ("Sev1", "high"), ("Sev2", "medium"),
                                                ("Sev3", "low"), ("Sev4", "info")])  # fmt: skip
def test_severities(sev: str, expected: str) -> None:
    payload, _ = sample("metric-fired.json")
    payload["data"]["essentials"]["severity"] = sev
    [incident] = AzureMonitorSource().normalise(payload, call(b"{}")).incidents
    assert incident.severity == expected


def test_another_schema_is_refused_naming_the_switch() -> None:
    with pytest.raises(UnsupportedPayload, match="common alert schema"):
        AzureMonitorSource().normalise(
            {"schemaId": "AzureMonitorMetricAlert", "data": {}}, call(b"{}")
        )
    payload, _ = sample("metric-fired.json")
    payload["data"]["essentials"]["monitorCondition"] = "Acknowledged"
    with pytest.raises(UnsupportedPayload, match="monitorCondition"):
        AzureMonitorSource().normalise(payload, call(b"{}"))


def test_an_entra_token_from_the_configured_keys_issuer_and_audience_only() -> None:
    source, config = AzureMonitorSource(), SourceConfig.model_validate(entra_config())
    source.check_config(config)
    _, body = sample("metric-fired.json")
    source.verify(call(body, bearer(ENTRA.token())), config)
    for token, why in [
        (ENTRA.token(expires_in=-300), "expired"),
        (ENTRA.token(issuer="https://sts.windows.net/someone-else/"), "issuer"),
        (ENTRA.token(audience="api://another-app"), "audience"),
        (EntraIssuer().token(), "not one of the JWKS"),
        (ENTRA.token()[:-4] + "AAAA", "Signature"),
        (jwt_none(), "not accepted"),
        (
            jwt.encode(
                {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600},
                ENTRA.jwk()["n"],
                algorithm="HS256",
                headers={"kid": ENTRA.kid},
            ),
            "not accepted",
        ),  # key confusion: the public key as an HMAC secret
    ]:
        with pytest.raises(InvalidSignature, match=f"(?i){why}"):
            source.verify(call(body, bearer(token)), config)
    with pytest.raises(Unauthenticated, match="Bearer"):
        source.verify(call(body), config)


def jwt_none() -> str:
    """A token that names no algorithm's signature (`alg: none`), with the right claims."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600}
    return f"{part({'alg': 'none', 'kid': ENTRA.kid})}.{part(claims)}."


def test_a_token_in_the_query_compared_whole() -> None:
    source, config = AzureMonitorSource(), SourceConfig.model_validate({"token": TOKEN})
    source.check_config(config)
    source.verify(call(b"{}", query={"token": TOKEN}), config)
    for query in ({}, {"token": TOKEN[:-1]}, {"token": TOKEN + "x"}, {"other": TOKEN}):
        with pytest.raises(Unauthenticated):
            source.verify(call(b"{}", bearer(TOKEN), query), config)


def test_configuration_is_checked_at_start(tmp_path: Path) -> None:
    source = AzureMonitorSource()
    with pytest.raises(ConfigError, match="one of"):
        source.check_config(SourceConfig.model_validate({**entra_config(), "token": TOKEN}))
    with pytest.raises(ConfigError, match="no file"):
        source.check_config(SourceConfig.model_validate(entra_config(tmp_path / "absent.json")))
    (tmp_path / "bad.json").write_text('{"keys": "no"}')
    with pytest.raises(ConfigError, match="JWKS"):
        source.check_config(SourceConfig.model_validate(entra_config(tmp_path / "bad.json")))
    with pytest.raises(ConfigError, match="secret"):
        source.check_config(SourceConfig.model_validate({"secret": "s"}))
    with pytest.raises(ValueError, match="exactly one"):
        SourceConfig.model_validate({"entra": {"issuer": ISSUER, "audience": AUDIENCE}})


class _KeysStandIn(LoopbackStandIn):
    """Entra's keys endpoint: serves `document`; counts the fetches."""

    handler_name = "keys"
    document: bytes = b""
    fetches: int = 0

    def handler_class(self) -> type[StandInHandler]:
        class Handler(StandInHandler):
            keys: _KeysStandIn

            def answer(self, method: str, raw: bytes) -> None:  # noqa: ARG002
                self.keys.fetches += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(self.keys.document)))
                self.end_headers()
                self.wfile.write(self.keys.document)

        return Handler


@pytest.fixture
def keys_host(tmp_path: Path) -> Iterator[tuple[_KeysStandIn, Path]]:
    cert, key = self_signed(tmp_path)
    host = _KeysStandIn(tls=server_context(cert, key))
    host.document = ENTRA.jwks()
    host.start()
    yield host, cert
    host.stop()


def test_keys_from_a_url_are_cached_and_fetched_again_for_a_new_key(
    keys_host: tuple[_KeysStandIn, Path],
) -> None:
    host, ca = keys_host
    url = host.base.replace("127.0.0.1", "localhost") + "/common/discovery/v2.0/keys"
    config = SourceConfig.model_validate(
        {"entra": {"jwks_url": url, "issuer": ISSUER, "audience": AUDIENCE}, "ca_file": str(ca)}
    )
    source, body = AzureMonitorSource(), b"{}"
    for _ in range(3):
        source.verify(call(body, bearer(ENTRA.token())), config)
    assert host.fetches == 1
    rotated = EntraIssuer()
    host.document = ENTRA.jwks(rotated)
    with pytest.raises(InvalidSignature, match="not one of"):  # fetched a minute ago: not again
        source.verify(call(body, bearer(rotated.token())), config)
    assert host.fetches == 1
    source.verify(call(body, bearer(rotated.token()), later_s=61), config)  # a minute on
    assert host.fetches == 2
    host.stop()
    with pytest.raises(ProofUnavailable):  # an hour on, the keys are old; their host is down
        source.verify(call(body, bearer(ENTRA.token()), later_s=3700), config)


def test_the_samples_keep_the_documented_fields() -> None:
    fields = contract("azure-monitor-common-alert-schema.json")
    for path in sorted((PAYLOADS / "azure_monitor").glob("*.json")):
        payload = json.loads(path.read_text())
        assert payload["schemaId"] == fields["schemaId"]
        essentials = payload["data"]["essentials"]
        assert set(fields["essentials"]["required"]) <= set(essentials), path.name
        assert set(essentials) <= set(
            fields["essentials"]["required"] + fields["essentials"]["optional"]
        )
        assert essentials["monitorCondition"] in fields["essentials"]["monitorCondition"]
        assert essentials["severity"] in fields["essentials"]["severity"]
        assert set(payload["data"]) <= set(fields["data"])

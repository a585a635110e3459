"""What the webhook endpoint refuses, and that a refusal stores and starts nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.signing import signed_headers
from tests.support.service import Api, alert, ansible_step, sign_generic


@pytest.fixture
def api(make_api: Callable[..., Api], tmp_path: Path) -> Api:
    # Never /dev/null as dest: Ansible's copy replaces the file it writes, device or not.
    step = ansible_step("write.yml", message="m", host="h", dest=str(tmp_path / "out.json"))
    runbooks = [
        {
            "name": "any-alert",
            "match": {"all": [{"field": "labels.alertname", "exists": True}]},
            "steps": [step],
        }
    ]
    return make_api(runbooks, max_body_bytes=4096)


def nothing_stored(api: Api) -> None:
    assert api.executions() == []


def test_wrong_or_missing_bearer_token(api: Api) -> None:
    assert api.alertmanager(alert("X"), token="wrong").status_code == 401
    answer = api.client.post("/webhooks/alertmanager", json=alert("X"))
    assert answer.status_code == 401
    assert answer.json() == {"error": "unauthenticated", "detail": "missing Authorization header"}
    nothing_stored(api)


def test_generic_signature_refusals(api: Api) -> None:
    body = json.dumps({"title": "t", "labels": {"alertname": "X"}}).encode()
    tampered = body.replace(b'"t"', b'"T"')
    answer = api.generic(tampered, sign_generic(body))
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_signature"

    stale = api.generic(body, sign_generic(body, timestamp=time.time() - 301))
    assert stale.status_code == 401 and stale.json()["error"] == "stale_timestamp"
    future = api.generic(body, sign_generic(body, timestamp=time.time() + 400))
    assert future.status_code == 401 and "replay window" in future.json()["detail"]

    headers = sign_generic(body)
    del headers["webhook-signature"]
    missing = api.generic(body, headers)
    assert missing.status_code == 401 and "webhook-signature" in missing.json()["detail"]

    garbage = {**sign_generic(body), "webhook-signature": "v1,not base64 at all ,,, v2"}
    assert api.generic(body, garbage).status_code == 401
    wrong_key = signed_headers(b"another key", msg_id="m", timestamp=int(time.time()), body=body)
    assert api.generic(body, wrong_key).status_code == 401
    nothing_stored(api)


def test_body_too_large(api: Api) -> None:
    big = json.dumps({"title": "x" * 5000}).encode()
    answer = api.generic(big, sign_generic(big))
    assert answer.status_code == 413 and answer.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for _ in range(10):
            yield b"x" * 1000

    streamed = api.client.post(
        "/webhooks/alertmanager", content=chunks(), headers={"authorization": "Bearer x"}
    )
    assert streamed.status_code == 413
    nothing_stored(api)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "not JSON"),
        (b"[" * 2000 + b"]" * 2000, "not JSON"),
        (b'{"version": "3", "alerts": []}', "version"),
        (b'{"version": "4", "alerts": "no"}', "alerts"),
        (b'{"version": "4", "alerts": [{"status": "weird", "labels": {}}]}', "alerts[0].status"),
        (b'{"version": "4", "alerts": [7]}', "alerts[0]"),
        (b"\xff\xfe", "not JSON"),
        (b'{"version": "4", "alerts": [], "x": NaN}', "NaN is not a JSON value"),
        (b'{"version": "4", "alerts": [], "x": -Infinity}', "-Infinity is not a JSON value"),
    ],
)
def test_malformed_alertmanager_bodies(api: Api, body: bytes, says: str) -> None:
    from tests.support.service import AM_TOKEN

    answer = api.client.post(
        "/webhooks/alertmanager", content=body, headers={"authorization": f"Bearer {AM_TOKEN}"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "unsupported_payload" and says in answer.json()["detail"]
    nothing_stored(api)


def test_generic_shape_errors_name_the_field(api: Api) -> None:
    for payload, says in [
        ({"severity": "high"}, "title: Field required"),
        ({"title": "x", "status": "maybe"}, "status"),
        ({"incidents": []}, "non-empty"),
        ({"incidents": [{"title": "ok"}, 5]}, "incident 1"),
    ]:
        body = json.dumps(payload).encode()
        answer = api.generic(body, sign_generic(body))
        assert answer.status_code == 422, answer.text
        assert says in answer.json()["detail"]
    nothing_stored(api)


def test_unknown_and_unconfigured_sources(api: Api) -> None:
    assert api.client.post("/webhooks/nagios", json={}).status_code == 404
    answer = api.client.post("/webhooks/generic-x", json={})
    assert answer.json()["error"] == "unknown_source"


def test_the_webhook_path_takes_post_only_and_one_segment(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    answer = api.client.get("/webhooks/generic")
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    assert answer.json()["error"] == "method_not_allowed"
    # A source name is one path segment: anything deeper is no webhook at all.
    assert api.client.post("/webhooks/generic/more", json={}).json()["error"] == "http_error"
    assert api.client.post("/webhooks/", json={}).status_code == 404
    with caplog.at_level("WARNING", logger="remediator.api"):
        assert api.generic(b"{}", {"webhook-id": "x"}).status_code == 401
    # Refused calls are no rows (anyone could make them) but each is a warning and a count.
    assert any("webhook refused (401 invalid_signature)" in r.getMessage() for r in caplog.records)
    metrics = api.client.get("/metrics", headers=api.auth).text
    assert 'remediator_webhooks_total{code="401",source="generic"} 1.0' in metrics
    nothing_stored(api)


def test_openapi_documents_the_webhook(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    receive = document["paths"]["/webhooks/{source}"]["post"]
    assert receive["requestBody"]["content"]["application/json"]["schema"] == {"type": "object"}
    answer = receive["responses"]["202"]["content"]["application/json"]["schema"]["$ref"]
    assert answer.endswith("/WebhookAnswer")
    assert receive["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorBody"
    )
    fields = document["components"]["schemas"]["WebhookAnswer"]["properties"]
    assert {"event_id", "executions", "attached", "duplicate", "incidents", "ignored"} == set(
        fields
    )
    # What the webhook answers is what the description says it answers.
    body = json.dumps({"title": "t"}).encode()
    stored = api.generic(body, sign_generic(body))
    assert stored.status_code == 202 and set(stored.json()) <= set(fields)


def test_api_requires_a_valid_token(api: Api) -> None:
    assert api.client.get("/api/executions").status_code == 401
    bad = api.client.get("/api/executions", headers={"authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
    missing = api.client.get("/api/executions/does-not-exist", headers=api.auth)
    assert missing.status_code == 404
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz").json()
    assert ready["ready"] is True and ready["checks"]["runbooks"] == "1 loaded"


def test_generic_batch_makes_one_execution_per_incident(api: Api) -> None:
    body = json.dumps(
        {
            "incidents": [
                {"title": "a", "labels": {"alertname": "A"}},
                {"title": "b", "labels": {"alertname": "B"}},
            ]
        }
    ).encode()
    answer = api.generic(body, sign_generic(body))
    assert answer.status_code == 202
    assert answer.json()["incidents"] == 2 and len(answer.json()["executions"]) == 2

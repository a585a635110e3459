"""Property-based: whatever arrives at any source, the answer is a clear 2xx or 4xx in the
one error shape, never a 500. Bodies are signed correctly where that matters, so the
arbitrary JSON gets past verification and into each platform's normaliser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config.loading import load_settings
from app.main import create_app
from app.sources.registry import SOURCES as REGISTERED
from tests.support.platforms import FIRING, SIGNERS, SOURCES, Sample
from tests.support.service import ansible_step, write_config

NEVER = {
    "name": "never",
    "match": {"status": None, "all": [{"field": "labels.never", "equals": "never"}]},
    "steps": [ansible_step("write.yml", message="m", host="h", dest="/nonexistent/out.json")],
}
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

any_text = st.text(st.characters(exclude_categories=()))  # NULs and lone surrogates too
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=12) | any_text, children, max_size=5)
    ),
    max_leaves=25,
)
header_names = st.sampled_from(
    ["authorization", "x-rootly-signature", "x-pagerduty-signature", "x-grafana-alerting-signature",
     "x-grafana-alerting-timestamp", "x-remediator-token", "webhook-id", "webhook-timestamp",
     "webhook-signature", "x-webhook-id", "content-type"]
) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20)  # fmt: skip
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The real app on each database: PostgreSQL refuses text SQLite takes (NUL bytes)."""
    directory = tmp_path_factory.mktemp("fuzz")
    database = (
        request.getfixturevalue("postgres").new_database()
        if request.param == "postgresql"
        else "sqlite:///remediator.db"
    )
    sources = {**SOURCES, "generic": {"secret": "whsec_dGVzdC1nZW5lcmljLXNlY3JldA=="}}
    config = write_config(
        directory, [NEVER], sources=sources, max_body_bytes=65536, database_url=database
    )
    with TestClient(create_app(load_settings(config))) as running:
        yield running


def check(answer: Any) -> None:
    assert answer.status_code in (200, 202, 401, 413, 422), answer.text
    body = answer.json()
    if answer.status_code >= 400:
        assert set(body) == {"error", "detail"} and body["detail"], body
    else:
        assert "event_id" in body


def mutate(payload: Any, path: list[int], value: Any) -> Any:
    """Replace the node that `path` picks (indices into each level's keys) by `value`."""
    if not path or not isinstance(payload, dict | list) or not payload:
        return value
    keys = list(payload) if isinstance(payload, dict) else list(range(len(payload)))
    key = keys[path[0] % len(keys)]
    copy: Any = dict(payload) if isinstance(payload, dict) else list(payload)
    copy[key] = mutate(payload[key], path[1:], value)
    return copy


@pytest.mark.parametrize("source", sorted(REGISTERED))
@FUZZ
@given(value=json_values)
def test_any_signed_json_gets_a_clear_answer(client: TestClient, source: str, value: Any) -> None:
    body = json.dumps(value).encode()
    check(client.post(f"/webhooks/{source}", content=body, headers=SIGNERS[source](body)))


@pytest.mark.parametrize("sample", FIRING, ids=lambda s: s.source)
@FUZZ
@given(path=st.lists(st.integers(min_value=0, max_value=50), max_size=5), value=json_values)
def test_documented_samples_with_any_field_replaced(
    client: TestClient, sample: Sample, path: list[int], value: Any
) -> None:
    payload = mutate(json.loads(sample.body()), path, value)
    body = json.dumps(payload).encode()
    check(
        client.post(
            f"/webhooks/{sample.source}", content=body, headers=SIGNERS[sample.source](body)
        )
    )


@pytest.mark.parametrize("source", sorted(REGISTERED))
@FUZZ
@given(
    body=st.binary(max_size=2048), headers=st.dictionaries(header_names, header_values, max_size=6)
)
def test_any_bytes_and_headers_are_refused_cleanly(
    client: TestClient, source: str, body: bytes, headers: dict[str, str]
) -> None:
    check(client.post(f"/webhooks/{source}", content=body, headers=headers))


def test_text_no_database_can_store_is_accepted_and_stored_replaced(client: TestClient) -> None:
    """NUL (PostgreSQL text refuses it) and lone surrogates (not UTF-8) in any field."""
    body = (b'{"title": "t\\u0000", "fingerprint": "f\\u0000p\\ud800", "service": "s\\udfff",'
            b' "labels": {"k\\u0000": "v"}, "event_type": "e\\u0000"}')  # fmt: skip
    answer = client.post("/webhooks/generic", content=body, headers=SIGNERS["generic"](body))
    assert answer.status_code == 202, answer.text
    rootly = json.loads(FIRING[0].body())
    rootly["event"]["id"] = "id\x00"
    body = json.dumps(rootly).encode()
    answer = client.post("/webhooks/rootly", content=body, headers=SIGNERS["rootly"](body))
    assert answer.status_code == 202, answer.text

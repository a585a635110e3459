"""Issue 16 against a real `remediator serve`: the CI token's attempts from the issue each
get 403 (or 422) and change nothing; an on-call engineer approves from Slack with a click
signed as Slack signs; forged, stale, unknown and viewer clicks change nothing; the SSO
proxy's headers are believed from its address only; the audit log shows all of it."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.support.servers import Server, start_server
from tests.support.service import (
    FIXTURES,
    TOKENS,
    Recorder,
    alert,
    ansible_step,
    bearer,
    runbook,
    write_config,
)

pytestmark = pytest.mark.server

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CLICK = json.loads((FIXTURES / "contracts" / "slack-block-actions.json").read_text())
PROXY = {"x-forwarded-email": "carol@example.com", "x-forwarded-groups": "staff, sre-oncall",
         "x-forwarded-for": "203.0.113.9"}  # fmt: skip


@pytest.fixture
def served(tmp_path: Path, recorder: Recorder) -> Iterator[tuple[Server, Path]]:
    dest = tmp_path / "runs"
    config = write_config(
        tmp_path,
        [runbook("gated", "Gated", ansible_step("append.yml", dest=str(dest)), approval=True,
                 escalate=["slack"])],
        escalation={"slack": {
            "webhook_url": recorder.url + "/slack",
            "signing_secret": SIGNING_SECRET,
            "users": {"U0ALICE": "alice", "U0DASH": "dashboards"},
            "response_url_prefix": recorder.url + "/actions/",
        }},
        auth={"trusted_proxy": {"cidrs": ["127.0.0.1/32"],
                                "roles": {"sre-oncall": "responder", "sre-leads": "admin"}}},
    )  # fmt: skip
    server = start_server(config)
    yield server, dest
    server.close()


def slack_click(
    recorder: Recorder, user: str, execution_id: str, action: str = "remediator_approve"
) -> tuple[bytes, dict[str, str]]:
    """A form body and headers exactly as Slack sends a button click."""
    payload = copy.deepcopy(CLICK)
    del payload["_source"]
    payload["user"]["id"] = user
    payload["actions"][0].update(action_id=action, value=execution_id)
    payload["response_url"] = recorder.url + "/actions/T3MDE/1395872398/Hq4W5nE2"
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return body, {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": "v0=" + digest.hexdigest(),
    }


def post(server: Server, path: str, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.base}{path}", headers=headers, timeout=30, **kwargs)


@pytest.mark.serial  # timed: it needs the machine to itself
def test_the_ci_token_cannot_act_beyond_its_role_and_slack_approves(
    served: tuple[Server, Path], recorder: Recorder
) -> None:
    server, dest = served
    [execution_id] = server.alertmanager(alert("Gated")).json()["executions"]
    [notice] = recorder.wait_for(1)
    blocks = notice.json()["blocks"]
    buttons = {
        e.get("action_id"): e for b in blocks if b["type"] == "actions" for e in b["elements"]
    }
    assert buttons["remediator_approve"]["value"] == execution_id
    assert buttons["remediator_reject"]["value"] == execution_id

    ci = bearer("ci")
    attempts = [
        post(server, "/api/runbooks/gated/run", ci, json={
            "by": "alice@example.com (on-call lead)", "incident": {"title": "disk full"}}),
        post(server, f"/api/executions/{execution_id}/approve", ci, json={"by": "cto@example.com"}),
        post(server, "/api/runbooks/reload", ci),
        post(server, "/api/escalations/x/redeliver", ci, json={}),
    ]  # fmt: skip
    assert [a.status_code for a in attempts] == [403, 403, 403, 403]
    assert "needs role responder or admin; ci has ci" in attempts[0].json()["detail"]
    assert "needs role admin" in attempts[2].json()["detail"]
    version = post(server, "/api/terraform/versions", ci,
                   json={"workdir": "web", "ref": "main", "by": "remediator (execution 1)"})  # fmt: skip
    assert version.status_code == 422 and version.json()["error"] == "identity_mismatch"
    [only] = server.api("/executions")
    assert (only["id"], only["status"]) == (execution_id, "waiting_approval")
    assert server.api(f"/executions/{execution_id}")["actions"] == []

    body, headers = slack_click(recorder, "U0ALICE", execution_id)
    forged = {**headers, "x-slack-signature": "v0=" + "0" * 64}
    stale_body, stale = slack_click(recorder, "U0ALICE", execution_id)
    old = str(int(time.time()) - 301)
    stale["x-slack-request-timestamp"] = old
    stale["x-slack-signature"] = (
        "v0="
        + hmac.new(
            SIGNING_SECRET.encode(), f"v0:{old}:".encode() + stale_body, hashlib.sha256
        ).hexdigest()
    )
    unknown_body, unknown = slack_click(recorder, "U0NOBODY", execution_id)
    viewer_body, viewer = slack_click(recorder, "U0DASH", execution_id)
    refused = [
        post(server, "/integrations/slack/interactions", forged, content=body),
        post(server, "/integrations/slack/interactions", stale, content=stale_body),
        post(server, "/integrations/slack/interactions", headers, content=body + b"&x=1"),
        post(server, "/integrations/slack/interactions", unknown, content=unknown_body),
        post(server, "/integrations/slack/interactions", viewer, content=viewer_body),
    ]
    assert [r.status_code for r in refused] == [401, 401, 401, 403, 403]
    assert refused[1].json()["error"] == "stale_timestamp"
    assert "not mapped" in refused[3].json()["detail"]
    assert "dashboards has role viewer" in refused[4].json()["detail"]
    assert server.api(f"/executions/{execution_id}")["status"] == "waiting_approval"

    started = time.monotonic()
    clicked = post(server, "/integrations/slack/interactions", headers, content=body)
    assert clicked.status_code == 200, clicked.text
    assert time.monotonic() - started < 3  # Slack's deadline
    done = server.wait_all_final([execution_id])[0]
    assert done["status"] == "succeeded" and dest.exists()
    assert [(a["action"], a["by"]) for a in done["actions"]] == [("approve", "alice (via slack)")]
    updates = [r.json() for r in recorder.wait_for(3) if r.path.startswith("/hook/actions/")]
    told = [u for u in updates if u.get("response_type") == "ephemeral"]
    replaced = [u for u in updates if u["replace_original"]]
    assert len(told) == 1 and "dashboards has role viewer" in told[0]["text"]
    assert len(replaced) == 1 and replaced[0]["text"].startswith("Approved by alice (via slack)")

    audit = httpx.get(f"{server.base}/api/audit", headers=bearer("ops-admin"), timeout=30).json()
    seen = [(r["identity"], r["via"], r["route"], r["status"]) for r in audit]
    assert seen == [
        ("alice", "slack", "/integrations/slack/interactions", 200),
        ("dashboards", "slack", "/integrations/slack/interactions", 403),
        (None, None, "/integrations/slack/interactions", 403),
        ("ci", "token", "/api/terraform/versions", 422),
        ("ci", "token", "/api/escalations/{escalation_id}/redeliver", 403),
        ("ci", "token", "/api/runbooks/reload", 403),
        ("ci", "token", "/api/executions/{execution_id}/approve", 403),
        ("ci", "token", "/api/runbooks/{name}/run", 403),
    ]  # the three forged or stale clicks are log lines, not rows
    log = server.log.read_text()
    assert '"audit_identity": "ci"' in log and '"audit_route": "/api/runbooks/reload"' in log
    assert log.count('"audit_route": "/integrations/slack/interactions"') == 6


def from_address(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def test_the_sso_proxy_is_believed_from_its_address_only(
    served: tuple[Server, Path], recorder: Recorder
) -> None:
    server, _ = served
    [execution_id] = server.alertmanager(alert("Gated")).json()["executions"]
    with from_address("127.0.0.1") as proxy, from_address("127.0.0.2") as elsewhere:
        me = proxy.get(f"{server.base}/api/whoami", headers=PROXY)
        assert me.json() == {"name": "carol@example.com", "roles": ["responder"], "via": "sso",
                             "permissions": ["read", "operate"]}  # fmt: skip
        assert elsewhere.get(f"{server.base}/api/whoami", headers=PROXY).status_code == 401
        spoofed = elsewhere.post(f"{server.base}/api/executions/{execution_id}/approve",
                                 headers=PROXY, json={})  # fmt: skip
        assert spoofed.status_code == 401
        # From elsewhere a token still works, and the headers beside it are ignored.
        with_token = elsewhere.get(f"{server.base}/api/whoami",
                                   headers={**PROXY, **bearer("dashboards")})  # fmt: skip
        assert with_token.json()["name"] == "dashboards"
        # A signed-in person in no mapped group has no role.
        nobody = proxy.get(f"{server.base}/api/executions",
                           headers={**PROXY, "x-forwarded-groups": "staff"})  # fmt: skip
        assert nobody.status_code == 403
        approved = proxy.post(f"{server.base}/api/executions/{execution_id}/approve",
                              headers=PROXY, json={"reason": "ok from the page"})  # fmt: skip
        assert approved.status_code == 200, approved.text
    done = server.wait_all_final([execution_id])[0]
    assert [(a["action"], a["by"]) for a in done["actions"]] == [
        ("approve", "carol@example.com (via sso)")
    ]
    audit = httpx.get(f"{server.base}/api/audit", headers=bearer("ops-admin"),
                      params={"identity": "carol@example.com"}, timeout=30).json()  # fmt: skip
    assert [(r["route"], r["status"], r["client"]) for r in audit] == [
        ("/api/executions/{execution_id}/approve", 200, "203.0.113.9 via 127.0.0.1"),
        ("/api/executions", 403, "203.0.113.9 via 127.0.0.1"),
    ]
    spoofs = httpx.get(f"{server.base}/api/audit", headers=bearer("ops-admin"),
                       params={"outcome": "denied"}, timeout=30).json()  # fmt: skip
    assert {r["client"] for r in spoofs if r["identity"] is None} == {"127.0.0.2"}
    assert TOKENS["dashboards"] not in json.dumps(spoofs)


def test_an_identity_header_given_twice_is_refused_and_the_audit_keeps_the_proxy_seen_address(
    served: tuple[Server, Path],
) -> None:
    """A proxy that appends rather than replaces lets a client put its own header first:
    any identity header given twice is 401, from the proxy's address or any other. The
    audit records the address the proxy saw (the rightmost hop not a trusted proxy), not
    the leftmost, which the client writes."""
    server, _ = served
    repeated = [
        [("x-forwarded-email", "admin@example.com"), ("x-forwarded-email", "carol@example.com")],
        [("x-forwarded-email", "carol@example.com"), ("x-forwarded-groups", "sre-leads"),
         ("x-forwarded-groups", "staff")],
        [("authorization", f"Bearer {TOKENS['ops-admin']}"),
         ("authorization", f"Bearer {TOKENS['dashboards']}")],
    ]  # fmt: skip
    with from_address("127.0.0.1") as proxy, from_address("127.0.0.2") as elsewhere:
        for client in (proxy, elsewhere):
            for headers in repeated:
                answer = client.get(f"{server.base}/api/whoami", headers=headers)
                assert answer.status_code == 401, (headers, answer.text)
                assert "more than once" in answer.json()["detail"]
        forged = proxy.post(
            f"{server.base}/api/automation/nothing", json={},
            headers={**PROXY, "x-forwarded-for": "6.6.6.6, 198.51.100.7, 127.0.0.1"},
        )  # fmt: skip
        assert forged.status_code in (403, 404, 405), forged.text
        seen = proxy.get(f"{server.base}/api/executions",
                         headers={**PROXY, "x-forwarded-groups": "staff",
                                  "x-forwarded-for": "6.6.6.6, 10.9.9.9"})  # fmt: skip
        assert seen.status_code == 403
    audit = httpx.get(f"{server.base}/api/audit", headers=bearer("ops-admin"),
                      params={"identity": "carol@example.com"}, timeout=30).json()  # fmt: skip
    assert audit[0]["route"] == "/api/executions" and audit[0]["status"] == 403
    assert audit[0]["client"] == "10.9.9.9 via 127.0.0.1"
    denied = httpx.get(f"{server.base}/api/audit", headers=bearer("ops-admin"),
                       params={"outcome": "denied"}, timeout=30).json()  # fmt: skip
    assert sum(1 for r in denied if r["route"] == "/api/whoami" and r["status"] == 401) == 6
    assert "more than once" in server.log.read_text()

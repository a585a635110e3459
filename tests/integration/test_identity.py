"""Who may do what: the role table over every /api route (a property test), four-eyes
approval, the name on an action, and the audit log of all of it."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr

from app.config.sections import SlackTarget
from app.escalation.slack import Click, answer_click
from tests.support.instant import instant_step
from tests.support.service import TOKENS, Api, Recorder, alert, ansible_step, bearer, runbook

# The instant step kind: what runs is not the subject here (tests.support.instant).
pytestmark = pytest.mark.usefixtures("instant_kind")

ROLES = ("viewer", "responder", "ci", "admin")
# The role table, written out independently of the service's: what each call
# needs. Every /api route must be here (a new route without a row fails the test).
NEEDS: dict[tuple[str, str], str] = {
    ("GET", "/api/executions"): "read",
    ("GET", "/api/stats"): "read",
    ("GET", "/api/executions/{execution_id}"): "read",
    ("GET", "/api/executions/{execution_id}/attempts/{number}/output"): "read",
    ("GET", "/api/executions/{execution_id}/events"): "read",
    ("POST", "/api/executions/{execution_id}/approve"): "operate",
    ("POST", "/api/executions/{execution_id}/reject"): "operate",
    ("POST", "/api/executions/{execution_id}/cancel"): "operate",
    ("POST", "/api/escalations/{escalation_id}/redeliver"): "admin",
    ("GET", "/api/runbooks"): "read",
    ("GET", "/api/runbooks/{name}"): "read",
    ("POST", "/api/runbooks/reload"): "admin",
    ("GET", "/api/sources"): "read",
    ("POST", "/api/runbooks/{name}/run"): "operate",
    ("POST", "/api/simulate"): "operate",
    ("POST", "/api/terraform/versions"): "record_version",
    ("GET", "/api/terraform/versions"): "read",
    ("GET", "/api/whoami"): "anyone",
    ("GET", "/api/audit"): "admin",
    ("GET", "/metrics"): "read",
    ("GET", "/api/automation"): "read",
    ("POST", "/api/automation/pause"): "operate",
    ("POST", "/api/automation/resume"): "operate",
    ("GET", "/api/runbooks/{name}/breaker"): "read",
    ("POST", "/api/runbooks/{name}/breaker/reset"): "operate",
}
GRANTED_TO: dict[str, set[str]] = {
    "anyone": set(ROLES),
    "read": set(ROLES),
    "operate": {"responder", "admin"},
    "record_version": {"ci", "admin"},
    "admin": {"admin"},
}
BODIES: dict[str, Any] = {
    "/api/runbooks/{name}/run": {"incident": {"title": "t"}},
    "/api/simulate": {"source": "generic", "payload": {"title": "t"}},
    "/api/terraform/versions": {"workdir": "nowhere", "ref": "main"},
    "/api/automation/pause": {"reason": "a role check", "for": "1s"},
    "/api/runbooks/{name}/breaker/reset": {"reason": "a role check"},
}
ROLE_SETS = [
    frozenset(c) for n in range(1, len(ROLES) + 1) for c in itertools.combinations(ROLES, n)
]


def token_of(roles: frozenset[str]) -> str:
    return "set-" + "-".join(sorted(roles)) + "-0123456789abcdef"


def approval_runbooks(dest: Path, **approval: Any) -> list[dict[str, Any]]:
    step = instant_step(dest)
    return [runbook("gated", "Gated", step, approval=approval or True)]


def test_random_role_sets_on_every_route_never_pass_what_the_table_forbids(
    make_api: Callable[..., Api],
) -> None:
    tokens = [{"name": f"set{i}", "token": token_of(roles), "roles": sorted(roles)}
              for i, roles in enumerate(ROLE_SETS)]  # fmt: skip
    api = make_api([runbook("r", "Never", ansible_step("append.yml", dest="/nonexistent"))],
                   api_tokens=tokens)  # fmt: skip
    paths = api.client.get("/openapi.json").json()["paths"]
    routes = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(("/api", "/metrics"))
        for method in operations
    }
    assert routes == set(NEEDS), "every /api route needs a row in NEEDS"

    @settings(max_examples=200, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
    @given(roles=st.sampled_from(ROLE_SETS), call=st.sampled_from(sorted(NEEDS)))
    def check(roles: frozenset[str], call: tuple[str, str]) -> None:
        method, path = call
        url = re.sub(r"\{[^}]+\}", "no-such-thing", path)
        answer = api.client.request(
            method, url, json=BODIES.get(path, {}) if method == "POST" else None,
            headers={"authorization": f"Bearer {token_of(roles)}"},
        )  # fmt: skip
        allowed = bool(roles & GRANTED_TO[NEEDS[call]])
        if allowed:
            assert answer.status_code not in (401, 403), (roles, call, answer.text)
        else:
            assert answer.status_code == 403, (roles, call, answer.text)
            assert answer.json()["error"] == "forbidden"

    check()
    admin = {"authorization": f"Bearer {token_of(frozenset({'admin'}))}"}
    assert api.client.get("/api/executions", headers=admin).json() == []


def test_the_asker_cannot_approve_and_another_responder_can(
    make_api: Callable[..., Api], tmp_path: Path, recorder: Recorder, database_url: str
) -> None:
    dest = tmp_path / "runs"
    api = make_api(approval_runbooks(dest), database_url=database_url,
                   escalation={"webhook": {"url": recorder.url}}, default_escalate=["webhook"])  # fmt: skip
    started = api.client.post("/api/runbooks/gated/run", headers=bearer("alice"),
                              json={"incident": {"title": "disk full"}, "reason": "flapping"})  # fmt: skip
    [execution_id] = started.json()["executions"]
    assert api.execution(execution_id)["status"] == "waiting_approval"
    [notice] = recorder.wait_for(1)
    assert notice.json()["approvers"] == (
        "anyone with role responder or admin; not alice, who asked for it"
    )

    own = api.act(execution_id, "approve", by="alice")
    assert own.status_code == 403 and "alice started this run" in own.json()["detail"]
    viewer = api.client.post(f"/api/executions/{execution_id}/approve", json={},
                             headers=bearer("dashboards"))  # fmt: skip
    assert viewer.status_code == 403 and "needs role responder" in viewer.json()["detail"]
    ci = api.client.post(f"/api/executions/{execution_id}/approve", json={"by": "cto"},
                         headers=bearer("ci"))  # fmt: skip
    assert ci.status_code == 403
    assert api.execution(execution_id)["status"] == "waiting_approval"

    approved = api.act(execution_id, "approve", by="bob", reason="looked at it")
    assert approved.status_code == 200, approved.text
    done = api.wait(execution_id)
    assert done["status"] == "succeeded"
    assert [(a["action"], a["by"]) for a in done["actions"]] == [
        ("run", "alice"),
        ("approve", "bob"),
    ]


def test_a_runbook_names_its_approvers(make_api: Callable[..., Api], tmp_path: Path) -> None:
    dest = tmp_path / "runs"
    api = make_api(approval_runbooks(dest, approvers=["bob", "role:admin"],
                                     allow_self_approval=True))  # fmt: skip
    first = api.alertmanager(alert("Gated")).json()["executions"][0]
    refused = api.act(first, "approve", by="alice")
    assert refused.status_code == 403
    assert "only bob or anyone with role admin may" in refused.json()["detail"]
    # Self-approval allowed here: bob asks and approves.
    asked = api.client.post("/api/runbooks/gated/run", headers=bearer("bob"),
                            json={"incident": {"title": "other", "fingerprint": "x"}})  # fmt: skip
    [second] = asked.json()["executions"]
    assert api.act(second, "approve", by="bob").status_code == 200
    assert api.act(first, "approve", by="ops-admin").status_code == 200
    assert {api.wait(i)["status"] for i in (first, second)} == {"succeeded"}


def test_the_audit_log_has_every_change_and_every_refusal(make_api: Callable[..., Api]) -> None:
    api = make_api([runbook("r", "Never", ansible_step("append.yml", dest="/nonexistent"))])
    assert api.client.post("/api/runbooks/reload", headers=bearer("alice")).status_code == 403
    assert api.client.post("/api/runbooks/reload").status_code == 401
    assert api.client.post("/api/runbooks/reload", headers=bearer("ops-admin")).status_code == 200
    cancel = api.act("no-such-id", "cancel", by="bob")
    assert cancel.status_code == 404
    assert api.client.get("/api/executions", headers=bearer("alice")).status_code == 200
    assert api.client.get("/api/audit", headers=bearer("dashboards")).status_code == 403

    rows = api.client.get("/api/audit", headers=api.auth).json()
    seen = [(r["identity"], r["method"], r["route"], r["outcome"], r["status"]) for r in rows]
    assert seen == [
        ("dashboards", "GET", "/api/audit", "denied", 403),
        ("bob", "POST", "/api/executions/{execution_id}/cancel", "failed", 404),
        ("ops-admin", "POST", "/api/runbooks/reload", "ok", 200),
        (None, "POST", "/api/runbooks/reload", "denied", 401),
        ("alice", "POST", "/api/runbooks/reload", "denied", 403),
    ]  # reads (GET /api/executions) are not in it; refused reads are
    assert rows[1]["target"] == "no-such-id" and rows[1]["roles"] == "responder"
    assert rows[0]["client"] == "testclient" and rows[0]["via"] == "token"

    denied = api.client.get("/api/audit", params={"outcome": "denied"}, headers=api.auth).json()
    assert [r["identity"] for r in denied] == ["dashboards", None, "alice"]
    alice = api.client.get("/api/audit", params={"identity": "alice"}, headers=api.auth).json()
    assert [r["route"] for r in alice] == ["/api/runbooks/reload"]
    first = api.client.get("/api/audit", params={"limit": 2}, headers=api.auth)
    following = first.headers["x-next-cursor"]
    second = api.client.get("/api/audit", params={"limit": 2, "cursor": following},
                            headers=api.auth)  # fmt: skip
    ids = [r["id"] for r in first.json()] + [r["id"] for r in second.json()]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4


def test_whoami_says_who_and_what(make_api: Callable[..., Api]) -> None:
    api = make_api([runbook("r", "Never", ansible_step("append.yml", dest="/nonexistent"))])
    me = api.client.get("/api/whoami", headers=bearer("ci")).json()
    assert me == {"name": "ci", "roles": ["ci"], "via": "token",
                  "permissions": ["read", "record_version"]}  # fmt: skip
    assert api.client.get("/api/whoami", headers={"authorization": "Bearer " + "x" * 20}
                          ).status_code == 401  # fmt: skip
    assert TOKENS["ci"] not in api.client.get("/api/audit", headers=api.auth).text


def test_a_slack_click_cannot_choose_where_the_update_goes(recorder: Recorder) -> None:
    """The response_url is the click's (data): only one under the configured prefix is
    posted to; any other is dropped, whatever the click says."""
    config = SlackTarget(webhook_url=SecretStr(recorder.url + "/slack"),
                         response_url_prefix=recorder.url + "/actions/")  # fmt: skip
    for hostile in (
        recorder.url + "/elsewhere",
        "http://169.254.169.254/latest/meta-data",
        recorder.url.replace("127.0.0.1", "127.0.0.1.evil.example") + "/actions/x",
    ):
        answer_click(config, Click("U1", "approve", "e1", hostile), "hi", replace=True)
    assert recorder.requests == []
    answer_click(config, Click("U1", "approve", "e1", recorder.url + "/actions/T/1/a"), "hi",
                 replace=True)  # fmt: skip
    [update] = recorder.wait_for(1)
    assert update.path == "/hook/actions/T/1/a" and update.json()["text"] == "hi"

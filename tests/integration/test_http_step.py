"""The `http` step kind through the real app against a loopback API: the request as the
runbook rendered it (path, query, JSON body, the endpoint's credentials), a hostile value
never changing the host or adding a path segment, a 5xx retried only when that cannot
repeat an effect, a 4xx failed with the answer's tail and not retried, redirects not
followed, the answer's status, chosen headers and JSON body as the step's outputs."""

from __future__ import annotations

import http.server
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.loopback import serving
from tests.support.service import Api, alert, runbook

TOKEN = "flag-service-token-0001"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FlagService:
    """Records each call; answers from `replies` (status, headers, body), then 200."""

    base: str = ""
    calls: list[Call] = field(default_factory=list)
    replies: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)


@pytest.fixture
def flags() -> Iterator[FlagService]:
    service = FlagService()

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            split = urlsplit(self.path)
            service.calls.append(Call(self.command, split.path, parse_qs(split.query),
                                      {k.lower(): v for k, v in self.headers.items()},
                                      json.loads(raw) if raw else None))  # fmt: skip
            status, headers, body = (service.replies.pop(0) if service.replies
                                     else (200, {}, {"ok": True}))  # fmt: skip
            data = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
            self.send_response(status)
            for name, value in {"content-type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as base:
        service.base = base
        yield service


def _start(make_api: Callable[..., Api], flags: FlagService, step: dict[str, Any],
           **extra: Any) -> Api:  # fmt: skip
    endpoints = {"flags": {"url": f"{flags.base}/api/v1", "headers": {"x-team": "sre"},
                           "auth": {"bearer": TOKEN}, "timeout_s": 5}}  # fmt: skip
    return make_api([runbook("flip", "FlagBroken", {"http": step}, **extra)],
                    http_endpoints=endpoints)  # fmt: skip


FLIP = {
    "method": "POST",
    "path": "/flags/{{ incident.labels.flag }}/disable",
    "query": {"reason": "{{ incident.title }}"},
    "json": {"host": "{{ incident.labels.instance }}", "by": "remediator"},
    "capture_headers": ["x-request-id"],
    "timeout": "10s",
}


def test_the_call_is_made_as_rendered_and_its_answer_is_the_steps_outputs(
    make_api: Callable[..., Api], flags: FlagService
) -> None:
    flags.replies = [(200, {"x-request-id": "req-7"}, {"flag": "checkout-v2", "enabled": False})]
    api = _start(make_api, flags, FLIP)
    answer = api.alertmanager(alert("FlagBroken", flag="checkout-v2", instance="web-1"))
    done = api.wait(answer.json()["executions"][0])
    assert done["status"] == "succeeded", done
    [call] = flags.calls
    assert (call.method, call.path) == ("POST", "/api/v1/flags/checkout-v2/disable")
    assert call.query == {"reason": ["FlagBroken on web-1"]}
    assert call.body == {"host": "web-1", "by": "remediator"}
    assert call.headers["authorization"] == f"Bearer {TOKEN}" and call.headers["x-team"] == "sre"
    step = done["steps"][0]
    assert step["outputs"] == {"status": 200, "headers": {"x-request-id": "req-7"},
                               "body": {"flag": "checkout-v2", "enabled": False}}  # fmt: skip
    assert step["detail"]["summary"].endswith("/api/v1/flags/checkout-v2/disable → 200 OK")
    assert TOKEN not in json.dumps(done)


def test_a_hostile_value_stays_one_path_segment_and_never_moves_the_host(
    make_api: Callable[..., Api], flags: FlagService
) -> None:
    api = _start(make_api, flags, FLIP)
    hostile = "../../admin?all=1#x"
    done = api.wait(api.alertmanager(alert("FlagBroken", flag=hostile, instance="a/b@evil.test"))
                    .json()["executions"][0])  # fmt: skip
    assert done["status"] == "succeeded", done
    [call] = flags.calls  # it reached the configured host, and only it
    assert call.path == "/api/v1/flags/..%2F..%2Fadmin%3Fall%3D1%23x/disable"
    assert call.body["host"] == "a/b@evil.test"  # data in the JSON, as sent
    # A segment that is only `..` would climb: refused before any call.
    refused = api.wait(api.alertmanager(alert("FlagBroken", flag="..", instance="w",
                                              fingerprint="fp-2")).json()["executions"][0])  # fmt: skip
    assert refused["status"] == "failed" and "not a path segment" in refused["error"]
    assert len(flags.calls) == 1


@pytest.mark.parametrize(
    ("method", "idempotent", "calls", "status"),
    [
        ("PUT", False, 3, "succeeded"),  # idempotent by its method: retried
        ("POST", True, 3, "succeeded"),  # marked idempotent by the runbook: retried
        ("POST", False, 1, "failed"),  # may have acted: not repeated
    ],
)
def test_a_5xx_is_retried_only_when_that_cannot_repeat_an_effect(
    make_api: Callable[..., Api], flags: FlagService, method: str, idempotent: bool, calls: int,
    status: str,
) -> None:  # fmt: skip
    flags.replies = [(503, {}, {"error": "busy"}), (502, {}, "bad gateway")]
    step = {**FLIP, "method": method}
    api = make_api(
        [{**runbook("flip", "FlagBroken", {"http": step}, retry={"attempts": 3, "backoff": 0.05}),
          "steps": [{"http": step, "idempotent": idempotent}]}],
        http_endpoints={"flags": {"url": f"{flags.base}/api/v1", "auth": {"bearer": TOKEN}}},
    )  # fmt: skip
    done = api.wait(api.alertmanager(alert("FlagBroken", flag="f", instance="w"))
                    .json()["executions"][0])  # fmt: skip
    assert done["status"] == status, done
    assert len(flags.calls) == calls
    if status == "failed":
        assert "→ 503 Service Unavailable, expected 200, 201, 202, 204" in done["error"]
        assert '{"error": "busy"}' in done["error"]


def test_a_4xx_fails_with_the_answers_tail_and_is_not_retried(
    make_api: Callable[..., Api], flags: FlagService
) -> None:
    flags.replies = [(404, {}, {"message": "no flag named nope"})]
    api = _start(make_api, flags, {**FLIP, "method": "PUT"}, retry={"attempts": 3})
    done = api.wait(api.alertmanager(alert("FlagBroken", flag="nope", instance="w"))
                    .json()["executions"][0])  # fmt: skip
    assert done["status"] == "failed"
    assert "→ 404 Not Found" in done["error"] and "no flag named nope" in done["error"]
    assert len(flags.calls) == 1
    assert done["steps"][0]["outputs"]["body"] == {"message": "no flag named nope"}


def test_a_redirect_is_an_answer_not_followed(
    make_api: Callable[..., Api], flags: FlagService
) -> None:
    flags.replies = [(302, {"location": "http://127.0.0.2:9/elsewhere"}, "")]
    api = _start(make_api, flags, FLIP)
    done = api.wait(api.alertmanager(alert("FlagBroken", flag="f", instance="w"))
                    .json()["executions"][0])  # fmt: skip
    assert done["status"] == "failed" and "→ 302 Found" in done["error"]
    assert len(flags.calls) == 1


def test_an_endpoint_that_is_down_is_tried_again_it_was_never_reached(
    make_api: Callable[..., Api],
) -> None:
    with serving(http.server.BaseHTTPRequestHandler) as base:
        gone = base  # a port that was served, and is closed once this block ends
    api = make_api(
        [runbook("flip", "FlagBroken", {"http": FLIP}, retry={"attempts": 2, "backoff": 0.05})],
        http_endpoints={"flags": {"url": gone}},
    )
    done = api.wait(api.alertmanager(alert("FlagBroken", flag="f", instance="w"))
                    .json()["executions"][0])  # fmt: skip
    assert done["status"] == "failed" and "could not connect" in done["error"]
    assert done["steps"][0]["attempts"] == 2

"""`http:` steps: the one-call fix (flip a feature flag, drain a node from a load balancer,
purge a CDN path, restart through a vendor's API), without a playbook.

Where it connects is configuration only: a step names an endpoint of `http_endpoints`
(its scheme, host, port, base path, headers and credentials) and adds a path below it,
a query and a JSON body. A payload may fill, through the sinks (app.fields.sinks), path
segments (each `{{ }}` one percent-encoded segment: `/`, `..` or `?` from an incident
cannot add a segment or a query), query values and JSON string values (data, encoded as
such), never the host. Redirects are not followed: a 3xx is the answer, failing unless
the step expects it.

Retried by the runbook's `retry` when trying again cannot repeat an effect: a request
that never reached the service (it could not connect), or one whose method is
idempotent (GET, PUT, DELETE) or whose step is marked `idempotent`; never after a 4xx.
The answer's status, the headers named in `capture_headers` and its JSON body (up to
32 KiB) are the step's outputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import Field, field_validator

from app.config.sections import HttpEndpoint
from app.config.settings import Settings
from app.fields.duration import Duration
from app.fields.templating import render_text, render_value
from app.gitops.records import Records
from app.steps.base import (
    KindDefaults,
    StepInput,
    StepResult,
    StepSpec,
    chosen,
    strings_in,
    tail,
    with_outputs,
)

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
# Repeating one of these leaves the service as one call would have (RFC 9110, 9.2.2).
IDEMPOTENT: frozenset[str] = frozenset({"GET", "PUT", "DELETE"})
# A JSON answer kept as the step's `body` output up to this size; larger: only its size.
MAX_BODY_BYTES = 32 * 1024


class HttpStep(StepSpec):
    """`http:` in a runbook."""

    endpoint: str | None = Field(
        default=None, description="A name in `http_endpoints` (default: the only one)."
    )
    method: Method = "POST"
    path: str = Field(
        default="/",
        pattern=r"^/[^?#]*$",
        description="Below the endpoint's URL. Template: each `{{ }}` is one percent-encoded "
        "path segment. The query goes in `query`.",
    )
    query: dict[str, str] = Field(
        default_factory=dict, description="Query parameters; values are templates (data)."
    )
    json_body: Any = Field(
        default=None,
        alias="json",
        description="The JSON body; its strings are templates (data, JSON-encoded).",
    )
    expect_status: list[int] = Field(
        default_factory=lambda: [200, 201, 202, 204],
        min_length=1,
        description="The statuses that mean it worked; any other fails the step.",
    )
    capture_headers: list[str] = Field(
        default_factory=list, description="Answer headers kept as the step's outputs."
    )
    timeout: Duration = 30.0

    @field_validator("path")
    @classmethod
    def _stays_below(cls, value: str) -> str:
        if any(part in ("..", ".") for part in value.split("/")):
            raise ValueError("a path may not name . or .. segments")
        return value


class HttpKind(KindDefaults):
    name = "http"
    spec_model = HttpStep

    def templates(self, spec: HttpStep) -> Iterator[tuple[str, str]]:
        yield "path", spec.path
        yield from strings_in(spec.query, "query")
        yield from strings_in(spec.json_body, "json")

    def render(self, spec: HttpStep, context: Mapping[str, Any]) -> dict[str, Any]:
        rendered = spec.model_dump(mode="json", by_alias=True)
        rendered["path"] = render_text(spec.path, context, "url")
        rendered["query"] = render_value(spec.query, context)
        rendered["json"] = render_value(spec.json_body, context)
        return rendered

    def variables(self, spec: HttpStep) -> Mapping[str, Any]:
        body = spec.json_body if isinstance(spec.json_body, dict) else {}
        return {**spec.query, **body}

    def executor(self, settings: Settings, _records: Records) -> HttpExecutor | None:
        return HttpExecutor(settings.http_endpoints) if settings.http_endpoints else None


class HttpExecutor:
    kind = "http"

    def __init__(self, endpoints: Mapping[str, HttpEndpoint]) -> None:
        self.endpoints = dict(endpoints)

    def _endpoint(self, spec: Mapping[str, Any]) -> tuple[str, HttpEndpoint] | str:
        """The endpoint the step names (or the only one), or why there is none."""
        name = chosen(self.endpoints, spec.get("endpoint"))
        if name is None:
            known = ", ".join(sorted(self.endpoints))
            return (f"http endpoint {spec.get('endpoint')!r} is not configured "
                    f"(http_endpoints: {known})")  # fmt: skip
        return name, self.endpoints[name]

    def targets(self, spec: dict[str, Any]) -> list[str]:
        found = self._endpoint(spec)
        endpoint = found[0] if isinstance(found, tuple) else spec.get("endpoint")
        return [f"http:{endpoint}{spec['path']}"]

    def preview(self, spec: dict[str, Any]) -> dict[str, Any]:
        found = self._endpoint(spec)
        if isinstance(found, str):
            return {"error": found}
        return {"would_call": f"{spec['method']} {_url(found[1], spec)}",
                "query": spec.get("query"), "json": spec.get("json")}  # fmt: skip

    def run(self, step: StepInput, *, cancelled: Callable[[], bool]) -> StepResult:
        started = datetime.now(UTC)
        spec = step.spec
        found = self._endpoint(spec)
        if isinstance(found, str):
            return StepResult("failed", None, "", started, datetime.now(UTC), error=found,
                              retry=False)  # fmt: skip
        if cancelled():  # once sent, a call cannot be taken back: it is bounded instead
            return StepResult("cancelled", None, "", started, datetime.now(UTC),
                              error="cancelled before the call")  # fmt: skip
        _, endpoint = found
        method, url = str(spec["method"]), _url(endpoint, spec)
        safe = method in IDEMPOTENT or step.idempotent
        said = f"{method} {url}"
        step.said(said + "\n")
        timeout = httpx.Timeout(min(endpoint.timeout_s, step.timeout_s))
        try:
            with httpx.Client(verify=endpoint.verify_tls, follow_redirects=False,
                              trust_env=False, timeout=timeout) as client:  # fmt: skip
                answer = client.request(
                    method, url, params=spec.get("query") or None, headers=_headers(endpoint),
                    **({"json": spec["json"]} if spec.get("json") is not None else {}),
                )  # fmt: skip
        except httpx.ConnectError as exc:
            # It never reached the service: trying again cannot repeat anything.
            return _ended("failed", f"{said}: could not connect ({exc})", started, said)
        except httpx.TimeoutException:
            return _ended("timed_out", f"{said}: no answer within {timeout.read:g}s", started,
                          said, retry=safe)  # fmt: skip
        except httpx.HTTPError as exc:
            return _ended("failed", f"{said}: {type(exc).__name__}: {exc}", started, said,
                          retry=safe)  # fmt: skip
        return _answered(answer, spec, started, said, safe)


def _url(endpoint: HttpEndpoint, spec: Mapping[str, Any]) -> str:
    return endpoint.url.rstrip("/") + str(spec["path"])


def _headers(endpoint: HttpEndpoint) -> dict[str, str]:
    headers = {"user-agent": "remediator", **endpoint.headers}
    auth = endpoint.auth
    if auth is None:
        return headers
    if auth.bearer is not None:
        headers["authorization"] = f"Bearer {auth.bearer.get_secret_value()}"
    elif auth.basic is not None:
        basic = httpx.BasicAuth(auth.basic.username, auth.basic.password.get_secret_value())
        headers["authorization"] = basic._auth_header  # noqa: SLF001 - httpx's own encoding
    elif auth.header is not None:
        headers[auth.header.name] = auth.header.value.get_secret_value()
    return headers


def _ended(
    status: Literal["failed", "timed_out"],
    error: str,
    started: datetime,
    said: str,
    *,
    retry: bool = True,
) -> StepResult:
    return StepResult(status, None, f"{said}\n{error}\n", started, datetime.now(UTC),
                      error=error, detail={"summary": error}, retry=retry)  # fmt: skip


def _answered(
    answer: httpx.Response, spec: Mapping[str, Any], started: datetime, said: str, safe: bool
) -> StepResult:
    code = answer.status_code
    outputs: dict[str, Any] = {"status": code}
    wanted = [name.lower() for name in spec.get("capture_headers") or []]
    if wanted:
        outputs["headers"] = {n: answer.headers[n] for n in wanted if n in answer.headers}
    text = answer.text
    if answer.headers.get("content-type", "").split(";")[0].strip().endswith("json"):
        if len(answer.content) <= MAX_BODY_BYTES:
            try:
                outputs["body"] = json.loads(text)
            except ValueError:
                pass
        else:
            outputs["body_bytes"] = len(answer.content)
    summary = f"{said} → {code} {answer.reason_phrase}"
    output = tail(f"{summary}\n{text}")
    now = datetime.now(UTC)
    if code in spec["expect_status"]:
        done = StepResult("succeeded", None, output, started, now, detail={"summary": summary})
        return with_outputs(done, outputs)
    error = f"{summary}, expected {', '.join(map(str, spec['expect_status']))}"
    if text.strip():
        error += f": {tail(text.strip(), 500)}"
    # A 4xx is the service saying no: asking again says no again. A 5xx may pass, but
    # only a call that cannot repeat an effect is made again.
    failed = StepResult("failed", None, output, started, now, error=error,
                        detail={"summary": summary}, retry=code >= 500 and safe)  # fmt: skip
    return with_outputs(failed, outputs)

"""Calls to an automation engine's HTTP API (AWX, HCP Terraform, GitHub, GitLab), the way
each remote step kind needs them: its token in the header the engine wants, a bounded
timeout, and answers turned into values or one typed error.

A call that starts work (a launch) is sent again only when the engine cannot have acted
on it: the connection was refused, or the engine answered 429/503 (busy, try later).
Any other failure after the request left (a read timeout, a 500) may have started the
work, so it is reported, never repeated: a second launch would run the job twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import httpx

from app.config.sections import EngineConfig
from app.errors import ExecutorError

BUSY = (429, 503)
MAX_RETRY_AFTER_S = 60.0


class EngineError(ExecutorError):
    """The engine could not be asked, or answered with an error. `retry_after_s`: how
    long it asked us to wait (429/503 with Retry-After)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after_s: float = 0.0):
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class EngineClient:
    """One engine's API, from its `engines.<engine>` config."""

    def __init__(
        self,
        name: str,
        config: EngineConfig,
        *,
        auth: Callable[[str], Mapping[str, str]],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.base = config.url.rstrip("/")
        self.client = httpx.Client(
            headers={**auth(config.token.get_secret_value()), **(headers or {})},
            timeout=config.request_timeout_s,
            verify=config.verify_tls,
            follow_redirects=False,
        )

    def get(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        busy_wait_s: float = 0.0,
        follow: bool = False,
        ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        """A read. Within `busy_wait_s`, an engine that is busy or unreachable is asked
        again; past it, or for any other error answer (but those in `ok`), EngineError.
        `follow`: where the engine answers with a redirect to the content (HCP Terraform's
        plan JSON); the token is not sent on to another host."""
        return self._request("GET", path, busy_wait_s=busy_wait_s, params=params,
                             follow_redirects=follow, ok=ok)  # fmt: skip

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        content_type: str | None = None,
        busy_wait_s: float = 20.0,
        ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        """A call that acts. Sent again, within `busy_wait_s`, only while the engine
        cannot have acted on it (see the module doc). Statuses in `ok` are answered as
        they are, not raised."""
        headers = {"content-type": content_type} if content_type else None
        return self._request("POST", path, busy_wait_s=busy_wait_s, ok=ok, json=body,
                             headers=headers)  # fmt: skip

    def update(
        self, method: Literal["PATCH", "PUT"], path: str, body: Any, *, busy_wait_s: float = 20.0
    ) -> httpx.Response:
        """A call that changes an object to a whole new value: sending it twice leaves
        the same result, so it is sent again within `busy_wait_s` whatever went wrong."""
        return self._request(method, path, busy_wait_s=busy_wait_s, json=body)

    def _request(
        self, method: str, path: str, *, busy_wait_s: float, ok: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        deadline = time.monotonic() + busy_wait_s
        while True:
            try:
                response = self._send(method, path, **kwargs)
            except EngineError as exc:
                if exc.status is not None or time.monotonic() >= deadline:
                    raise
                time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
                continue
            if response.status_code in ok:
                return response
            if _busy(response) and time.monotonic() < deadline:
                wait = min(_retry_after(response) or 1.0, deadline - time.monotonic())
                time.sleep(max(0.0, wait))
                continue
            return _checked(self.name, response)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, self.base + path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Refused or unreachable: the request never arrived, so it may be sent again.
            raise EngineError(
                f"{self.name} unreachable at {self.base}: {type(exc).__name__}"
            ) from exc
        except httpx.HTTPError as exc:
            # It may have arrived. An update sets the same value again, so it may be
            # repeated; a launch may not (a status says so), it would run the job twice.
            if method in ("PATCH", "PUT"):
                raise EngineError(
                    f"{self.name}: {method} {path} failed: {type(exc).__name__}"
                ) from exc
            where = "may have arrived" if method == "POST" else "failed"
            raise EngineError(
                f"{self.name}: {method} {path} {where}: {type(exc).__name__}", status=0
            ) from exc


def _checked(name: str, response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    raise EngineError(
        f"{name} answered {response.status_code} to {response.request.method} "
        f"{response.request.url.path}: {response.text[:300]}",
        status=response.status_code,
        retry_after_s=(_retry_after(response) or 0.0) if _busy(response) else 0.0,
    )


def _busy(response: httpx.Response) -> bool:
    """Asked to come back later: 429/503, or GitHub's 403 with its rate limit spent."""
    if response.status_code in BUSY:
        return True
    return response.status_code == 403 and response.headers.get("x-ratelimit-remaining") == "0"


def _retry_after(response: httpx.Response) -> float | None:
    """How long the engine asked us to wait: Retry-After, or until GitHub's
    x-ratelimit-reset (epoch seconds); capped."""
    value = response.headers.get("retry-after")
    reset = response.headers.get("x-ratelimit-reset")
    try:
        if value is not None:
            wait = float(value)
        elif reset is not None and response.headers.get("x-ratelimit-remaining") == "0":
            wait = float(reset) - time.time()
        else:
            return None
    except ValueError:
        return None
    return min(MAX_RETRY_AFTER_S, max(0.0, wait))

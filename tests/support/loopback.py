"""A stand-in HTTP server on a loopback port, in a thread, for as long as a test needs."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jsonschema


class QuietServer(http.server.ThreadingHTTPServer):
    """A client that goes away mid-request (a service killed on purpose) is expected
    here, not an error to print."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on 127.0.0.1; yields the base URL, shuts down after."""
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class LoopbackStandIn:
    """A stand-in served from a thread on a loopback port: `start` binds `port` (0: any
    free one, then kept, so a restart is at the same address) and sets `base`; `stop`
    takes it down, and connections are refused until `start` again. Its handler class
    reaches the stand-in as the attribute `handler_name`; what broke the contract is
    kept in `violations`, and `lock` guards the stand-in's state across handler threads."""

    handler_name: ClassVar[str]
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""
    port: int = 0
    # Served over TLS with this context (`base` then says https).
    tls: ssl.SSLContext | None = None
    _server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        attributes = {self.handler_name: self, "violations": self.violations}
        self._server = QuietServer(("127.0.0.1", self.port),
                                   type("Handler", (self.handler_class(),), attributes))  # fmt: skip
        self.port = self._server.server_address[1]
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.base = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handler_class(self) -> type[StandInHandler]:
        raise NotImplementedError


def answer_json(
    handler: http.server.BaseHTTPRequestHandler,
    status: int,
    body: dict[str, Any] | list[Any],
    headers: dict[str, str] | None = None,
) -> None:
    """Answer as the JSON APIs the stand-ins play do."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    for name, value in {"content-type": "application/json", **(headers or {})}.items():
        handler.send_header(name, value)
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class StandInHandler(http.server.BaseHTTPRequestHandler):
    """A stand-in engine's request handler: GET and POST go to `answer(method, raw body)`;
    a call that breaks the contract is recorded in `violations` and refused."""

    protocol_version = "HTTP/1.1"
    violations: list[str]
    # Where the engine puts an error's text in its JSON answer.
    error_key = "message"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.answer("GET", b"")

    def do_POST(self) -> None:  # noqa: N802
        self.answer("POST", self._body())

    def do_PATCH(self) -> None:  # noqa: N802
        self.answer("PATCH", self._body())

    def do_PUT(self) -> None:  # noqa: N802
        self.answer("PUT", self._body())

    def _body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, method: str, raw: bytes) -> None:
        raise NotImplementedError

    def refuse(self, status: int, why: str) -> None:
        self.violations.append(f"{self.command} {self.path}: {why}")
        answer_json(self, status, {self.error_key: why})

    def contract_body(self, raw: bytes, schema: dict[str, Any], status: int, what: str) -> Any:
        """The request's JSON body if it keeps `schema`; else the call is refused with
        `status` and None is answered."""
        try:
            body = json.loads(raw or b"{}")
            jsonschema.validate(body, schema)
        except (ValueError, jsonschema.ValidationError) as exc:
            self.refuse(status, f"{what} body breaks the contract: {str(exc)[:200]}")
            return None
        return body

    def text(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

"""The HTTP/1.1 connection, with the request head bounded before any other work.

uvicorn's httptools protocol keeps every header a client sends: twenty requests with
10 MiB of headers each took the server from 110 to 319 MiB, unauthenticated. Here a
request head (request line and headers) larger than `max_header_bytes`, or with more
than `max_headers` headers, is answered 431 with the documented error body and the
connection closed, as soon as the limit is passed: while the head is still arriving,
not after it has been buffered whole. The limits come from the configuration.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Room for the request line and the header delimiters beyond the header bytes counted.
_LINE_ALLOWANCE = 8 * 1024


class HeadTooLarge(Exception):
    """Raised from the parser's callback to stop parsing; answered 431."""


class BoundedHeadProtocol(HttpToolsProtocol):
    max_header_bytes = 16 * 1024
    max_headers = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True
        self._head_bytes = 0
        self._header_bytes = 0
        self._header_count = 0
        self._refused: str | None = None

    def on_message_begin(self) -> None:
        self._head_open = True
        self._head_bytes = self._header_bytes = self._header_count = 0
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4
        if self._header_count > self.max_headers:
            self._refused = f"more than {self.max_headers} request headers"
            raise HeadTooLarge
        if self._header_bytes > self.max_header_bytes:
            self._refused = f"request headers larger than {self.max_header_bytes} bytes"
            raise HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._refused is None and self._head_open and not self.transport.is_closing():
            # Every byte fed while the head is still open is head: one long header
            # line is refused while it arrives, before the parser has buffered it all.
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes + _LINE_ALLOWANCE:
                self._refused = f"request head larger than {self.max_header_bytes} bytes"
                self._answer_431()

    def send_400_response(self, msg: str) -> None:
        if self._refused is None:
            super().send_400_response(msg)
        else:
            self._answer_431()

    def _answer_431(self) -> None:
        body = json.dumps({"error": "headers_too_large", "detail": self._refused}).encode()
        head = (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n"
        )
        self.transport.write(head + body)
        self.transport.close()


def bounded_protocol(max_header_bytes: int, max_headers: int) -> type[asyncio.Protocol]:
    """The protocol class with the configured limits."""
    return type(
        "ConfiguredHeadProtocol",
        (BoundedHeadProtocol,),
        {"max_header_bytes": max_header_bytes, "max_headers": max_headers},
    )

"""Keyset pages: a full page names the page after it (`Link: rel=next`, `X-Next-Cursor`)."""

from __future__ import annotations

from fastapi import Request, Response


def link_next(request: Request, response: Response, cursor: str) -> None:
    response.headers["X-Next-Cursor"] = cursor
    url = request.url.include_query_params(cursor=cursor)
    response.headers["Link"] = f'<{url}>; rel="next"'

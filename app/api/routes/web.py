"""The page at /ui/: static files, a client of /api with the same bearer token.

The files hold no data: everything shown comes from /api, which wants the token (kept
in the tab's session storage and sent as a header, never as a cookie, so no other site
can act with it). The content security policy allows only this origin's own script,
styles and API calls: a payload that smuggled markup into a title could not run script
even if it were put in the page as HTML, which it is not.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from app.errors import NotFound

router = APIRouter(include_in_schema=False)

WEB = Path(__file__).resolve().parents[2] / "web"
FILES = {"index.html", "app.js", "style.css"}
# The stats page's chart library, as its package ships it (see web/vendor/README.md).
VENDORED = {"uPlot.iife.min.js", "uPlot.min.css"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui")
def ui_without_slash() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui/")
def ui_index() -> FileResponse:
    return ui_file("index.html")


@router.get("/ui/{name}")
def ui_file(name: str) -> FileResponse:
    if name not in FILES:
        raise NotFound(f"no page file {name!r}")
    return FileResponse(WEB / name, headers=HEADERS)


@router.get("/ui/vendor/{name}")
def ui_vendored(name: str) -> FileResponse:
    if name not in VENDORED:
        raise NotFound(f"no page file {name!r}")
    return FileResponse(WEB / "vendor" / name, headers=HEADERS)

"""The audit trail: every call under /api, /integrations and /metrics that changes state
(any method but GET, HEAD, OPTIONS), and every one refused (401, 403), is a row and a log
line, written before the caller hears the answer.

Webhooks are not in it: each accepted one is already its own durable event row, and a
row per refused webhook would let anyone on the network fill the database with forged
calls (they are logged and counted instead). For the same reason a Slack click whose
signature fails (401) is a log line only; a signed one is a row, refused or not.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.identity import Identity
from app.logs import log_context
from app.store.audit import AuditEntry, outcome_of, record_audit

log = logging.getLogger("remediator.audit")

AUDITED = ("/api/", "/integrations/", "/metrics")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuditTrail:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(AUDITED):
            await self.app(scope, receive, send)
            return

        async def audited(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if scope["method"] not in SAFE_METHODS or outcome_of(status) == "denied":
                    await run_in_threadpool(_record, scope, status)
            await send(message)

        await self.app(scope, receive, audited)


def _entry(scope: Scope, status: int) -> AuditEntry:
    identity: Identity | None = scope.get("state", {}).get("identity")
    route = scope.get("route")
    params = scope.get("path_params") or {}
    client = scope["client"][0] if scope.get("client") else None
    if identity is not None and identity.via == "sso":
        forwarded = Headers(scope=scope).getlist("x-forwarded-for")
        client = scope["app"].state.authenticator.client_address(client, forwarded)
    return AuditEntry(
        at=datetime.now(UTC),
        identity=identity.name if identity else None,
        roles=identity.role_names if identity else "",
        via=identity.via if identity else None,
        method=scope["method"][:8],
        route=(getattr(route, "path", None) or scope["path"])[:200],
        target=",".join(str(v) for v in params.values())[:255] or None,
        outcome=outcome_of(status),
        status=status,
        client=client[:100] if client else None,
    )


def _record(scope: Scope, status: int) -> None:
    entry = _entry(scope, status)
    fields = {"audit_" + k: str(v) for k, v in vars(entry).items() if k != "at" and v is not None}
    with log_context(**fields):
        log.info("audit: %s %s by %s: %s", entry.method, entry.route, entry.identity, status)
    if status == 401 and scope["path"].startswith("/integrations/"):
        return
    try:
        with scope["app"].state.services.db.write() as session:
            record_audit(session, entry)
    except Exception:
        # The call has happened (or was refused) whatever this row's fate: the line above
        # carries it; the answer goes out.
        log.exception("audit: the row for %s %s was not written", entry.method, entry.route)

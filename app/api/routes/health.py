"""Liveness and readiness."""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import ServicesDep
from app.services import Services

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


class WriteCheck:
    """Whether the store takes a write. Probes every second (a load balancer, several
    of them) must not each be a write: the last answer is kept for `ttl_s`."""

    def __init__(self, ttl_s: float = 2.0) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._last: tuple[float, str] | None = None

    def __call__(self, services: Services) -> str:
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.ttl_s:
                return self._last[1]
            try:
                services.db.probe_write()
                outcome = "ok"
            except (SQLAlchemyError, OSError) as exc:
                outcome = f"cannot write: {type(exc).__name__}"
            self._last = (time.monotonic(), outcome)
            return outcome


@router.get("/readyz")
def readyz(request: Request, services: ServicesDep) -> JSONResponse:
    """Ready when the store takes a write (not only a read: a full or read-only disk
    reads fine and refuses every webhook) and the workers run."""
    checks: dict[str, str] = {"database": request.app.state.write_check(services)}
    pool = request.app.state.workers
    checks["workers"] = "ok" if pool is not None and pool.alive else "not running"
    checks["runbooks"] = f"{len(services.matcher.runbooks)} loaded"
    ready = checks["database"] == "ok" and checks["workers"] == "ok"
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

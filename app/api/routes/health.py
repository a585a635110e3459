"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request, services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        services.db.ping()
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    pool = request.app.state.workers
    checks["workers"] = "ok" if pool is not None and pool.alive else "not running"
    checks["runbooks"] = f"{len(services.matcher.runbooks)} loaded"
    ready = checks["database"] == "ok" and checks["workers"] == "ok"
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

"""create_app(): routes, error answers, and the workers' lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__
from app.api import errors
from app.api.routes import executions, health, terraform, webhooks
from app.config import Settings
from app.flows import Services
from app.wiring import build_services
from app.worker import WorkerPool


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """The ASGI app. Services are built at start-up unless given (tests pass their own)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = services or build_services(settings)
        pool = WorkerPool(app.state.services)
        app.state.workers = pool
        pool.start()
        try:
            yield
        finally:
            pool.stop()
            app.state.services.db.close()

    app = FastAPI(
        title="remediator",
        version=__version__,
        summary="Webhook-driven automated remediation with escalation when automation fails.",
        lifespan=lifespan,
    )
    app.state.workers = None
    errors.install(app)
    app.include_router(webhooks.router)
    app.include_router(executions.router)
    app.include_router(terraform.router)
    app.include_router(health.router)
    return app

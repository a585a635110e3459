"""Dependencies shared by the routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from pydantic import AfterValidator

from app.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def _in_utc(moment: datetime) -> datetime:
    """A time without a zone is taken as UTC, as every stored time is."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# A time in a query (`since`, `until`): with its zone, or UTC.
QueryTime = Annotated[datetime, AfterValidator(_in_utc)]
# The largest row id either database keeps (a 64-bit integer): a larger cursor is no page.
MAX_ROW_ID = 2**63 - 1

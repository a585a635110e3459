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


# What a query's time may be: every stored time is inside, and a window computed from one
# (the stats' default of 7 days before `until`) stays inside what a datetime can hold.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _in_utc(moment: datetime) -> datetime:
    """A time without a zone is taken as UTC, as every stored time is; one outside what
    the store holds is refused here, for every query parameter, as a 422 naming it."""
    try:
        moment = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(
            UTC
        )
    except OverflowError:
        moment = datetime.min.replace(tzinfo=UTC)  # past either end: refused below
    if not EARLIEST <= moment < LATEST:
        raise ValueError(
            f"must be from {EARLIEST.isoformat()} and before {LATEST.isoformat()} (in UTC)"
        )
    return moment


# A time in a query (`since`, `until`): with its zone, or UTC.
QueryTime = Annotated[datetime, AfterValidator(_in_utc)]
# The largest row id either database keeps (a 64-bit integer): a larger cursor is no page.
MAX_ROW_ID = 2**63 - 1

"""A human runs a runbook by name for an incident they describe (API and CLI `run`).

The runbook's `match` is not consulted: naming it is the decision. Everything else is
the same as for a webhook: templates render against the incident, the guards apply
(an open execution for the same incident is attached to, cooldown, rate limit,
approval), and the execution is durable before the answer. Who ran it, and why, is
recorded as its first action, with the verified identity that four-eyes approval
compares.

The incident is a `generic` source body (`title` required; `severity`, `service`,
`labels`, `annotations`, `url`, `fingerprint`), with its `source` `manual` unless the
body names one: naming the platform and fingerprint of a live incident (seen, and last
seen firing) ties the run to it, so its resolve webhook ends a `verify: resolved_within`.
Naming one that is not live is refused: a manual run must not reach into another
platform's incidents. A manual run is never `resolved`: it would end that incident's
verifying executions as succeeded. An idempotency key makes a repeated request a
duplicate instead of a second run.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from app.errors import NotFound, UnsupportedPayload
from app.executions.trust import with_targets
from app.identity import Identity
from app.ingest import Accepted, Arrival, store_delivery
from app.runbooks.plan import plan
from app.services import Services
from app.sources.base import WebhookRequest
from app.sources.generic import GenericSource
from app.store.models import ActionRow
from app.store.records import incident_is_live

SOURCE = "manual"
SOURCE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def run_manually(
    services: Services,
    runbook_name: str,
    incident: dict[str, Any],
    *,
    by: Identity,
    reason: str = "",
    idempotency_key: str | None = None,
) -> Accepted:
    item = services.matcher.get(runbook_name)
    if item is None:
        raise NotFound(f"no runbook {runbook_name!r} is loaded")
    if "incidents" in incident:
        raise UnsupportedPayload("a manual run takes one incident, not `incidents`")
    now = time.time()
    delivery_id = f"{SOURCE}:{idempotency_key or uuid.uuid4()}"
    body = json.dumps(incident).encode()
    request = WebhookRequest(
        SOURCE, {"webhook-id": delivery_id}, body, datetime.fromtimestamp(now, UTC), now, 0
    )
    delivery = GenericSource().normalise(incident, request)
    source = incident.get("source") or SOURCE
    if not isinstance(source, str) or not SOURCE_NAME.fullmatch(source):
        raise UnsupportedPayload(f"source must match {SOURCE_NAME.pattern}")
    [normalised] = [i.model_copy(update={"source": source}) for i in delivery.incidents]
    if normalised.status != "firing":
        raise UnsupportedPayload("a manual run is for a firing incident: status must be firing")
    if source != SOURCE:
        with services.db.read() as session:
            live = incident_is_live(
                session=session, source=source, fingerprint=normalised.fingerprint
            )
        if not live:
            raise UnsupportedPayload(
                f"no live {source} incident has fingerprint {normalised.fingerprint!r}: a "
                "manual run may name another source only for an incident that is firing"
            )
    started_by = ActionRow(
        action="run", by=by.label, identity=by.name, reason=reason,
        at=datetime.fromtimestamp(now, UTC),
    )  # fmt: skip
    plans = [(normalised, [with_targets(plan(item.runbook, normalised), services.trust,
                                        services.executors)])]  # fmt: skip
    return store_delivery(services, Arrival(SOURCE, delivery, plans, now, started_by))

"""What a payload would do, without doing it: incidents, matching runbooks, rendered steps."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from app.flows import parse_json
from app.runbooks.matcher import Matcher, mismatch
from app.runbooks.plan import plan
from app.sources.base import WebhookRequest
from app.sources.registry import get_source


def simulate(matcher: Matcher, source_name: str, body: bytes) -> dict[str, Any]:
    """Normalise `body` as `source_name` would (signature not checked) and report, per
    incident, which runbooks match and what each would run, and why the others do not."""
    source = get_source(source_name)
    now = time.time()
    request = WebhookRequest(source_name, {}, body, datetime.fromtimestamp(now, UTC), now, 300)
    delivery = source.normalise(parse_json(body), request)
    report = []
    for incident in delivery.incidents:
        context = incident.template_context()
        matched, skipped = [], []
        for item in matcher.runbooks:
            reason = mismatch(item.runbook.match, incident, context)
            if reason is not None:
                skipped.append({"runbook": item.runbook.name, "why": reason})
                continue
            planned = plan(item.runbook, incident)
            matched.append(
                {
                    "runbook": item.runbook.name,
                    "file": f"{item.file}:{item.line}",
                    "concurrency_key": planned.concurrency_key,
                    "error": planned.error,
                    "steps": [
                        {"kind": s.kind, "idempotent": s.idempotent, **s.spec}
                        for s in planned.steps
                    ],
                    "verify": planned.verify,
                    "approval": item.runbook.approval,
                }
            )
        context.pop("raw", None)
        report.append({"incident": context, "matched": matched, "not_matched": skipped})
    result: dict[str, Any] = {
        "source": source_name,
        "delivery_id": delivery.delivery_id,
        "incidents": report,
    }
    if delivery.ignored is not None:
        result["ignored"] = delivery.ignored
    return result

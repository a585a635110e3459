"""Did the remediation work? Executions in `verifying` wait for their incident to resolve
(`verify.resolved_within`, ended by `note_resolution` when the resolved webhook arrives)
or for an HTTP check to answer as expected (`verify.http`, polled here). Deadlines end
them `failed` and escalate; an approval nobody gave in time ends `timed_out`.

The verifier holds no lease: its state is the row (status, deadline, next check), so any
replica can pick it up, and a restart loses nothing.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx

from app.errors import SinkError
from app.executions.lifecycle import finish_execution
from app.fields.sinks import check_destination
from app.services import Services
from app.store.models import Execution
from app.store.queue import claim_due_checks, past_deadline

log = logging.getLogger("remediator.verification")
CHECKS_AT_ONCE = 8


def expire_deadlines(services: Services) -> list[str]:
    """End executions whose approval or verification ran out of time."""
    now = datetime.now(UTC)
    ended = []
    with services.db.write() as session:
        for execution in past_deadline(session=session, now=now):
            ended.append(execution.id)
            if execution.status == "waiting_approval":
                timeout = execution.runbook_spec.get("approval_timeout", 0)
                finish_execution(
                    execution=execution, status="timed_out", now=now,
                    error=f"approval: nobody approved or rejected it within {timeout:g}s",
                    reason="approval_timeout",
                )  # fmt: skip
            else:
                finish_execution(
                    execution=execution, status="failed", now=now,
                    error=_not_verified(execution), reason="verify_failed",
                )  # fmt: skip
    if ended:
        log.warning("deadline passed for %d execution(s): %s", len(ended), ended)
    return ended


def _not_verified(execution: Execution) -> str:
    verify = execution.verify or {}
    if "resolved_within" in verify:
        return (
            "verify: remediation ran but the alert did not resolve within "
            f"{float(verify['resolved_within']):g}s"
        )
    http = verify.get("http", {})
    return (
        f"verify: remediation ran but {http.get('url')} did not answer "
        f"{http.get('expect_status')} within {float(http.get('within', 0)):g}s"
        + (f" (last: {execution.error})" if execution.error else "")
    )


def run_http_checks(services: Services, client: httpx.Client) -> int:
    """One round of due HTTP checks; answers how many ran."""
    with services.db.write() as session:
        due = claim_due_checks(session=session, now=datetime.now(UTC), hold_s=60)
        checks = [(e.id, dict((e.verify or {}).get("http", {}))) for e in due]
    allowed = services.settings.verify_allowed_hosts
    # Side by side: a URL that hangs holds one slot for at most its timeout, and the
    # other checks of the round go on meanwhile.
    with ThreadPoolExecutor(max_workers=max(1, min(CHECKS_AT_ONCE, len(checks)))) as pool:
        outcomes = list(pool.map(lambda check: _outcome(client, check[1], allowed), checks))
    for (execution_id, http), (outcome, refused) in zip(checks, outcomes, strict=True):
        now = datetime.now(UTC)
        with services.db.write() as session:
            execution = session.get(
                Execution, execution_id, with_for_update={"of": Execution, "key_share": True}
            )
            if execution is None or execution.status != "verifying":
                continue  # cancelled or resolved meanwhile
            if refused is not None:
                finish_execution(
                    execution=execution, status="failed", now=now, error=refused,
                    reason="verify_failed",
                )  # fmt: skip
                continue
            if outcome is None:
                finish_execution(execution=execution, status="succeeded", error=None, now=now)
                log.info("execution %s verified by %s", execution_id, http.get("url"))
                continue
            execution.error = outcome  # the last answer, shown while it keeps verifying
            deadline = execution.deadline_at
            if deadline is not None and now >= deadline:
                finish_execution(
                    execution=execution, status="failed", now=now,
                    error=_not_verified(execution), reason="verify_failed",
                )  # fmt: skip
            else:
                execution.next_check_at = now + timedelta(seconds=float(http.get("interval", 10)))
    return len(checks)


def _outcome(
    client: httpx.Client, http: dict[str, object], allowed: list[str]
) -> tuple[str | None, str | None]:
    """(what the check found, None) or (None, why the URL may not be reached)."""
    try:
        return _check(client, http, allowed), None
    except SinkError as exc:
        return None, f"verify: {exc}"


def _check(client: httpx.Client, http: dict[str, object], allowed: list[str]) -> str | None:
    """None when the URL answers the expected status, else what it did instead. The
    detail names the check's outcome, never the socket's error text: that would make the
    API an oracle for which ports are open where. SinkError: the URL may not be reached."""
    url, expected = str(http.get("url")), http.get("expect_status", 200)
    timeout = float(str(http.get("timeout", 5)))
    check_destination(url, allowed)
    try:
        # Redirects are not followed: the runbook chose the host, a Location header did not.
        answer = client.get(url, timeout=timeout, follow_redirects=False)
    except httpx.TimeoutException:
        return f"no answer within {timeout:g}s"
    except httpx.HTTPError:
        return "no answer (could not connect)"
    if answer.status_code == expected:
        return None
    return f"answered {answer.status_code}"

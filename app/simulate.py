"""What a payload would do, without doing it: incidents, matching runbooks, rendered steps."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.errors import SinkError, TemplateError
from app.executions.trust import mode_of, over_budget, with_targets
from app.ingest import parse_json
from app.runbooks.decisions import decide
from app.runbooks.matcher import Matcher, explain, mismatch
from app.runbooks.models import Batch, Runbook
from app.runbooks.plan import Plan, PlannedStep, plan, render_later, template_context
from app.runbooks.trust import TrustPolicy
from app.sources.base import WebhookRequest
from app.sources.registry import get_source
from app.steps.base import BatchExecutor, Executor
from app.store.db import Database


@dataclass(frozen=True)
class Trust:
    """Where simulate reads what decides a run's mode now (pause, breakers, budgets)."""

    db: Database
    policy: TrustPolicy


def simulate(
    matcher: Matcher,
    source_name: str,
    body: bytes,
    executors: Mapping[str, Executor] | None = None,
    trust: Trust | None = None,
    outputs: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Normalise `body` as `source_name` would (signature not checked) and report, per
    incident, which runbooks match and what each would run, and why the others do not.
    With `executors`, each step also says what it would act on (for a terraform step:
    which version `revert_to` resolves to now). With `trust`, each says the mode it would
    run in now and why (its own, a pause, a freeze, its breaker), or the budget that
    would refuse it (precedence: refuse > shadow > approve > auto).

    Each step says whether it would run (`runs`: true, false, or null when its `when`
    reads outputs that exist only once earlier steps ran) and why; `outputs` (by step id,
    as a runbook test gives them) stand for what those steps would find, so that a `when`
    is decided and a step reading them is rendered."""
    executors = executors or {}
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
            on = item.runbook.match.on
            if reason is None and incident.status == "firing" and incident.phase not in on:
                reason = f"phase is {incident.phase}, runbook runs on {on}"
            if reason is not None:
                skipped.append({"runbook": item.runbook.name, "why": reason})
                continue
            planned = plan(item.runbook, incident)
            shown_mode = _mode(item.runbook, planned, executors, trust)
            matched.append(
                {
                    **shown_mode,
                    "runbook": item.runbook.name,
                    "file": f"{item.file}:{item.line}",
                    "decided_by": explain(item.runbook.match, context),
                    "concurrency_key": planned.concurrency_key,
                    "error": planned.error,
                    "steps": _graph(
                        planned,
                        template_context(item.runbook, incident),
                        executors,
                        item.runbook.batch,
                        outputs or {},
                    ),  # fmt: skip
                    "verify": planned.verify,
                    "approval": item.runbook.approval.required,
                    "approvers": item.runbook.approval.who()
                    if item.runbook.approval.required
                    else None,
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


def _mode(
    runbook: Runbook, planned: Plan, executors: Mapping[str, Executor], trust: Trust | None
) -> dict[str, Any]:
    if trust is None:
        why = f"runbook {runbook.name} is mode {runbook.own_mode} (pause and breakers not read)"
        return {"mode": runbook.own_mode, "mode_why": why}
    now = datetime.now(UTC)
    planned = with_targets(planned, trust.policy, executors)
    with trust.db.read() as session:
        decision = mode_of(session, trust.policy, runbook, now)
        over = over_budget(session, trust.policy, runbook, len(planned.targets), now)
    shown: dict[str, Any] = {
        "mode": decision.mode, "mode_why": decision.reason, "mode_decided_by": decision.by,
        "targets": list(planned.targets),
    }  # fmt: skip
    if over is not None and decision.mode != "refuse":
        shown |= {"mode": "refuse", "mode_why": over.reason, "mode_decided_by": over.guard}
    return shown


def _graph(
    planned: Plan,
    context: dict[str, Any],
    executors: Mapping[str, Executor],
    batch: Batch | None,
    outputs: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The steps as they would go, in order: each decided (its `when`) and rendered (if
    it reads earlier steps) with what the steps before it are taken to have found."""
    seen: dict[str, dict[str, Any]] = {}
    graph = []
    for step in planned.steps:
        now = context | {"steps": seen}
        shown = {"kind": step.kind, "idempotent": step.idempotent, **step.spec}
        shown |= {k: v for k, v in (("id", step.id), ("when", step.when)) if v is not None}
        shown["phase"] = step.phase
        shown["runs"], shown["why"] = _runs(step, now)
        spec: dict[str, Any] | None = step.spec
        if step.deferred:
            try:
                spec = render_later(step.kind, step.spec, now)
                shown |= spec
            except (TemplateError, SinkError) as exc:
                spec = None
                shown["rendered"] = f"when it runs, reading earlier steps: {exc}"
        executor = executors.get(step.kind)
        if executor is not None and spec is not None:
            shown["would_act_on"] = executor.preview(spec)
        if batch is not None:
            shown["batch"] = _batching(step, executor, batch)
        if step.id is not None:
            ran = shown["runs"] is not False and step.phase != "on_failure"
            seen[step.id] = {"status": "succeeded" if ran else "skipped",
                             "outputs": dict(outputs.get(step.id, {})) if ran else {}}  # fmt: skip
        graph.append(shown)
    return graph


def _runs(step: PlannedStep, context: Mapping[str, Any]) -> tuple[bool | None, str]:
    """Whether the step would run, and why; None: not before the outputs it reads exist."""
    only_then = "only if a step fails" if step.phase == "on_failure" else None
    if step.when is None:
        return (None, only_then) if only_then else (True, "always")
    try:
        decision = decide(step.when, context)
    except TemplateError as exc:
        return None, f"decided when it runs: {exc}"
    if not decision.run:
        return False, decision.summary(step.when)
    said = f"when `{step.when}` is true"
    return (None, f"{only_then}, {said}") if only_then else (True, said)


def _batching(step: PlannedStep, executor: Executor | None, batch: Batch) -> str:
    """Whether the step would share its run, and with whom (the execution's view then
    names the batch that ran it)."""
    if not isinstance(executor, BatchExecutor):
        return f"runs alone: {step.kind} steps do not batch"
    if executor.batch_key(step.spec) is None:
        return "runs alone: its limit is a pattern, not host or group names"
    return (
        f"batched: one run with the other incidents of this runbook queued within "
        f"{batch.window:g}s (up to {batch.max}) whose step differs only in its limit"
    )

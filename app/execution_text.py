"""One execution in lines for a terminal (`remediator executions show`): what happened,
in the order a person reads it. Output tails are shown as stored (masked already)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from app.escalation.base import PHASE_NAMES
from app.views import AttemptView, ExecutionView, StepView

TAIL_LINES = 20


def describe_execution(view: ExecutionView) -> str:
    incident = view.incident
    lines = [
        f"execution {view.id}",
        f"  runbook   {view.runbook} ({view.trigger}, mode {view.mode}"
        + (f": {view.mode_reason}" if view.mode_reason else "")
        + ")",
        f"  status    {view.status}" + (f": {view.error}" if view.error else ""),
        f"  incident  {incident.get('source')} {incident.get('fingerprint')}: "
        f"{incident.get('title', '')}" + _severity(incident),
        f"  created   {_at(view.created_at)}   started {_at(view.started_at)}   "
        f"finished {_at(view.finished_at)}",
    ]
    if view.targets:
        lines.append(f"  targets   {', '.join(view.targets)}")
    if view.guard:
        lines.append(f"  guard     {view.guard}")
    if view.verify:
        lines.append(f"  verify    {view.verify}")
    lines.append("")
    lines.append(f"steps ({len(view.steps)})" if view.steps else "steps: none ran")
    for number, step in enumerate(view.steps, start=1):
        lines.extend(_step(number, step))
    if view.escalations:
        lines.append("")
        lines.append("escalations")
        for escalation in view.escalations:
            delivered = f" at {_at(escalation.delivered_at)}" if escalation.delivered_at else ""
            error = f" (last error: {escalation.last_error})" if escalation.last_error else ""
            lines.append(
                f"  {escalation.target}: {escalation.reason}, {escalation.status}{delivered}, "
                f"{escalation.attempts} attempt(s){error}"
            )
    if view.actions:
        lines.append("")
        lines.append("actions")
        lines.extend(
            f"  {_at(action.at)} {action.action} by {action.by}"
            + (f": {action.reason}" if action.reason else "")
            for action in view.actions
        )
    if view.attached:
        lines.append("")
        lines.append(f"attached webhooks ({len(view.attached)})")
        lines.extend(
            " ".join(
                filter(None, ("", _at(one.attached_at), one.event_type, one.phase, one.status))
            )
            for one in view.attached
        )
    return "\n".join(lines) + "\n"


def _named(step: StepView) -> str:
    said = [f"id {step.id}"] if step.id else []
    said += [PHASE_NAMES[step.phase].lstrip(", ")] if step.phase in PHASE_NAMES else []
    said += [f"when {step.when}"] if step.when else []
    return f" ({', '.join(said)})" if said else ""


def _step(number: int, step: StepView) -> list[str]:
    summary = (step.detail or {}).get("summary")
    lines = [
        f"  {number}. {step.kind}{_named(step)}: {step.status}"
        + (f" (rc {step.rc})" if step.rc is not None else "")
        + (f", {step.attempts} attempts" if step.attempts > 1 else ""),
    ]
    if summary:
        lines.append(f"     {summary}")
    if step.error:
        lines.append(f"     error: {step.error}")
    for name, value in (step.outputs or {}).items():
        lines.append(f"     output {name}: {json.dumps(value, ensure_ascii=False)}")
    attempts = step.attempt_log or []
    for attempt in attempts:
        lines.extend(_attempt(attempt, several=len(attempts) > 1))
    if not attempts and step.output_tail:
        lines.extend(_tail(step.output_tail))
    return lines


def _attempt(attempt: AttemptView, *, several: bool) -> list[str]:
    lines = []
    if several:
        lines.append(
            f"     attempt {attempt.number}: {attempt.status} in {attempt.duration_s:.1f} s"
            + (f": {attempt.error}" if attempt.error else "")
        )
    lines.extend(_tail(attempt.output_tail))
    return lines


def _tail(output: str) -> list[str]:
    kept = output.rstrip().splitlines()[-TAIL_LINES:]
    return [f"     | {line}" for line in kept]


def _severity(incident: dict[str, Any]) -> str:
    severity = incident.get("severity")
    return f" [{severity}]" if severity else ""


def _at(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"

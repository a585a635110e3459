"""The Notifier protocol and what every notifier is given: the whole story of one execution."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from app.errors import EscalationError
from app.fields.sinks import path_segment
from app.views import ExecutionView, StepView

# A step succeeded with something left for a human (StepResult.attention).
ATTENTION = "attention"
REASONS = {
    "failed": "remediation failed",
    "timed_out": "remediation timed out",
    "refused": "remediation was refused by a guard",
    "interrupted": "remediation was interrupted (the service stopped mid-step)",
    "rejected": "remediation was rejected by a human",
    "verify_failed": "remediation ran but did not fix it",
    "approval_timeout": "nobody approved the remediation in time",
    # A notice, not a failure: someone has to say yes before it runs.
    "waiting_approval": "remediation waits for approval",
    ATTENTION: "remediation succeeded, but a human must finish it",
    "incident_resolved": "the incident resolved after its remediation escalated",
}
# A success notice (`notify_on_success`), owed and delivered like an escalation.
REMEDIATED = "remediated"
# What a shadow run would have done (`notify_on_shadow`): a notice, never a page.
SHADOWED = "shadowed"
# What the runbook's diagnose steps found (`diagnose.post_to`): a notice on the incident.
DIAGNOSED = "diagnosed"
# The incident resolved on its platform after its remediation escalated: a notice to the
# targets that follow the incident (a ticket to close).
INCIDENT_RESOLVED = "incident_resolved"


class Progress(Protocol):
    """What of one escalation was already delivered, kept durably across retries."""

    def done(self, part: str) -> bool: ...

    def mark(self, part: str) -> None: ...


@dataclass(frozen=True)
class EscalationMessage:
    """Everything a human needs: the runbook, the incident, each attempt, a link."""

    escalation_id: str
    reason: str
    execution: ExecutionView
    runbook_description: str
    # The page's view of the execution, for people (the API answers them 401), and the
    # JSON of it beside, for tools.
    execution_url: str
    api_url: str
    progress: Progress
    # For an approval notice: who may approve, in words (four eyes: never the asker).
    approvers: str | None = None
    # For a success notice: resolve the incident too (`resolve_on_success`, and the
    # platform has not resolved it already).
    resolve: bool = False
    # For a diagnosis: the runbook's own headline for it (`diagnose.headline`), rendered.
    diagnosis: str | None = None
    # The runbook's own addressees, for targets that write to people (`recipients`).
    recipients: tuple[str, ...] = ()

    @property
    def headline(self) -> str:
        incident = self.execution.incident
        title = incident.get("title", "")
        if self.reason == DIAGNOSED:
            said = self.diagnosis or f"diagnosed by {self.execution.runbook} for “{title}”"
            return f"[remediator] {said}"
        if self.reason == REMEDIATED:
            return f"[remediator] remediated by {self.execution.runbook} in {self.took}: “{title}”"
        if self.reason == SHADOWED:
            found = "; ".join(
                str((step.detail or {}).get("summary", step.status))
                for step in self.execution.steps
            )
            return f"[remediator] would have run {self.execution.runbook} for “{title}”: {found}"
        why = REASONS.get(self.reason, self.reason)
        return f"[remediator] {why}: {self.execution.runbook} for “{title}”"

    @property
    def took(self) -> str:
        """From the execution's start (the incident's arrival) to its end, in words."""
        execution = self.execution
        end = execution.finished_at or execution.created_at
        seconds = max(0, round((end - execution.created_at).total_seconds()))
        return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min {seconds % 60} s"

    def as_json(self) -> dict[str, Any]:
        return {
            "type": {
                REMEDIATED: "remediation.succeeded",
                SHADOWED: "remediation.shadowed",
                DIAGNOSED: "remediation.diagnosed",
                INCIDENT_RESOLVED: "remediation.incident_resolved",
            }.get(self.reason, "remediation.escalated"),
            "escalation_id": self.escalation_id,
            "reason": self.reason,
            "summary": self.headline,
            "execution_url": self.execution_url,
            "api_url": self.api_url,
            "approvers": self.approvers,
            "runbook": {"name": self.execution.runbook, "description": self.runbook_description},
            "execution": self.execution.model_dump(mode="json"),
        }


_MAX_TAIL = 2000  # per attempt: platforms cap a whole event at a few hundred KB


def level(message: EscalationMessage, table: dict[str, str], *, notice: str, default: str) -> str:
    """The platform's word for the incident's severity; the approval notice (not a
    failure) always gets the platform's lowest, `notice`."""
    if message.reason == "waiting_approval":
        return notice
    return table.get(str(message.execution.incident.get("severity")), default)


def dedup_key(message: EscalationMessage) -> str:
    """One key per incident, for platforms that fold repeats into one alert."""
    incident = message.execution.incident
    key = f"remediator/{incident.get('source')}/{incident.get('fingerprint')}"
    if len(key) <= 255:
        return key
    return "remediator/" + hashlib.sha256(key.encode()).hexdigest()


def steps_detail(message: EscalationMessage) -> list[dict[str, Any]]:
    return [
        {
            "step": index + 1,
            "kind": step.kind,
            "id": step.id,
            "phase": step.phase,
            "status": step.status,
            # Why it did not run (its `when`, an earlier failure), or what it found.
            "summary": not_run_summary(step),
            "outputs": step.outputs,
            "attempts": [
                {
                    "attempt": attempt.number,
                    "status": attempt.status,
                    "exit_status": attempt.rc,
                    "duration_s": round(attempt.duration_s, 3),
                    "summary": attempt_summary(attempt.detail),
                    # Where the step ran, when that is an engine with its own page for it.
                    "url": (attempt.detail or {}).get("url"),
                    "output_tail": attempt.output_tail[-_MAX_TAIL:],
                    "error": attempt.error,
                }
                for attempt in step.attempt_log
            ],
        }
        for index, step in enumerate(message.execution.steps)
    ]


def step_label(index: int, step: StepView) -> str:
    """`Step 3 (ansible, on failure)`: the step as every target names it."""
    return f"Step {index + 1} ({step.kind}{PHASE_NAMES.get(step.phase, '')})"


# How a step that is not one of the runbook's `steps` is named beside its kind.
PHASE_NAMES = {"diagnose": ", diagnose", "on_failure": ", on failure"}


def outputs_text(step: StepView) -> str | None:
    """What the step found (its outputs), as JSON text: data, escaped by each target."""
    if not step.outputs:
        return None
    return json.dumps(step.outputs, ensure_ascii=False, sort_keys=True)[:_MAX_TAIL]


def not_run_summary(step: StepView) -> str | None:
    """Why a step that made no attempt did not run (its `when`, an earlier failure), as
    its detail says; None for a step that ran."""
    return None if step.attempt_log else attempt_summary(step.detail)


def attempt_summary(detail: dict[str, Any] | None) -> str | None:
    """What the executor found, in one line (terraform: the version and its plan)."""
    summary = (detail or {}).get("summary")
    return str(summary) if summary else None


def note_text(message: EscalationMessage) -> str:
    lines = [message.headline, f"Execution: {message.execution_url}",
             f"API: {message.api_url}"]  # fmt: skip
    if message.approvers:
        lines.append(f"May approve: {message.approvers}")
    for index, step in enumerate(message.execution.steps):
        label = step_label(index, step)
        if skipped := not_run_summary(step):
            lines.append(f"{label}: {skipped}")
        for attempt in step.attempt_log:
            lines.append(
                f"{label} attempt {attempt.number}: {attempt.status}, exit {attempt.rc}, "
                f"{round(attempt.duration_s, 3)}s"
            )
            if summary := attempt_summary(attempt.detail):
                lines.append(f"  {summary}")
            if url := (attempt.detail or {}).get("url"):
                lines.append(f"  {url}")
        if found := outputs_text(step):
            lines.append(f"  found: {found}")
    if message.execution.error:
        lines.append(f"Error: {message.execution.error}")
    return "\n".join(lines)[:25000]


def findings(message: EscalationMessage) -> list[str]:
    """What the diagnose steps found, a line each: their outputs, or the end of their
    output when they have none."""
    lines = []
    for step in message.execution.steps:
        if step.phase != "diagnose":
            continue
        name = step.id or step.kind
        found = outputs_text(step)
        if found is None:
            tail = step.output_tail.strip().splitlines()[-_FINDING_LINES:]
            found = " | ".join(tail) if tail else "(no output)"
        failed = f" ({step.status}: {step.error})" if step.status != "succeeded" else ""
        lines.append(f"{name}{failed}: {found}")
    return lines


_FINDING_LINES = 5


def notice_text(message: EscalationMessage) -> str:
    """A notice for the incident's own timeline: a diagnosis, a success, or the incident
    resolving after its remediation escalated."""
    if message.reason == INCIDENT_RESOLVED:
        incident = message.execution.incident
        return (
            f"The incident resolved on {incident.get('source')} after {message.execution.runbook} "
            f"ended {message.execution.status}.\nExecution: {message.execution_url}"
        )
    if message.reason != DIAGNOSED:
        return success_text(message)
    lines = [message.headline, *findings(message), f"Execution: {message.execution_url}"]
    return "\n".join(lines)[:25000]


def story(message: EscalationMessage) -> str:
    """What a target that writes text is told: a notice's own text (a success, a
    diagnosis), else the whole escalation."""
    notices = (REMEDIATED, DIAGNOSED, INCIDENT_RESOLVED)
    return notice_text(message) if message.reason in notices else note_text(message)


def success_text(message: EscalationMessage) -> str:
    """A success notice, for the incident's own timeline: what ran, how long it took,
    what it found, and where the whole story is."""
    execution = message.execution
    summaries = [
        summary
        for step in execution.steps
        for attempt in step.attempt_log[-1:]
        if (summary := attempt_summary(attempt.detail))
    ]
    done = summaries[-1] if summaries else f"{len(execution.steps)} step(s) succeeded"
    checked = " and verified" if execution.verify else ""
    lines = [
        f"Remediated automatically by {execution.runbook} in {message.took}{checked}: {done}",
        *(f"Diagnosed: {line}" for line in findings(message)),
        f"Execution: {message.execution_url}",
    ]
    return "\n".join(lines)[:25000]


def own_id(
    message: EscalationMessage, source: str, label: str, form: re.Pattern[str]
) -> str | None:
    """The id, as one URL path segment, of the platform object this execution's incident
    came from (a PagerDuty incident, an Opsgenie alert): its `label`, when the incident
    came from `source` and the label has the platform's id `form`; else None."""
    incident = message.execution.incident
    if incident.get("source") != source:
        return None
    return path_segment((incident.get("labels") or {}).get(label), form) or None


def once(progress: Progress, part: str, send: Callable[[], None]) -> None:
    """`send` unless an earlier attempt of this escalation already did it."""
    if not progress.done(part):
        send()
        progress.mark(part)


class Notifier(Protocol):
    name: str
    # Keeps something that follows the incident (a ticket): told when the incident
    # resolves on its platform after its remediation escalated.
    follows_incident: bool

    def deliver(self, message: EscalationMessage, *, client: httpx.Client) -> None:
        """Deliver once; raise EscalationError (retryable or not) when it did not land.
        A delivery of several calls wraps each in `once(message.progress, ...)`, so a
        retry resumes where the last attempt stopped."""


# Answers that say this request can never succeed as sent (malformed, refused
# credentials, gone for good): given up at once. Any other answer (a 404 from a load
# balancer mid-deploy, 409, 429, 5xx) is retried with backoff until the give-up window.
NEVER_SUCCEEDS = frozenset({400, 401, 403, 410, 422})


def check_response(response: httpx.Response, target: str) -> None:
    """2xx is delivered; 400/401/403/410/422 are given up; anything else is retried."""
    if response.is_success:
        return
    status = response.status_code
    detail = f"{target} answered {status}: {response.text[:300]}"
    if status in NEVER_SUCCEEDS:
        raise EscalationError(detail, retryable=False, status=status)
    raise EscalationError(detail, retry_after_s=_retry_after(response), status=status)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def post_json(
    client: httpx.Client,
    target: str,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    timeout_s: float,
    method: str = "POST",
) -> None:
    _sent(client, target, method, url, content=content, timeout_s=timeout_s,
          headers={"content-type": "application/json", **headers})  # fmt: skip


def call_json(
    client: httpx.Client,
    target: str,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    timeout_s: float,
    content: bytes | None = None,
) -> Any:
    """One call to a target's JSON API: its answer's JSON (None when it has no body)."""
    if content is not None:
        headers = {"content-type": "application/json", **headers}
    response = _sent(client, target, method, url, content=content, headers=headers,
                     timeout_s=timeout_s)  # fmt: skip
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise EscalationError(f"{target} answered {response.status_code} without JSON") from None


def _sent(
    client: httpx.Client,
    target: str,
    method: str,
    url: str,
    *,
    content: bytes | None,
    headers: dict[str, str],
    timeout_s: float,
) -> httpx.Response:
    """The answer to one call, once it is a 2xx; else raised as `check_response` says."""
    try:
        response = client.request(method, url, content=content, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise EscalationError(f"{target} unreachable: {type(exc).__name__}: {exc}") from exc
    check_response(response, target)
    return response

"""A step just before it runs, in the write that marks it running: skipped when its
`when` is false, rendered when its templates read earlier steps' outputs, or not run at
all (an earlier step failed, or it is an `on_failure` step and none did).

What earlier steps found is data, like a payload's values: it enters a template through
the same sinks (a host must be in the inventory, a path segment is percent-encoded), and
a `when` only compares it. A `when` that cannot be decided, or a render that fails, fails
the step like any failure (the runbook's `on_failure` steps then run); in a shadow run,
whose dry runs may not produce every output, the step is skipped saying why.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from app.errors import SinkError, TemplateError
from app.executions.lifecycle import await_approval, owe_diagnosis
from app.executions.steps import Pending, end_at_step
from app.runbooks.decisions import decide
from app.runbooks.plan import render_later
from app.store.models import Execution, ExecutionStatus, StepRow


def prepare_step(
    session: Session, *, execution_id: str, pending: Pending
) -> Pending | ExecutionStatus | None:
    """The step to run now, marked running (its spec rendered, if it was not yet); None
    when it does not run and its execution goes on; or the status the execution ended in
    because the step could not be decided or rendered."""
    row = session.get_one(StepRow, pending.step_id)
    execution = session.get_one(Execution, execution_id)
    if row.status != "pending" or (row.phase == "on_failure" and execution.failed_as is None):
        return None
    now = datetime.now(UTC)
    if row.phase != "diagnose":
        # Past the diagnostics: their findings are owed now, and a run that needs a
        # human's yes waits for it here, having looked first.
        owe_diagnosis(execution, now)
        if execution.mode == "approve" and not any(
            action.action == "approve" for action in execution.actions
        ):
            return await_approval(execution, now)
    if row.when is not None or row.deferred:
        try:
            context = step_context(execution)
            if row.when is not None:
                decision = decide(row.when, context)
                if not decision.run:
                    row.status, row.finished_at = "skipped", now
                    row.detail = {"summary": decision.summary(row.when), "when": row.when,
                                  "saw": decision.saw}  # fmt: skip
                    return None
            if row.deferred:
                row.spec, row.deferred = render_later(row.kind, row.spec, context), False
        except (TemplateError, SinkError) as exc:
            if execution.mode == "shadow":
                row.status, row.finished_at = "skipped", now
                row.detail = {"summary": f"skipped: undecided in a dry run: {exc}"}
                return None
            row.error = str(exc)
            return end_at_step(execution, row, "failed", str(exc), now)
    row.status, row.started_at = "running", row.started_at or now
    return replace(pending, spec=row.spec)


def step_context(execution: Execution) -> dict[str, Any]:
    """What templates and `when`s see now: the incident and runbook as when it arrived,
    and each earlier step with an id, by its id: how it ended and what it found."""
    steps = {
        row.ref: {"status": row.status, "outputs": row.outputs or {}}
        for row in execution.steps
        if row.ref is not None
    }
    return dict(execution.context or {}) | {"steps": steps}

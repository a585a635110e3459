"""Work whose worker died: requeued when no step had started, else interrupted + escalated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.flows import recover_expired
from app.store.models import Execution
from tests.conftest import alert, ansible_step


def test_expired_leases_are_recovered(make_api, recorder, tmp_path) -> None:
    rb = {
        "name": "w",
        "match": {"all": [{"field": "labels.alertname", "equals": "W"}]},
        "steps": [ansible_step("write.yml", message="m", host="h", dest=str(tmp_path / "o"))],
        "escalate": ["webhook"],
    }
    api = make_api([rb], workers=1, escalation={"webhook": {"url": recorder.url}})
    services = api.client.app.state.services
    done = api.wait(api.alertmanager(alert("W", fingerprint="a")).json()["executions"][0])
    assert done["status"] == "succeeded"
    # Simulate two executions claimed by a worker that then died: one before its first
    # step started, one in the middle of a step.
    services.stopping.set()  # keep the live workers out of the way
    past = datetime.now(UTC) - timedelta(minutes=5)
    ids = [api.alertmanager(alert("W", fingerprint=f)).json()["executions"][0] for f in ("b", "c")]
    with services.db.write() as session:
        for execution_id, step_status in zip(ids, ("pending", "running"), strict=True):
            execution = session.get_one(Execution, execution_id)
            execution.status, execution.claimed_by, execution.lease_expires_at = (
                "running",
                "dead:1",
                past,
            )
            execution.steps[0].status = step_status
    assert sorted(recover_expired(services)) == sorted(ids)
    requeued, interrupted = api.execution(ids[0]), api.execution(ids[1])
    assert requeued["status"] == "queued"
    assert interrupted["status"] == "interrupted" and "dead:1" in interrupted["error"]
    assert interrupted["steps"][0]["status"] == "interrupted"
    assert [e["reason"] for e in interrupted["escalations"]] == ["interrupted"]

"""/metrics after real webhooks, scraped and parsed with Prometheus' own text parser."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.instant import instant_step
from tests.support.service import Api, alert, ansible_step, runbook


def scrape(api: Any, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = api.client.get("/metrics", headers=headers or api.auth)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def test_metrics_count_what_the_service_did(
    make_api: Callable[..., Api], tmp_path: Path, database_url: str, instant_kind: None
) -> None:
    dest = tmp_path / "runs"
    # The instant kind: what is counted is the subject here, not Ansible.
    slow = instant_step(dest, pause=3)
    api = make_api(
        [runbook("slow", "Slow", slow, concurrency="one-at-a-time"),
         runbook("broken", "Broken", instant_step(tmp_path / "m", fail=True))],
        database_url=database_url,
    )  # fmt: skip
    payload = alert("Slow", fingerprint="a")
    first = api.alertmanager(payload).json()["executions"][0]
    second = api.alertmanager(alert("Slow", fingerprint="b")).json()["executions"][0]
    api.wait(first, until=lambda e: e["status"] == "running")
    assert api.alertmanager(payload).status_code == 200  # a redelivery
    assert api.alertmanager(alert("Slow"), token="wrong").status_code == 401
    assert api.client.post("/webhooks/made-up", json={}).status_code == 404

    during = scrape(api)
    assert during[("remediator_queue_depth", ())] == 1  # the second waits for the key
    assert during[("remediator_queue_oldest_age_seconds", ())] > 0
    assert during[("remediator_database_up", ())] == 1

    failed = api.alertmanager(alert("Broken", fingerprint="c")).json()["executions"][0]
    for execution_id in (first, second, failed):
        api.wait(execution_id)
    after = scrape(api)

    def value(name: str, **labels: str) -> float:
        return after.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("remediator_webhooks_total", source="alertmanager", code="202") == 3
    assert value("remediator_webhooks_total", source="alertmanager", code="200") == 1
    assert value("remediator_webhooks_total", source="alertmanager", code="401") == 1
    assert value("remediator_webhooks_total", source="unknown", code="404") == 1
    assert value("remediator_webhook_auth_failures_total", source="alertmanager",
                 reason="unauthenticated") == 1  # fmt: skip
    assert value("remediator_incidents_total", source="alertmanager", status="firing") == 3
    assert value("remediator_executions", runbook="slow", status="succeeded") == 2
    assert value("remediator_executions", runbook="broken", status="failed") == 1
    assert value("remediator_step_duration_seconds_count", kind="instant", status="succeeded") == 2
    assert value("remediator_step_duration_seconds_sum", kind="instant", status="succeeded") > 6
    assert value("remediator_step_duration_seconds_count", kind="instant", status="failed") == 1
    assert value("remediator_queue_depth") == 0
    assert value("remediator_queue_oldest_age_seconds") == 0
    assert value("remediator_runbooks_loaded") == 2


def test_metrics_want_a_token_unless_configured_open(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    api = make_api([runbook("r", "R", ansible_step("write.yml"))])
    assert api.client.get("/metrics").status_code == 401
    assert api.client.get("/metrics", headers={"authorization": "Bearer nope"}).status_code == 401
    open_api = make_api([runbook("r", "R", ansible_step("write.yml"))],
                        metrics_require_token=False, database_url="sqlite:///other.db")  # fmt: skip
    assert open_api.client.get("/metrics").status_code == 200

"""Jira, ServiceNow and email through a real `remediator serve`: one failed remediation
reaches all three in their documented shapes, once each, and the incident resolving
closes both tickets; killed with -9 before a target came back, the restarted service
still delivers each once."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.support.instant import instant_step
from tests.support.servers import Server, start_server
from tests.support.service import AM_TOKEN, alert, write_config
from tests.support.smtp import PASSWORD as SMTP_PASSWORD
from tests.support.smtp import USER as SMTP_USER
from tests.support.smtp import Mailbox, free_port, smtp_server
from tests.support.standins.jira import API_TOKEN, EMAIL, JiraStandIn
from tests.support.standins.servicenow import PASSWORD, USERNAME, ServiceNowStandIn
from tests.support.tls import self_signed, server_context

pytestmark = [pytest.mark.server]


@pytest.fixture
def targets(
    tmp_path: Path,
) -> Iterator[tuple[JiraStandIn, ServiceNowStandIn, Mailbox, Controller, Path]]:
    jira, snow, mailbox = (
        JiraStandIn(link_prefix="http://remediator.test/"),
        ServiceNowStandIn(),
        Mailbox(),
    )
    cert, key = self_signed(tmp_path)
    jira.start()
    snow.start()
    smtp = smtp_server(mailbox, free_port(), server_context(cert, key), implicit=False)
    yield jira, snow, mailbox, smtp, cert
    jira.stop()
    snow.stop()
    smtp.stop()


def config(tmp_path: Path, jira: JiraStandIn, snow: ServiceNowStandIn, smtp: Controller,
           ca: Path) -> Path:  # fmt: skip
    escalation: dict[str, Any] = {
        "jira": {"url": jira.base, "email": EMAIL, "api_token": API_TOKEN, "project": "OPS"},
        "servicenow": {"url": snow.base, "username": USERNAME, "password": PASSWORD},
        "email": {"host": "localhost", "port": smtp.port, "security": "starttls",
                  "username": SMTP_USER, "password": SMTP_PASSWORD,
                  "from": "remediator@example.com", "to": ["oncall@example.com"],
                  "ca_file": str(ca)},
    }  # fmt: skip
    runbook = {"name": "fails", "match": {"all": [{"field": "labels.alertname", "equals": "Fail"}]},
               "steps": [instant_step(tmp_path / "f", fail=True)],
               "escalate": ["jira", "servicenow", "email"]}  # fmt: skip
    return write_config(tmp_path, [runbook], escalation=escalation, escalation_max_backoff_s=0.5)


def send(server: Server, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base}/webhooks/alertmanager", json=payload, timeout=30,
                      headers={"Authorization": f"Bearer {AM_TOKEN}"})  # fmt: skip


def wait_for(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_a_failure_reaches_every_new_target_once_and_a_resolve_closes_the_tickets(
    tmp_path: Path, targets: tuple[JiraStandIn, ServiceNowStandIn, Mailbox, Controller, Path]
) -> None:
    jira, snow, mailbox, smtp, ca = targets
    server = start_server(config(tmp_path, jira, snow, smtp, ca), instant=True)
    try:
        assert send(server, alert("Fail", fingerprint="fp-e2e")).status_code == 202
        wait_for(lambda: jira.issues and snow.records and mailbox.messages, "all three told")
        send(server, alert("Fail", status="resolved", fingerprint="fp-e2e"))
        wait_for(lambda: jira.issues[0].status == "Done" and snow.records[0]["state"] == "6",
                 "both tickets closed")  # fmt: skip
    finally:
        assert server.terminate() in (0, -signal.SIGTERM)
    assert (len(jira.issues), len(snow.records), len(mailbox.messages)) == (1, 1, 1)
    assert jira.violations == [] and snow.violations == []


def test_killed_while_a_target_is_down_the_restarted_service_delivers_once(
    tmp_path: Path, targets: tuple[JiraStandIn, ServiceNowStandIn, Mailbox, Controller, Path]
) -> None:
    jira, snow, mailbox, smtp, ca = targets
    path = config(tmp_path, jira, snow, smtp, ca)
    jira.stop()
    server = start_server(path, instant=True)
    assert send(server, alert("Fail", fingerprint="fp-kill")).status_code == 202
    wait_for(lambda: snow.records and mailbox.messages, "the targets that are up told")
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=30)
    jira.start()
    again = start_server(path, name="again", instant=True)
    try:
        wait_for(lambda: jira.issues, "jira told after the restart")
        time.sleep(1.5)  # a second delivery to any of them would land within this
    finally:
        assert again.terminate() in (0, -signal.SIGTERM)
    assert (len(jira.issues), len(snow.records), len(mailbox.messages)) == (1, 1, 1)
    assert len(snow.records[0]["work_notes"]) == 0 and jira.violations == []

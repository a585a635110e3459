"""The email target against a real SMTP server on loopback (aiosmtpd): STARTTLS with a
certificate the test makes and AUTH, implicit TLS, a server that refuses the recipient,
and one that is down for a while; the text and HTML parts carry the story, with payload
text escaped in the HTML and unable to add a header."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.support.instant import instant_step
from tests.support.service import Api, alert, delivered, runbook
from tests.support.smtp import PASSWORD, USER, Mailbox, free_port, smtp_server
from tests.support.tls import self_signed, server_context

HOSTILE = 'x\r\nBcc: victim@example.com\r\n<img src=https://evil.example/p.png> <a href="https://evil.example">y</a>'


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    cert, key = self_signed(tmp_path)
    return cert, server_context(cert, key)


def start(make_api: Any, tmp_path: Path, ca: Path, port: int, security: str) -> Api:
    target = {"host": "localhost", "port": port, "security": security, "username": USER,
              "password": PASSWORD, "from": "remediator@example.com",
              "to": ["oncall@example.com"], "ca_file": str(ca), "timeout_s": 5}  # fmt: skip
    runbooks = [runbook("fails", "Fail", instant_step(tmp_path / "f", fail=True),
                        escalate=["email"], recipients=["db-team@example.com"]),
                runbook("fixes", "Fix", instant_step(tmp_path / "ok", line="ok"),
                        notify_on_success=["email"])]  # fmt: skip
    api: Api = make_api(runbooks, escalation={"email": target}, escalation_max_backoff_s=0.5)
    return api


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    yield Mailbox()


@pytest.mark.parametrize("security", ["starttls", "tls"])
@pytest.mark.usefixtures("instant_kind")
def test_a_failed_remediation_is_mailed_once_with_text_and_escaped_html(
    make_api: Any,
    tmp_path: Path,
    certificate: tuple[Path, ssl.SSLContext],
    mailbox: Mailbox,
    security: str,
) -> None:
    ca, context = certificate
    port = free_port()
    server = smtp_server(mailbox, port, context, implicit=security == "tls")
    try:
        api = start(make_api, tmp_path, ca, port, security)
        answer = api.alertmanager(alert("Fail", instance=HOSTILE))
        final = delivered(api, answer.json()["executions"][0])
        assert final["escalations"][0]["status"] == "delivered", final["escalations"]
    finally:
        server.stop()
    [(message, rcpt)] = mailbox.messages
    assert sorted(rcpt) == ["db-team@example.com", "oncall@example.com"]
    assert "victim" not in str(message["To"]) and message["Bcc"] is None
    assert "\n" not in str(message["Subject"]) and "remediation failed" in str(message["Subject"])
    assert message["Message-ID"] == f"<{final['escalations'][0]['id']}@remediator>"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert (
        final["id"] in text.get_content() and "<img src=https://evil.example" in text.get_content()
    )
    page = html.get_content()
    assert "<img" not in page.replace("&lt;img", "") and 'href="https://evil' not in page
    assert "&lt;img src=https://evil.example/p.png&gt;" in page
    assert page.count("<a ") == 1 and final["id"] in page


@pytest.mark.usefixtures("instant_kind")
def test_a_success_notice_is_mailed_too(
    make_api: Any, tmp_path: Path, certificate: tuple[Path, ssl.SSLContext], mailbox: Mailbox
) -> None:
    ca, context = certificate
    port = free_port()
    server = smtp_server(mailbox, port, context, implicit=False)
    final = mailed(make_api, tmp_path, ca, server, port, "Fix")
    assert final["escalations"][0]["reason"] == "remediated", final["escalations"]
    [(message, rcpt)] = mailbox.messages
    assert rcpt == ["oncall@example.com"] and "remediated by fixes" in str(message["Subject"])
    text = message.get_body(("plain",))
    assert text is not None and "Remediated automatically by fixes" in text.get_content()


@pytest.mark.usefixtures("instant_kind")
def test_a_refused_recipient_is_given_up_at_once(
    make_api: Any, tmp_path: Path, certificate: tuple[Path, ssl.SSLContext], mailbox: Mailbox
) -> None:
    ca, context = certificate
    mailbox.refuse_recipients = True
    port = free_port()
    given_up_at_once(make_api, tmp_path, ca, smtp_server(mailbox, port, context, implicit=False),
                     port, mailbox, "550")  # fmt: skip


@pytest.mark.usefixtures("instant_kind")
def test_a_server_down_for_a_while_gets_the_message_once_when_it_is_back(
    make_api: Any, tmp_path: Path, certificate: tuple[Path, ssl.SSLContext], mailbox: Mailbox
) -> None:
    ca, context = certificate
    port = free_port()
    api = start(make_api, tmp_path, ca, port, "starttls")
    execution_id = api.alertmanager(alert("Fail")).json()["executions"][0]
    api.wait(execution_id, until=lambda e: bool(e["escalations"])
             and e["escalations"][0]["attempts"] >= 3)  # fmt: skip
    server = smtp_server(mailbox, port, context, implicit=False)
    try:
        final = delivered(api, execution_id)
    finally:
        server.stop()
    assert final["escalations"][0]["status"] == "delivered"
    assert len(mailbox.messages) == 1


@pytest.mark.usefixtures("instant_kind")
def test_a_server_that_offers_no_starttls_gets_no_password(
    make_api: Any, tmp_path: Path, certificate: tuple[Path, ssl.SSLContext], mailbox: Mailbox
) -> None:
    port = free_port()
    server = Controller(mailbox, hostname="127.0.0.1", port=port)  # no TLS at all
    server.start()
    given_up_at_once(make_api, tmp_path, certificate[0], server, port, mailbox, "STARTTLS")


def mailed(make_api: Any, tmp_path: Path, ca: Path, server: Controller, port: int,
           name: str) -> dict[str, Any]:  # fmt: skip
    """The execution an alert `name` starts, once its first notice was delivered or given
    up through `server` (stopped after)."""
    try:
        api = start(make_api, tmp_path, ca, port, "starttls")
        return delivered(api, api.alertmanager(alert(name)).json()["executions"][0])
    finally:
        server.stop()


def given_up_at_once(make_api: Any, tmp_path: Path, ca: Path, server: Controller, port: int,
                     mailbox: Mailbox, why: str) -> None:  # fmt: skip
    """A failure mailed through `server` is given up after one attempt, saying `why`."""
    [escalation] = mailed(make_api, tmp_path, ca, server, port, "Fail")["escalations"]
    assert (escalation["status"], escalation["attempts"]) == ("gave_up", 1)
    assert why in escalation["last_error"] and mailbox.messages == []


def test_plain_smtp_is_for_loopback_only_and_addresses_are_bare() -> None:
    from app.config.sections import EmailTarget

    with pytest.raises(ValueError, match="ca_file: no file"):
        EmailTarget.model_validate({"host": "smtp.example.com", "from": "r@example.com",
                                    "ca_file": "/nonexistent/ca.pem"})  # fmt: skip
    with pytest.raises(ValueError, match="localhost"):
        EmailTarget.model_validate({"host": "smtp.example.com", "security": "none",
                                    "from": "r@example.com"})  # fmt: skip
    with pytest.raises(ValueError, match="name@domain|pattern"):
        EmailTarget.model_validate({"host": "smtp.example.com", "from": "r@example.com",
                                    "to": ["Someone <a@b.c>, x@y.z"]})  # fmt: skip

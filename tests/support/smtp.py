"""A real SMTP server on loopback for the email target's tests (aiosmtpd): STARTTLS or
implicit TLS with the test's certificate, AUTH, and a mailbox of what it took."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "remediator", "smtp-password-0123"


@dataclass
class Mailbox:
    """What the server took: each message, and its envelope recipients."""

    messages: list[tuple[EmailMessage, list[str]]] = field(default_factory=list)
    refuse_recipients: bool = False

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          options: list[str]) -> str:  # fmt: skip
        if self.refuse_recipients:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((parsed, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def smtp_server(
    mailbox: Mailbox, port: int, context: ssl.SSLContext, *, implicit: bool
) -> Controller:
    if implicit:
        # The whole session is TLS; aiosmtpd counts only STARTTLS as TLS for AUTH.
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, ssl_context=context,
                                authenticator=_authenticator, auth_require_tls=False)  # fmt: skip
    else:
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=context,
                                require_starttls=True, authenticator=_authenticator,
                                auth_require_tls=True)  # fmt: skip
    controller.start()
    return controller

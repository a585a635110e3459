"""Email: a message per escalation and success notice, over SMTP with STARTTLS (587),
implicit TLS (465) or, to a relay on this machine only, neither; logged in when
`username` is set. Sent to the target's `to` and the runbook's `recipients`.

The message is text and HTML: the text part is the story as every target tells it; in
the HTML part all of it is escaped (payload text cannot add markup, links or images),
the one link being the execution's page, the service's own URL. The subject is one line
(a payload's line breaks cannot add headers). Its Message-ID is the escalation's, so a
retry after an unclear end of the conversation is recognisable as the same message.

Errors: a connection that fails, times out or is dropped, and 4xx replies, are retried;
a 5xx reply (a refused recipient, sender or message, failed authentication) and a server
that offers no STARTTLS are given up at once.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

import httpx

from app.config.sections import EmailTarget
from app.errors import EscalationError
from app.escalation.base import EscalationMessage, once, story


def subject(message: EscalationMessage) -> str:
    return " ".join(message.headline.split())[:200]


def body_text(message: EscalationMessage) -> str:
    return f"{story(message)}\n"


def body_html(message: EscalationMessage) -> str:
    """The story, escaped, under its headline, with a link to the execution."""
    url = html.escape(message.execution_url, quote=True)
    return (
        "<!doctype html><html><body>"
        f"<h3>{html.escape(subject(message))}</h3>"
        f'<p><a href="{url}">Execution in remediator</a></p>'
        f'<pre style="white-space: pre-wrap">{html.escape(body_text(message))}</pre>'
        "</body></html>"
    )


class EmailNotifier:
    name = "email"
    follows_incident = False

    def __init__(self, config: EmailTarget) -> None:
        self.config = config

    def deliver(self, message: EscalationMessage, *, client: httpx.Client) -> None:  # noqa: ARG002
        recipients = sorted({*self.config.to, *message.recipients})
        if not recipients:
            raise EscalationError("email: nobody to send to (`to`, or the runbook's "
                                  "`recipients`)", retryable=False)  # fmt: skip
        once(message.progress, "sent", lambda: self._send(self._message(message, recipients)))

    def _message(self, message: EscalationMessage, recipients: list[str]) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = subject(message)
        mail["From"] = self.config.from_
        mail["To"] = ", ".join(recipients)
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = f"<{message.escalation_id}@remediator>"
        mail["X-Remediator-Execution"] = message.execution.id
        mail.set_content(body_text(message))
        mail.add_alternative(body_html(message), subtype="html")
        return mail

    def _send(self, mail: EmailMessage) -> None:
        config = self.config
        try:
            context = ssl.create_default_context()
            if config.ca_file is not None:
                context.load_verify_locations(cafile=config.ca_file)
            smtp: smtplib.SMTP
            if config.security == "tls":
                smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout_s,
                                        context=context)  # fmt: skip
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
            with smtp:
                if config.security == "starttls":
                    smtp.starttls(context=context)
                if config.username is not None and config.password is not None:
                    smtp.login(config.username, config.password.get_secret_value())
                smtp.send_message(mail)
        except smtplib.SMTPNotSupportedError as exc:
            raise EscalationError(f"email: {config.host} {exc}", retryable=False) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            later = all(400 <= code < 500 for code in codes)
            raise EscalationError(f"email: recipients refused: {codes}", retryable=later) from exc
        except smtplib.SMTPResponseException as exc:
            said = exc.smtp_error
            reply = (said.decode(errors="replace") if isinstance(said, bytes) else str(said))[:200]
            raise EscalationError(f"email: {config.host} answered {exc.smtp_code} {reply}",
                                  retryable=exc.smtp_code < 500) from exc  # fmt: skip
        except (smtplib.SMTPException, OSError) as exc:
            raise EscalationError(f"email: {config.host}:{config.port} unreachable: "
                                  f"{type(exc).__name__}: {exc}") from exc  # fmt: skip

"""The error tree. Only `app.api` and `app.cli` turn these into HTTP answers or exit codes.

RemediatorError
├── ConfigError                 the configuration cannot be used (start-up refuses)
├── SourceError                 a webhook cannot be accepted
│   ├── UnknownSource           no such platform, or not configured here (404)
│   ├── Unauthenticated         missing or wrong token/signature (401)
│   │   ├── InvalidSignature
│   │   └── StaleTimestamp      outside the replay window
│   ├── PayloadTooLarge         (413)
│   │   └── TooManyIncidents    more incidents in one call than max_incidents_per_delivery
│   ├── BodyTimeout             the body did not arrive within body_timeout_s (408)
│   └── UnsupportedPayload      not the platform's shape (422)
├── RunbookError                runbook files that do not load (each problem has file:line)
│   └── TemplateError           a template that does not render for an incident
│       └── SinkError           a payload value of the wrong shape for its field (app.fields.sinks)
├── ExecutorError               the machinery that runs a step broke (not: the step failed)
│   └── VersionError            a terraform version that `revert_to` names does not exist
├── EscalationError             a notification was not delivered (retryable unless said)
├── BadRequest                  a request parameter this API cannot use (400)
├── NotFound                    (404)
├── Unauthorized                missing or wrong API token (401)
├── Forbidden                   the identity's roles do not allow this (403)
├── IdentityMismatch            a body's `by` names someone else than the caller (422)
└── Conflict                    an action the execution's state does not allow (409)
"""

from __future__ import annotations

from dataclasses import dataclass


class RemediatorError(Exception):
    """Root of every error this service raises on purpose."""


class ConfigError(RemediatorError):
    pass


class SourceError(RemediatorError):
    pass


class UnknownSource(SourceError):
    pass


class Unauthenticated(SourceError):
    pass


class InvalidSignature(Unauthenticated):
    pass


class StaleTimestamp(Unauthenticated):
    pass


class ProofUnavailable(SourceError):
    """The platform's keys (a signing certificate, a JWKS) could not be fetched now: the
    call is neither refused nor taken, and the platform retries it."""


class PayloadTooLarge(SourceError):
    pass


class TooManyIncidents(PayloadTooLarge):
    pass


class BodyTimeout(SourceError):
    pass


class UnsupportedPayload(SourceError):
    pass


@dataclass(frozen=True)
class RunbookProblem:
    """One thing wrong with a runbook file, located for the author."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        at = f" at {self.path}" if self.path else ""
        return f"{where}:{at} {self.message}"


class RunbookError(RemediatorError):
    def __init__(self, problems: list[RunbookProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class TemplateError(RemediatorError):
    pass


class SinkError(TemplateError):
    """A payload value that its field's type does not allow (an `@file` in `limit`, a
    host in a URL): the step fails before anything runs."""


class ExecutorError(RemediatorError):
    pass


class VersionError(ExecutorError):
    pass


class EscalationError(RemediatorError):
    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after_s: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        # The target's HTTP answer, when it gave one.
        self.status = status


class BadRequest(RemediatorError):
    pass


class NotFound(RemediatorError):
    pass


class Unauthorized(RemediatorError):
    pass


class Forbidden(RemediatorError):
    """A known identity asking for what its role, or the four-eyes rule, does not allow."""


class IdentityMismatch(RemediatorError):
    pass


class Conflict(RemediatorError):
    """The action does not fit the execution's state (approve one that is not waiting)."""

"""Log lines as JSON (or text), each carrying the context of the work it is part of.

`log_context(execution_id=..., runbook=...)` binds fields for everything logged inside
it, in this thread or task (a context variable, which the thread pool that runs
requests copies along). The message, any exception and every field are redacted of the
configuration's secrets, so a secret that reached any of them is masked.

The formatter is written here rather than taken from a library: the whole job is one
`json.dumps` of the record's fields, and the redaction has to see the text before it is
encoded.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal

from app.redaction import redact

LogFormat = Literal["json", "text"]

_NOTHING: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("remediator_log_context", default=_NOTHING)


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add `fields` (those not None) to every line logged inside this block."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


class _Formatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str], style: LogFormat) -> None:
        super().__init__()
        self.secrets = sorted(set(secrets), key=len, reverse=True)
        self.style = style

    def format(self, record: logging.LogRecord) -> str:
        context = {k: redact(v, self.secrets) for k, v in _context.get().items()}
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        # Before encoding: a secret the message already holds JSON-escaped would be
        # escaped twice in the line, past what `redact` recognises.
        message = redact(message, self.secrets)
        if self.style == "json":
            entry = {"time": moment, "level": record.levelname.lower(), "logger": record.name,
                     "message": message, **context}  # fmt: skip
            return json.dumps(entry, default=str, ensure_ascii=False)
        fields = "".join(f" {key}={value}" for key, value in context.items())
        return f"{moment} {record.levelname} {record.name}: {message}{fields}"


def configure_logging(level: str, style: LogFormat, secrets: Iterable[str]) -> None:
    """One handler on the root logger, to stderr; uvicorn's loggers propagate to it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(secrets, style))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at info: a follower looking at hundreds of remote jobs
    # would drown the log. Our own lines say what was asked and what came of it.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))

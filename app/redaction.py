"""Secrets out of what people read: API answers, escalations, logged errors."""

from __future__ import annotations

import json
from collections.abc import Iterable

MASK = "***"


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret masked, also where it appears JSON-escaped (a secret with
    a quote or a backslash inside a JSON document)."""
    for secret in secrets:
        text = text.replace(secret, MASK)
        escaped = json.dumps(secret)[1:-1]
        if escaped != secret:
            text = text.replace(escaped, MASK)
    return text

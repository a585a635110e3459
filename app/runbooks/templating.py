"""Jinja2 in a sandbox, undefined values are errors.

Templates come only from runbooks (reviewed in git); incident values are data handed to
them and are never rendered themselves, so a payload that looks like `{{ ... }}` stays
text. The rendered values go to Ansible as extra-vars data, never through a shell.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from app.errors import TemplateError

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def environment() -> SandboxedEnvironment:
    """The one environment every runbook template is rendered in (and checked against)."""
    return _ENV


@lru_cache(maxsize=4096)
def _compiled(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def render_text(source: str, context: dict[str, Any]) -> str:
    if "{" not in source:
        return source
    try:
        return _compiled(source).render(context)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{source!r}: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{source!r}: {exc}") from exc


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Strings rendered; mappings and lists rendered inside; everything else as is."""
    if isinstance(value, str):
        return render_text(value, context)
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    return value

"""Jinja2 in a sandbox, undefined values are errors.

Templates come only from runbooks (reviewed in git); incident values are data handed to
them and are never rendered themselves, so a payload that looks like `{{ ... }}` stays
text. The rendered values go to Ansible as extra-vars data, never through a shell.

A field whose value steers what runs or where the service connects renders through its
sink (`app.fields.sinks`): Jinja's `finalize` sees every `{{ ... }}` output, which is where
incident values enter, while the runbook's literal text passes as written. So a `limit`
of `web:&{{ incident.labels.host }}` keeps its pattern syntax and the host must be a name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Literal

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from app.errors import SinkError, TemplateError
from app.fields.sinks import limit_names, url_part

Sink = Literal["data", "limit", "url"]

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
# Each `{{ }}` of a limit adds its names here (a list the render's context carries).
_NAMES = "__limit_names"


@jinja2.pass_context
def _limit_output(context: jinja2.runtime.Context, value: Any) -> str:
    names = limit_names(value)
    context.get(_NAMES, []).extend(names)
    return ",".join(names)


_FINALIZE: dict[Sink, Callable[..., Any]] = {"limit": _limit_output, "url": url_part}
_ENVS: dict[Sink, SandboxedEnvironment] = {
    sink: SandboxedEnvironment(undefined=jinja2.StrictUndefined, finalize=finalize)
    for sink, finalize in _FINALIZE.items()
}
_ENVS["data"] = _ENV


def environment() -> SandboxedEnvironment:
    """The one environment every runbook template is rendered in (and checked against)."""
    return _ENV


@lru_cache(maxsize=4096)
def _compiled(source: str, sink: Sink) -> jinja2.Template:
    return _ENVS[sink].from_string(source)


def render_text(source: str, context: Mapping[str, Any], sink: Sink = "data") -> str:
    if "{" not in source:
        return source
    try:
        return _compiled(source, sink).render(context)
    except SinkError:
        raise
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{source!r}: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{source!r}: {exc}") from exc


def render_limit(source: str, context: Mapping[str, Any]) -> tuple[str, list[str]]:
    """An Ansible `limit`, and the inventory names that incident values put into it."""
    names: list[str] = []
    rendered = render_text(source, {**context, _NAMES: names}, "limit")
    if not rendered.strip():
        raise SinkError(f"limit: {source!r} renders empty, which would select every host")
    return rendered, names


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Strings rendered; mappings and lists rendered inside; everything else as is."""
    if isinstance(value, str):
        return render_text(value, context)
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    return value

"""The reference pages of the docs, generated from the code at each build so none can
drift: the configuration from `Settings`, the runbook format from its JSON Schema, the
HTTP API from the OpenAPI document, the CLI from its parser. A MkDocs hook (mkdocs.yml
`hooks:`): a page says `<!-- reference: NAME -->` where the generated text goes."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from app.cli import parser
from app.config.settings import Settings
from app.main import create_app
from app.runbooks.models import Runbook

MARKER = re.compile(r"<!-- reference: ([a-z]+) -->")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _type_name(annotation: Any) -> str:
    shown = re.sub(r"\b(?:[a-z_]+\.)+", "", str(annotation).replace("typing.", ""))
    return shown.replace("<class '", "").replace("'>", "").replace("NoneType", "None")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            made = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
        value: Any = made.model_dump(mode="json") if isinstance(made, BaseModel) else made
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if value in ({}, [], None):
        return {"{}": "none", "[]": "`[]`"}.get(json.dumps(value), "none")
    return f"`{json.dumps(value, default=str)}`"


def configuration() -> str:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.exclude:
            continue
        default = "2 per core (2 to 16)" if name == "workers" else _default(field)
        rows.append(f"| `{name}` | {_cell(default)} | {_cell(field.description or '')} |")
    sections = []
    for name, field in Settings.model_fields.items():
        model = _model_in(field.annotation)
        if model is None or not any(f.description for f in model.model_fields.values()):
            continue
        sections.append(f"\n### `{name}`\n\n" + _fields_table(model))
    return "\n".join(rows) + "\n" + "\n".join(sections)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _fields_table(model: type[BaseModel]) -> str:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows.extend(
        f"| `{name}` | {_cell(_type_name(field.annotation))} | {_cell(_default(field))} | "
        f"{_cell(field.description or '')} |"
        for name, field in model.model_fields.items()
    )
    return "\n".join(rows) + "\n"


def runbook() -> str:
    schema = TypeAdapter(Runbook | list[Runbook]).json_schema()
    definitions: dict[str, Any] = schema.get("$defs", {})
    parts = [
        "A runbook file holds one runbook or a list of them. Each model below is one mapping "
        "of the format, as the JSON Schema (`remediator schema`) states it.\n"
    ]
    for name in sorted(definitions, key=lambda n: (n != "Runbook", n)):
        parts.append(_definition(name, definitions[name]))
    return "\n".join(parts)


def _definition(name: str, definition: dict[str, Any]) -> str:
    text = f"\n### {name}\n\n"
    if definition.get("description"):
        text += definition["description"].strip() + "\n\n"
    properties: dict[str, Any] = definition.get("properties", {})
    if not properties:
        shown = definition.get("enum") or definition.get("type", "")
        return text + f"Values: `{json.dumps(shown)}`\n"
    required = set(definition.get("required", []))
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, value in properties.items():
        default = "(required)" if key in required else _json_default(value)
        rows.append(
            f"| `{key}` | {_cell(_schema_type(value))} | {_cell(default)} | "
            f"{_cell(value.get('description', ''))} |"
        )
    return text + "\n".join(rows) + "\n"


def _json_default(value: dict[str, Any]) -> str:
    if "default" not in value or value["default"] in (None, [], {}):
        return ""
    return f"`{json.dumps(value['default'])}`"


def _schema_type(value: dict[str, Any]) -> str:
    if "$ref" in value:
        return str(value["$ref"]).rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if key in value:
            return " or ".join(_schema_type(v) for v in value[key])
    if value.get("type") == "array":
        return f"list of {_schema_type(value.get('items', {}))}"
    if value.get("type") == "object" and "additionalProperties" in value:
        extra = value["additionalProperties"]
        return f"map of {_schema_type(extra) if isinstance(extra, dict) else 'any'}"
    if "enum" in value:
        return " | ".join(json.dumps(v) for v in value["enum"])
    if "const" in value:
        return json.dumps(value["const"])
    return str(value.get("type", "any"))


def http() -> str:
    document = create_app(Settings()).openapi()
    parts = [
        f"The service's OpenAPI document ({document['info']['title']} "
        f"{document['info']['version']}) is served at `/openapi.json`; every operation:\n"
    ]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            parts.append(_operation(method, path, operation))
    return "\n".join(parts)


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    text = f"\n### `{method.upper()} {path}`\n\n"
    if operation.get("summary"):
        text += f"**{operation['summary']}**\n\n"
    if operation.get("description"):
        text += operation["description"].strip() + "\n\n"
    parameters = operation.get("parameters", [])
    if parameters:
        text += "| parameter | in | meaning |\n|---|---|---|\n"
        text += "".join(
            f"| `{p['name']}` | {p['in']} | {_cell(p.get('description', ''))} |\n"
            for p in parameters
        )
        text += "\n"
    answers = ", ".join(
        f"{code} ({_cell(answer.get('description', ''))})"
        for code, answer in operation.get("responses", {}).items()
    )
    return text + f"Answers: {answers}\n"


def cli() -> str:
    return "\n".join(
        f"\n### `{prog}`\n\n```text\n{one.format_help().rstrip()}\n```\n"
        for prog, one in _parsers(parser())
    )


def _parsers(root: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield root.prog, root
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


GENERATORS: dict[str, Callable[[], str]] = {
    "configuration": configuration,
    "runbook": runbook,
    "http": http,
    "cli": cli,
}


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs' hook: each marker replaced by the text it names."""
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)

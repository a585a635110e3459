"""The platforms' published OpenAPI files, as JSON Schemas that the stand-in servers check
request bodies against.

The whole files live in `../shared/contracts/` (several MB, copied unchanged from the
platforms' repositories). The parts the tests use (each checked call's request body and
the components it refers to) are kept in `tests/fixtures/contracts/`, cut out of those
files by `extract`, so the checks also run where `../shared` is not (a clean CI
checkout). Where both are present, a test checks that the cut-outs are still exact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

SHARED = Path(__file__).resolve().parents[3] / "shared" / "contracts"
EXTRACTS = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"
# The calls whose request bodies the stand-ins check, by contract file: a path (its POST)
# or "<method> <path>".
CHECKED = {
    "rootly-openapi.json": [
        "/v1/incidents/{incident_id}/events", "/v1/alerts", "put /v1/incidents/{id}/resolve",
    ],
    "pagerduty-events-v2-openapi.json": ["/enqueue"],
    "pagerduty-rest-openapi.json": ["/incidents/{id}/notes", "put /incidents/{id}"],
}  # fmt: skip


def _call(entry: str) -> tuple[str, str]:
    method, _, path = entry.rpartition(" ")
    return method or "post", path


def extract(document: dict[str, Any], calls: list[str]) -> dict[str, Any]:
    """The request bodies of `calls`, with every component they refer to."""
    paths: dict[str, Any] = {}
    for method, path in map(_call, calls):
        body = document["paths"][path][method]["requestBody"]
        paths.setdefault(path, {})[method] = {"requestBody": body}
    kept: dict[str, Any] = {
        "openapi": document["openapi"],
        "info": document["info"],
        "paths": paths,
        "components": {},
    }
    pending: list[Any] = [kept["paths"]]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        if not isinstance(node, dict):
            continue
        pending.extend(node.values())
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            kind, name = ref.split("/")[2:4]
            if name not in kept["components"].setdefault(kind, {}):
                kept["components"][kind][name] = document["components"][kind][name]
                pending.append(kept["components"][kind][name])
    return kept


def contract(file: str) -> dict[str, Any]:
    cut_out: dict[str, Any] = json.loads((EXTRACTS / file).read_text())
    return cut_out


def request_schema(file: str, path: str, method: str = "post") -> dict[str, Any]:
    """The JSON Schema of `path`'s request body in `file`, with its refs resolvable."""
    document = contract(file)
    [body] = document["paths"][path][method]["requestBody"]["content"].values()
    schema: dict[str, Any] = {**body["schema"], "components": document["components"]}
    return schema


def problems(schema: dict[str, Any], body: Any) -> list[str]:
    """What in `body` breaks the published schema."""
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(body)]

"""The platforms' published OpenAPI files (`../shared/contracts/`), as JSON Schemas that
the stand-in servers check request bodies against. Where the files are absent (they are
test inputs, not part of the product), the check is skipped and a warning says so."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import jsonschema

CONTRACTS = Path(__file__).resolve().parents[2] / "shared" / "contracts"


def request_schema(file: str, path: str) -> dict[str, Any] | None:
    """The JSON Schema of `path`'s POST body in `file`, with its refs resolvable."""
    contract = CONTRACTS / file
    if not contract.exists():
        warnings.warn(f"{contract} not found: the contract check is skipped", stacklevel=2)
        return None
    document = json.loads(contract.read_text())
    [body] = document["paths"][path]["post"]["requestBody"]["content"].values()
    schema: dict[str, Any] = {**body["schema"], "components": document["components"]}
    return schema


def problems(schema: dict[str, Any] | None, body: Any) -> list[str]:
    """What in `body` breaks the published schema (nothing when it is unavailable)."""
    if schema is None:
        return []
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(body)]

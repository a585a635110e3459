"""Layers import one way: api → flows/executions → sources, runbooks, executors, escalation
→ store → core. Read from the source, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
# Modules of app/ that import nothing else of app/: what every layer may use.
CORE = {"app.incident", "app.redaction", "app.errors", "app.identity"}
BELOW: dict[str, set[str]] = {
    "store": {"app.store"} | CORE,
    "executors": {"app.executors", "app.store", "app.runbooks", "app.sinks", "app.config"} | CORE,
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("app"))
    return found


def _within(module: str, allowed: set[str]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


@pytest.mark.parametrize("layer", sorted(BELOW))
def test_a_layer_imports_only_what_is_below_it(layer: str) -> None:
    wrong = {
        f"{path.relative_to(APP.parent)} imports {module}"
        for path in sorted((APP / layer).rglob("*.py"))
        for module in _imports(path)
        if not _within(module, BELOW[layer])
    }
    assert not wrong, sorted(wrong)


def test_the_core_modules_import_nothing_of_the_app() -> None:
    for module in CORE:
        path = APP.parent / (module.replace(".", "/") + ".py")
        assert _imports(path) == set(), module

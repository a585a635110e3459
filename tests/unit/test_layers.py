"""Layers import one way: api → ingest/executions → sources, runbooks → step kinds →
git write-back, escalation → store → config, fields → core. Read from the source, so a
lazy import inside a function counts too. Every package of app/ has its row."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
# Modules of app/ that import nothing else of app/: what every layer may use.
CORE = {"app.incident", "app.redaction", "app.errors", "app.identity", "app.views", "app.tether"}
FIELDS = {"app.fields"} | CORE
CONFIG = {"app.config"} | FIELDS
# Below the step kinds and the git write-back: how processes and engines are reached.
PLUMBING = {"app.processes", "app.engine_http"} | CONFIG
GITOPS = {"app.gitops"} | PLUMBING
STEPS = {"app.steps"} | GITOPS
BELOW: dict[str, set[str]] = {
    "fields": FIELDS,
    "config": CONFIG,
    "store": {"app.store"} | CORE,
    "gitops": GITOPS,
    "steps": STEPS,
    "escalation": {"app.escalation", "app.signing"} | CONFIG,
    "sources": {"app.sources", "app.signing"} | CONFIG,
    "runbooks": {"app.runbooks"} | STEPS,
    "backtest": {"app.backtest", "app.runbooks", "app.store"} | STEPS,
    "executions": {
        "app.executions",
        "app.runbooks",
        "app.escalation",
        "app.store",
        "app.services",
        "app.logs",
    }
    | STEPS,  # fmt: skip
}
PACKAGES = sorted(p.name for p in APP.iterdir() if (p / "__init__.py").exists())
# The top: what wires the layers together or answers the outside world.
TOP = {"api"}


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


def test_every_package_has_a_layer() -> None:
    assert set(PACKAGES) - TOP == set(BELOW), "give the package its row in BELOW (or TOP)"


@pytest.mark.parametrize("layer", sorted(BELOW))
def test_a_layer_imports_only_what_is_below_it(layer: str) -> None:
    wrong = {
        f"{path.relative_to(APP.parent)} imports {module}"
        for path in sorted((APP / layer).rglob("*.py"))
        for module in _imports(path)
        if not _within(module, BELOW[layer])
    }
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_says_what_it_holds(package: str) -> None:
    doc = ast.get_docstring(ast.parse((APP / package / "__init__.py").read_text()))
    assert doc and len(doc) > 40, f"app/{package}/__init__.py needs a docstring"


def test_the_core_modules_import_nothing_of_the_app() -> None:
    for module in CORE:
        path = APP.parent / (module.replace(".", "/") + ".py")
        assert _imports(path) == set(), module


@pytest.mark.parametrize(
    ("word", "allowed"),
    [
        ("sentry", {"app/sources/sentry.py", "app/sources/registry.py"}),
        ("incidentio", {"app/sources/incidentio.py", "app/sources/registry.py"}),
        ("cloudwatch", {"app/sources/cloudwatch.py", "app/sources/registry.py"}),
        ("azure", {"app/sources/azure_monitor.py", "app/sources/registry.py",
                   "app/config/sections.py"}),
        ("kubernetes", {"app/steps/kubernetes/__init__.py", "app/steps/kubernetes/kind.py",
                        "app/steps/kubernetes/spec.py", "app/steps/kubernetes/rollout.py",
                        "app/steps/registry.py", "app/config/sections.py",
                        "app/config/settings.py", "app/fields/sinks.py"}),
        ("jira", {"app/escalation/jira.py", "app/escalation/registry.py",
                  "app/config/sections.py"}),
        ("servicenow", {"app/escalation/servicenow.py", "app/escalation/registry.py",
                        "app/config/sections.py"}),
        ("smtp", {"app/escalation/mail.py", "app/config/sections.py"}),
        ("http_endpoint", {"app/steps/http.py", "app/config/sections.py",
                           "app/config/settings.py"}),
    ],
)  # fmt: skip
def test_a_new_kind_or_platform_is_named_only_by_its_module_registry_and_config(
    word: str, allowed: set[str]
) -> None:
    """Adding a platform or a step kind is one module, one registry line and its config
    model: nothing else in the service names it."""
    root = Path(__file__).resolve().parents[2]
    naming = {str(path.relative_to(root)) for path in (root / "app").rglob("*.py")
              if word in path.read_text().lower()}  # fmt: skip
    assert naming <= allowed, naming - allowed

"""Random runbook documents into the loader: each is loaded or refused with located
problems (RunbookError), never a crash. Keys are drawn mostly from the format's own, so
that documents get deep into it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import RunbookError
from app.runbooks.loader import load_runbooks

KEYS = ["name", "description", "match", "steps", "ansible", "terraform", "playbook",
        "extra_vars", "timeout", "workdir", "revert_to", "var", "max_destroy", "retry",
        "attempts", "backoff", "all", "any", "none", "field", "equals", "in", "matches",
        "exists", "contains", "status", "source", "severity", "service", "cooldown",
        "concurrency", "verify", "http", "url", "resolved_within", "approval", "escalate",
        "secret_vars", "max_runs", "count", "per", "idempotent", "limit", "x"]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["r", "p.yml", "10m", "previous", "git:main", "{{ incident.title }}",
                     "{{ incident.titel }}", "{% for %}", "../../etc/passwd", "(", "firing"]),
)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=6),
    ),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_document_loads_or_is_refused_with_located_problems(document: Any) -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "rb.yml").write_text(yaml.safe_dump(document))
        try:
            load_runbooks([Path(directory)], playbooks_dir=Path(directory),
                          terraform_dir=Path(directory), known_targets={"webhook"})  # fmt: skip
        except RunbookError as exc:
            assert exc.problems
            assert all(str(p).startswith(str(Path(directory) / "rb.yml")) for p in exc.problems)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_load_or_are_refused(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "rb.yml").write_bytes(raw)
        try:
            load_runbooks([Path(directory)])
        except RunbookError as exc:
            assert exc.problems

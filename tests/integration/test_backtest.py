"""`remediator backtest` and `events export` through the CLI, on SQLite and PostgreSQL,
over a history made by the real ingest from real payloads of every source: a candidate
runbook set that widens a match, narrows one, renames one, renders a field differently
and adds a rate limit is reported exactly, and nothing else is (the runbooks for every
other source are unchanged); the export file gives the same report as the database; and
the database is left as it was."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import MetaData, select

from app.config.loading import load_settings
from app.ingest import arrive, store_delivery
from app.services import build_services
from app.sources.registry import SOURCES as REGISTERED
from app.store.db import Database
from tests.support.service import FIXTURES, ROOT, alert, ansible_step, runbook, write_config

PAYLOADS = FIXTURES / "payloads"
EXAMPLE_PAYLOADS = ROOT / "runbooks" / "tests" / "payloads"
# Every platform: the history holds every payload fixture of each.
SOURCES = sorted(REGISTERED)


def _step(target: str) -> dict[str, Any]:
    return ansible_step("write.yml", target=target, dest="/tmp/remediator-backtest")


def _by_source(source: str) -> dict[str, Any]:
    """Unchanged between the two sets: whatever comes from `source` renders its title."""
    return {"name": f"from-{source}", "match": {"source": [source]},
            "steps": [_step("{{ incident.title }}")]}  # fmt: skip


INSTANCE = "{{ incident.labels.instance }}"
LIVE = [
    runbook("cache", "CacheFull", _step(INSTANCE)),
    runbook("web", "WebErrors", _step(INSTANCE)),
    runbook("flap", "Flap", _step(INSTANCE)),
    runbook("rename-me", "Renamed", _step(INSTANCE)),
    {"name": "pd", "match": {"source": ["pagerduty"]}, "steps": [_step("{{ incident.title }}")]},
    *(_by_source(source) for source in SOURCES if source != "alertmanager"),
]
CANDIDATE = [
    # Widened: DiskFull too.
    {**runbook("cache", "CacheFull", _step(INSTANCE)),
     "match": {"any": [{"field": "labels.alertname", "equals": "CacheFull"},
                       {"field": "labels.alertname", "equals": "DiskFull"}]}},
    runbook("web", "WebErrors", _step("all-web")),  # renders differently
    runbook("flap", "Flap", _step(INSTANCE), max_runs={"count": 1, "per": "1h"}),
    runbook("renamed", "Renamed", _step(INSTANCE)),  # other runbooks
    # Narrowed: a service the history's PagerDuty incident is not.
    {"name": "pd", "match": {"source": ["pagerduty"], "service": ["billing"]},
     "steps": [_step("{{ incident.title }}")]},
    *(_by_source(source) for source in SOURCES if source != "alertmanager"),
]  # fmt: skip


def remediator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin"})  # fmt: skip


def _history(config: Path) -> None:
    """Every payload fixture of every source, and alerts made here, through the real
    ingest at times spread over the last days (nothing runs: no workers)."""
    services = build_services(load_settings(config))
    start = datetime.now(UTC) - timedelta(days=5)
    files = [(path.parent.name, path) for path in sorted(PAYLOADS.glob("*/*.json"))]
    # And the example runbooks' own.
    files += [("alertmanager", path) for path in sorted(EXAMPLE_PAYLOADS.glob("*.json"))]
    deliveries: list[tuple[str, dict[str, str], bytes]] = [
        (source, {}, path.read_bytes()) for source, path in files
    ]
    generic = {"title": "Queue stuck", "service": "jobs", "labels": {"queue": "mail"}}
    deliveries.append(("generic", {"webhook-id": "msg_backtest_1"}, json.dumps(generic).encode()))
    made = [
        alert("CacheFull", fingerprint="c1", instance="web-1"),
        alert("CacheFull", fingerprint="c2", instance="web-2"),
        *(alert("DiskFull", fingerprint=f"d{n}", instance=f"db-{n}") for n in range(3)),
        *(alert("WebErrors", fingerprint=f"w{n}", instance=f"web-{n}") for n in range(3)),
        *(alert("Flap", fingerprint=f"f{n}", instance=f"app-{n}") for n in range(3)),
        alert("Renamed", fingerprint="r1", instance="old-1"),
    ]
    deliveries += [("alertmanager", {}, json.dumps(payload).encode()) for payload in made]
    try:
        for n, (source, headers, body) in enumerate(deliveries):
            moment = (start + timedelta(minutes=10 * n)).timestamp()
            store_delivery(services, arrive(services, source, headers, body, moment))
    finally:
        services.db.close()


def _rows(url: str) -> dict[str, list[str]]:
    """Every row of every table, as text: what `byte-for-byte` means on PostgreSQL."""
    db = Database(url)
    try:
        tables = MetaData()
        tables.reflect(db.engine)
        with db.read() as session:
            return {
                name: sorted(
                    json.dumps(list(row), default=str) for row in session.execute(select(table))
                )  # fmt: skip
                for name, table in tables.tables.items()
            }
    finally:
        db.close()


@pytest.fixture
def history(tmp_path: Path, database_url: str) -> tuple[Path, Path]:
    """The config of a service with the live runbooks and its history; the candidates."""
    config = write_config(
        tmp_path, LIVE, database_url=database_url, dedup_retention_days=10_000,
        sources={source: {"insecure": True} for source in SOURCES},
    )  # fmt: skip
    _history(config)
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    (candidate / "runbooks.yml").write_text(yaml.safe_dump(CANDIDATE, sort_keys=False))
    return config, candidate


def _report(config: Path, *args: str) -> dict[str, Any]:
    ran = remediator("--config", str(config), "backtest", "--since", "30d", "--format", "json",
                     *args)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    report: dict[str, Any] = json.loads(ran.stdout)
    return report


def test_a_runbook_change_is_reported_exactly_and_the_database_is_untouched(
    history: tuple[Path, Path], tmp_path: Path
) -> None:
    config, candidate = history
    settings = load_settings(config)
    sqlite_file = tmp_path / "remediator.db"
    before = (hashlib.sha256(sqlite_file.read_bytes()).hexdigest()
              if settings.database_url.startswith("sqlite") else None)  # fmt: skip
    rows = _rows(settings.database_url)

    unchanged = _report(config)  # the live set against its own history
    assert unchanged["changed"] == 0 and unchanged["changes"] == [], unchanged["changes"]
    assert unchanged["incidents"] > 30

    report = _report(config, "--runbooks", str(candidate))
    changes = {(c["kind"], c["incident"]["fingerprint"]): c for c in report["changes"]}
    assert set(changes) == {
        ("new match", "d0"), ("new match", "d1"), ("new match", "d2"),
        ("rendered differently", "w0"), ("rendered differently", "w1"),
        ("rendered differently", "w2"),
        ("now refused by a guard", "f1"), ("now refused by a guard", "f2"),
        ("different runbooks", "r1"),
        ("no longer matches", "PGR0VU2"),
    }  # fmt: skip
    assert report["totals"] == {
        "new match": 3, "no longer matches": 1, "different runbooks": 1,
        "rendered differently": 3, "now refused by a guard": 2,
    }  # fmt: skip
    assert report["changed"] == 10
    assert changes[("rendered differently", "w1")]["details"] == [
        'steps[0].ansible.extra_vars.target: "web-1" → "all-web"'
    ]
    assert changes[("new match", "d2")]["runbooks"] == ["cache"]
    assert '"target": "db-2"' in changes[("new match", "d2")]["details"][0]
    assert changes[("different runbooks", "r1")]["runbooks"] == ["renamed", "rename-me"]
    assert "max_runs is 1 per 3600s" in changes[("now refused by a guard", "f2")]["details"][0]
    assert report["runbooks"]["cache"] == {
        "matched_before": 2, "matched_now": 5, "new_match": 3, "no_longer_matches": 0,
        "rendered_differently": 0, "now_refused": 0,
    }  # fmt: skip
    assert report["runbooks"]["pd"]["no_longer_matches"] == 1
    # The other sources' runbooks saw their incidents and were left alone.
    for source in SOURCES[1:]:
        counts = report["runbooks"][f"from-{source}"]
        assert counts["matched_before"] == counts["matched_now"] > 0, source
        assert counts["new_match"] == counts["no_longer_matches"] == 0, source

    exported = tmp_path / "events.jsonl"
    ran = remediator("--config", str(config), "events", "export", "--since", "30d")
    assert ran.returncode == 0, ran.stderr
    exported.write_text(ran.stdout)
    assert len(ran.stdout.splitlines()) == report["incidents"]
    from_file = _report(config, "--runbooks", str(candidate), "--events", str(exported))
    window = ("since", "until")  # `30d` is read at each run's own start
    assert {k: v for k, v in from_file.items() if k not in window} == {
        k: v for k, v in report.items() if k not in window
    }

    for shape in ("text", "markdown"):
        shown = remediator("--config", str(config), "backtest", "--since", "30d",
                           "--runbooks", str(candidate), "--format", shape, "--fail-on-change")  # fmt: skip
        assert shown.returncode == 1, shown.stderr
        assert "now refused by a guard" in shown.stdout and "all-web" in shown.stdout
    markdown = shown.stdout
    assert markdown.startswith("### remediator backtest: 10 of ")
    assert markdown.index("| 3 | 1 | 1 | 3 | 2 |") < markdown.index("| change | incident")

    assert _rows(settings.database_url) == rows
    if before is not None:
        assert hashlib.sha256(sqlite_file.read_bytes()).hexdigest() == before


def test_an_export_masks_configured_secrets_and_a_broken_file_is_named(tmp_path: Path) -> None:
    secret = "s3cr3t-token-in-a-label"
    config = write_config(tmp_path, [runbook("cache", "CacheFull", _step(INSTANCE))],
                          sources={"alertmanager": {"token": secret}})  # fmt: skip
    services = build_services(load_settings(config))
    try:
        body = json.dumps(alert("CacheFull", instance=f"web-1 {secret}")).encode()
        headers = {"authorization": f"Bearer {secret}"}
        store_delivery(services, arrive(services, "alertmanager", headers, body,
                                        datetime.now(UTC).timestamp()))  # fmt: skip
    finally:
        services.db.close()
    ran = remediator("--config", str(config), "events", "export", "--since", "1d")
    assert ran.returncode == 0, ran.stderr
    (line,) = ran.stdout.splitlines()
    assert secret not in line and "web-1 ***" in line
    assert json.loads(line)["did"][0]["runbook"] == "cache"

    broken = tmp_path / "broken.jsonl"
    broken.write_text(line + "\n" + '{"source": "x"}\n')
    ran = remediator("--config", str(config), "backtest", "--since", "1d", "--events", str(broken))
    assert ran.returncode == 1
    assert ran.stderr.startswith(f"error: {broken}:2: not an export line: received_at")
    assert "Traceback" not in ran.stderr

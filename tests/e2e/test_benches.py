"""The bench scripts, each run once with a tiny load, so that the one command per figure
that bench/README.md promises keeps working. The figures themselves are not checked
here (benches are not timed tests), only that each script runs and reports what it must:
nothing lost, every run succeeded. The peer bench needs ansible-rulebook from PyPI and
Java; it is run by hand."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Their figures are not checked here, only what they report (nothing lost, every run
# succeeded), so they run in the parallel part like any test of a real service.


def bench(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_ingest_reports_every_accepted_webhook_stored() -> None:
    out = bench("ingest.py", "--db", "sqlite", "--rates", "50", "--seconds", "0.5")
    assert "sqlite        50/s" in out and "saturation" in out
    assert out.rstrip().endswith("equal")


def test_storm_loses_nothing_and_runs_once() -> None:
    out = bench("storm.py", "--webhooks", "60", "--seconds", "2")
    assert "answered 202: 60" in out and "events stored 60: nothing lost" in out
    assert "playbook runs 1" in out


def test_big_group_is_answered_first_re_sent_and_amid_other_senders() -> None:
    out = bench("big_group.py", "--alerts", "200", "--rate", "20", "--seconds", "1")
    assert out.count("answered 202 in") == 3 and "database grew" in out


def test_stats_times_each_call_over_a_generated_history() -> None:
    out = bench("stats.py", "--executions", "300", "--rounds", "1")
    assert "300 executions written" in out
    assert all(call in out for call in ("/api/stats (7 days)", "/api/stats?runbook=", "/metrics"))


def test_matching_finds_the_same_runbook_indexed_and_by_scan() -> None:
    lines = bench("matching.py").splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["10", "100", "1000", "10000"]


def test_dispatch_compares_remediator_with_ansible_runner() -> None:
    out = bench("dispatch.py", "--rounds", "1")
    assert "against ansible_runner.run" in out and "ansible-playbook started" in out


@pytest.mark.skipif(
    shutil.which("terraform") is None and shutil.which("tofu") is None,
    reason="no terraform or tofu on PATH",
)
def test_terraform_revert_compares_with_the_commands_by_hand() -> None:
    out = bench("terraform_revert.py", "--rounds", "1")
    assert "revert through remediator" in out and "by hand" in out


def test_remote_jobs_are_launched_once_and_followed_through_a_kill() -> None:
    out = bench("remote_jobs.py", "--jobs", "10", "--job-seconds", "3", "--poll", "0.2")
    assert "10 launches for 10 jobs; all succeeded" in out
    assert "a local ansible step queued behind them ran in" in out


def test_drain_reports_every_incident_remediated_once() -> None:
    out = bench(
        "drain.py", "--incidents", "5", "--services", "batched,unbatched", "--modules", "raw"
    )
    assert out.count("5 incidents:") == 2 and out.count("twice 0, not run 0") == 2


def test_followers_measures_the_cost_of_following_and_the_lag() -> None:
    out = bench("followers.py", "--followers", "3", "--window", "1")
    assert "with 3: following costs" in out and "reached the followers after p50" in out

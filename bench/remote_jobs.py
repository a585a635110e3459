"""Many remote jobs at once: one Alertmanager group of N alerts, each launching an AWX job
(a loopback stand-in AWX whose jobs take `--job-seconds`), against a real `remediator
serve` on SQLite with `--workers` workers. Halfway, the service is killed (-9) and
started again.

Printed: how long launching took (jobs/s); how long a local ansible step queued behind
all of them took; the service's CPU time per followed job per minute while it only
followed; how many launches the engine saw after the kill and restart (must be N); and
how late after each job's own end its execution was final (p50/p99).

    .venv/bin/python bench/remote_jobs.py [--jobs 200] [--job-seconds 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.servers import start_server  # noqa: E402
from tests.support.service import alert, alert_group, ansible_step, runbook, write_config  # noqa: E402
from tests.support.standins.awx import AWX_TOKEN, AwxStandIn, awx_stand_in  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--job-seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll", type=float, default=1.0, help="engines.awx.poll_interval_s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, awx_stand_in() as awx:
        awx.template("restart-node", seconds=args.job_seconds)
        dest = Path(tmp) / "local.json"
        books = [
            runbook("restart-via-awx", "NodeDown", {"awx": {
                "job_template": "restart-node", "limit": "{{ incident.labels.i }}",
                "extra_vars": {"node": "{{ incident.labels.i }}"}, "timeout": "10m"}}),
            runbook("local-fix", "DiskFull",
                    ansible_step("write.yml", message="m", host="h", dest=str(dest))),
        ]  # fmt: skip
        config = write_config(
            Path(tmp), books, workers=args.workers, log_format="text",
            engines={"awx": {"url": awx.base, "token": AWX_TOKEN,
                               "poll_interval_s": args.poll}},
        )  # fmt: skip
        server = start_server(config, name="first")
        began = time.monotonic()
        ids = server.alertmanager(alert_group(args.jobs), timeout=120).json()["executions"]
        while len(awx.launches) < args.jobs and time.monotonic() - began < 300:
            time.sleep(0.05)
        launch_s = time.monotonic() - began
        print(f"{args.jobs} AWX jobs launched by {args.workers} workers in {launch_s:.1f}s "
              f"({args.jobs / launch_s:.0f} jobs/s)")  # fmt: skip

        asked = time.monotonic()
        local = server.alertmanager(alert("DiskFull", fingerprint="disk-1")).json()["executions"]
        server.wait_all_final(local, timeout=120)
        print(f"a local ansible step queued behind them ran in {time.monotonic() - asked:.1f}s")

        process = psutil.Process(server.pid)
        cpu_before, window_began = sum(process.cpu_times()[:2]), time.monotonic()
        time.sleep(min(5.0, args.job_seconds / 4))
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        window = time.monotonic() - window_began
        per_job_minute = cpu / args.jobs / (window / 60) * 1000
        print(f"following {args.jobs} running jobs (a look every {args.poll:g}s): "
              f"{cpu / window * 100:.1f}% of a core, "
              f"{per_job_minute:.1f} ms CPU per job per minute")  # fmt: skip

        server.kill()
        server = start_server(config, name="second")
        executions = server.wait_all_final(ids, timeout=args.job_seconds * 3 + 120)
        late = [
            (datetime.fromisoformat(e["finished_at"].replace("Z", "+00:00")).timestamp()
             - job_end(awx, e))
            for e in executions
        ]  # fmt: skip
        statuses = {e["status"] for e in executions}
        ended = "all succeeded" if statuses == {"succeeded"} else f"ended {sorted(statuses)}"
        print(f"killed (-9) and restarted while they ran: {len(awx.launches)} launches for "
              f"{args.jobs} jobs; {ended}")  # fmt: skip
        print(f"final after the job's own end: p50 {statistics.median(late):.2f}s, "
              f"p99 {quantile(late, 0.99):.2f}s")  # fmt: skip
        server.close()


def job_end(awx: AwxStandIn, execution: dict[str, Any]) -> float:
    """When the stand-in's job for this execution ended, in wall-clock seconds."""
    job = awx.jobs[execution["steps"][0]["detail"]["job"]]
    monotonic_offset = time.time() - time.monotonic()
    return job.started + job.template.seconds + monotonic_offset


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


if __name__ == "__main__":
    main()

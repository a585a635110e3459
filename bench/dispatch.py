"""What remediator adds on top of running a playbook: webhook received → `ansible-playbook`
process started, and end to end (POST → execution `succeeded`, as the API reports it)
against the same trivial playbook run by `ansible_runner.run` in a warm interpreter and by
bare `ansible-playbook`, as ratios. Median of 5 rounds after a warm-up; within a round the
three take turns.

    .venv/bin/python bench/dispatch.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ansible_runner
import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.store.models import FINAL  # noqa: E402
from bench.peer import PLAYBOOK, REMEDIATE, Service, remediator  # noqa: E402
from tests.support.service import API_TOKEN  # noqa: E402


def bare(work: Path, sequence: int) -> float:
    binary = Path(sys.executable).parent / "ansible-playbook"
    started = time.perf_counter()
    subprocess.run(
        [str(binary), str(work / "playbooks" / "trivial.yml"),
         "-e", f"seq={sequence} runs={work / 'bare-runs'}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - started


def runner(work: Path, sequence: int) -> float:
    started = time.perf_counter()
    result = ansible_runner.run(
        private_data_dir=str(work / "runner"), playbook=str(work / "playbooks" / "trivial.yml"),
        extravars={"seq": sequence, "runs": str(work / "runner-runs")}, quiet=True,
    )  # fmt: skip
    assert result.rc == 0, result.status
    return time.perf_counter() - started


def first_playbook_process(server_pid: int, deadline: float) -> float | None:
    """When an `ansible-playbook` process under the server appeared (perf_counter)."""
    server = psutil.Process(server_pid)
    while time.perf_counter() < deadline:
        for child in server.children(recursive=True):
            try:
                if any("ansible-playbook" in part for part in child.cmdline()):
                    return time.perf_counter()
            except psutil.Error:
                continue
        time.sleep(0.001)
    return None


def through_remediator(
    service: Service, sequence: int, pool: ThreadPoolExecutor
) -> tuple[float, float]:
    """(webhook sent -> ansible-playbook started, sent -> execution succeeded), in s."""
    base = service.url.removesuffix("/webhooks/generic")
    headers = {"authorization": f"Bearer {API_TOKEN}"}
    watcher = pool.submit(first_playbook_process, service.process.pid, time.perf_counter() + 30)
    sent = time.perf_counter()
    body, signed_headers = service.body(REMEDIATE, sequence)
    answer = httpx.post(service.url, content=body, headers=signed_headers, timeout=30)
    execution_id = answer.json()["executions"][0]
    while True:
        execution = httpx.get(f"{base}/api/executions/{execution_id}", headers=headers)
        if execution.json()["status"] in FINAL:
            break
        time.sleep(0.005)
    done = time.perf_counter()
    spawned = watcher.result()
    assert execution.json()["status"] == "succeeded", execution.text
    assert spawned is not None, "no ansible-playbook process seen"
    return spawned - sent, done - sent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # ansible_runner finds ansible-playbook on PATH: this interpreter's, as the service's.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    work = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    (work / "playbooks").mkdir()
    (work / "runner").mkdir()
    (work / "playbooks" / "trivial.yml").write_text(PLAYBOOK)
    # Round by round, the three take turns, so that what else the machine is doing weighs
    # on all three alike; the first round warms caches and is left out.
    bare_took, runner_took, spawn, end_to_end = [], [], [], []
    with remediator(work) as service, ThreadPoolExecutor(1) as pool:
        for sequence in range(args.rounds + 1):
            bare_took.append(bare(work, sequence))
            runner_took.append(runner(work, sequence))
            to_process, through = through_remediator(service, sequence, pool)
            spawn.append(to_process)
            end_to_end.append(through)
    bare_s, runner_s = statistics.median(bare_took[1:]), statistics.median(runner_took[1:])
    spawn_s, ours_s = statistics.median(spawn[1:]), statistics.median(end_to_end[1:])
    print(f"webhook received -> ansible-playbook started   {spawn_s * 1000:8.1f} ms")
    print(f"bare ansible-playbook                          {bare_s:8.3f} s")
    print(f"ansible_runner.run (warm interpreter)          {runner_s:8.3f} s")
    print(f"remediator, POST -> execution succeeded        {ours_s:8.3f} s")
    print(f"  against ansible_runner.run                   {ours_s / runner_s:8.2f}x")
    print(f"  against bare ansible-playbook                {ours_s / bare_s:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What remediator adds on top of running a playbook: webhook received → `ansible-playbook`
process started, and end to end (POST → execution `succeeded`, as the API reports it)
against the same trivial playbook run by `ansible_runner.run` in a warm interpreter and by
bare `ansible-playbook`, as ratios. Median of 5 after one warm-up each.

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
from bench.peer import PLAYBOOK, REMEDIATE, remediator  # noqa: E402
from tests.conftest import API_TOKEN  # noqa: E402


def bare(work: Path, rounds: int) -> list[float]:
    binary = Path(sys.executable).parent / "ansible-playbook"
    took = []
    for sequence in range(rounds + 1):
        started = time.perf_counter()
        subprocess.run(
            [str(binary), str(work / "playbooks" / "trivial.yml"),
             "-e", f"seq={sequence} runs={work / 'bare-runs'}"],
            check=True, capture_output=True,
        )  # fmt: skip
        took.append(time.perf_counter() - started)
    return took[1:]


def runner(work: Path, rounds: int) -> list[float]:
    took = []
    for sequence in range(rounds + 1):
        started = time.perf_counter()
        result = ansible_runner.run(
            private_data_dir=str(work / "runner"), playbook=str(work / "playbooks" / "trivial.yml"),
            extravars={"seq": sequence, "runs": str(work / "runner-runs")}, quiet=True,
        )  # fmt: skip
        assert result.rc == 0, result.status
        took.append(time.perf_counter() - started)
    return took[1:]


def first_playbook_process(server_pid: int, seen: set[int], deadline: float) -> float | None:
    """When a new `ansible-playbook` process under the server appeared (perf_counter)."""
    server = psutil.Process(server_pid)
    while time.perf_counter() < deadline:
        for child in server.children(recursive=True):
            if child.pid in seen:
                continue
            try:
                if any("ansible-playbook" in part for part in child.cmdline()):
                    seen.add(child.pid)
                    return time.perf_counter()
            except psutil.Error:
                continue
        time.sleep(0.001)
    return None


def through_remediator(work: Path, rounds: int) -> tuple[list[float], list[float]]:
    to_process, end_to_end = [], []
    headers = {"authorization": f"Bearer {API_TOKEN}"}
    with remediator(work) as service:
        base = service.url.removesuffix("/webhooks/generic")
        seen: set[int] = set()
        pool = ThreadPoolExecutor(1)
        for sequence in range(rounds + 1):
            watcher = pool.submit(
                first_playbook_process, service.process.pid, seen, time.perf_counter() + 30
            )
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
            to_process.append(spawned - sent)
            end_to_end.append(done - sent)
        pool.shutdown()
    return to_process[1:], end_to_end[1:]


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
    bare_s = statistics.median(bare(work, args.rounds))
    runner_s = statistics.median(runner(work, args.rounds))
    spawn, end_to_end = through_remediator(work, args.rounds)
    spawn_s, ours_s = statistics.median(spawn), statistics.median(end_to_end)
    print(f"webhook received -> ansible-playbook started   {spawn_s * 1000:8.1f} ms")
    print(f"bare ansible-playbook                          {bare_s:8.3f} s")
    print(f"ansible_runner.run (warm interpreter)          {runner_s:8.3f} s")
    print(f"remediator, POST -> execution succeeded        {ours_s:8.3f} s")
    print(f"  against ansible_runner.run                   {ours_s / runner_s:8.2f}x")
    print(f"  against bare ansible-playbook                {ours_s / bare_s:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

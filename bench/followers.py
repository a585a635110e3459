"""Fifty people following one busy execution live: a real `remediator serve` (SQLite)
runs a playbook whose task prints a line every 0.1 s, each line saying when it was
printed; `--followers` clients follow the execution's event stream (the page's way).

Printed: the service's CPU (% of one core) over the same window without followers and
with them, the difference being what following costs; and how long after a line was
printed the followers had it (p50/p95/max over every line and follower).

    .venv/bin/python bench/followers.py [--followers 50] [--window 15]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.servers import start_server  # noqa: E402
from tests.support.service import API_TOKEN, alert, ansible_step, runbook, write_config  # noqa: E402

BUSY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Print a line every 0.1 s
      ansible.builtin.debug:
        msg: "line {{ item }} @{{ '%.3f' % now().timestamp() }}"
      loop: "{{ range(lines | int) | list }}"
      loop_control:
        pause: 0.1
"""


def follow(base: str, execution_id: str, lags: list[float], stop: threading.Event) -> None:
    headers = {"authorization": f"Bearer {API_TOKEN}"}
    url = f"{base}/api/executions/{execution_id}/events"
    timeout = httpx.Timeout(60, read=60)
    with (
        contextlib.suppress(httpx.HTTPError),
        httpx.stream("GET", url, headers=headers, timeout=timeout) as answer,
    ):
        for line in answer.iter_lines():
            if stop.is_set():
                return
            if not line.startswith("data: ") or "@" not in line:
                continue
            now = time.time()
            text = json.loads(line[6:]).get("text", "")
            for part in text.split("@")[1:]:
                stamp = part.split('"')[0].strip()
                try:
                    lags.append(now - float(stamp))
                except ValueError:
                    continue


def cpu_share(process: psutil.Process, window: float) -> float:
    before = sum(process.cpu_times()[:2])
    time.sleep(window)
    return (sum(process.cpu_times()[:2]) - before) / window * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--followers", type=int, default=50)
    parser.add_argument("--window", type=float, default=15.0, help="seconds per measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        playbooks = Path(tmp) / "playbooks"
        playbooks.mkdir()
        (playbooks / "busy.yml").write_text(BUSY)
        lines = int((args.window * 2 + 20) * 10)
        book = runbook("busy", "Busy", ansible_step("busy.yml", timeout="10m", lines=str(lines)))
        config = write_config(Path(tmp), [book], playbooks_dir=str(playbooks), log_format="text")
        server = start_server(config, name="followers")
        try:
            execution_id = server.alertmanager(alert("Busy")).json()["executions"][0]
            output = f"{server.base}/api/executions/{execution_id}/attempts/1/output"
            auth = {"authorization": f"Bearer {API_TOKEN}"}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                probe = httpx.get(output, headers=auth, timeout=10)
                if probe.status_code == 200 and probe.json()["chunks"]:
                    break
                time.sleep(0.2)
            process = psutil.Process(server.pid)
            alone = cpu_share(process, args.window)
            lags: list[float] = []
            stop = threading.Event()
            threads = [threading.Thread(target=follow, daemon=True,
                                        args=(server.base, execution_id, lags, stop))
                       for _ in range(args.followers)]  # fmt: skip
            for thread in threads:
                thread.start()
            time.sleep(2)  # every follower connected and past the backlog
            lags.clear()
            followed = cpu_share(process, args.window)
            stop.set()
            ordered = sorted(lags)
            print(f"service CPU while the step runs: {alone:.1f}% of a core without followers, "
                  f"{followed:.1f}% with {args.followers}: following costs "
                  f"{followed - alone:.1f}% of a core")  # fmt: skip
            if ordered:
                print(f"a printed line reached the followers after p50 "
                      f"{statistics.median(ordered) * 1000:.0f} ms, p95 "
                      f"{ordered[int(len(ordered) * 0.95)] * 1000:.0f} ms, max "
                      f"{ordered[-1] * 1000:.0f} ms ({len(ordered)} line deliveries)")  # fmt: skip
        finally:
            server.close()


if __name__ == "__main__":
    main()

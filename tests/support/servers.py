"""Real `remediator serve` processes on loopback ports, as an operator runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.service import AM_TOKEN, API_TOKEN, FINAL, free_port

FINAL_OR_VERIFYING = FINAL | {"verifying"}


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self) -> None:
        for _ in range(300):
            assert self.proc.poll() is None, f"serve exited: {self.log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.base}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("not ready")

    def alertmanager(self, payload: dict[str, Any], timeout: float = 30) -> httpx.Response:
        return httpx.post(f"{self.base}/webhooks/alertmanager", json=payload, timeout=timeout,
                          headers={"authorization": f"Bearer {AM_TOKEN}"})  # fmt: skip

    def api(self, path: str, **params: Any) -> Any:
        answer = httpx.get(f"{self.base}/api{path}", params=params, timeout=30,
                           headers={"authorization": f"Bearer {API_TOKEN}"})  # fmt: skip
        assert answer.status_code == 200, answer.text
        return answer.json()

    def wait_all_final(self, ids: list[str], timeout: float = 180) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            executions = [self.api(f"/executions/{i}") for i in ids]
            if all(e["status"] in FINAL for e in executions):
                return executions
            if time.monotonic() > deadline:
                stuck = [(e["id"], e["status"]) for e in executions if e["status"] not in FINAL]
                raise AssertionError(f"not final after {timeout}s: {stuck}")
            time.sleep(0.3)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()


def start_server(config: Path, *, name: str = "serve", instant: bool = False) -> Server:
    """`remediator serve` for `config`, with its output in a log file next to it;
    `instant`: with the test-only `instant` step kind (tests.support.instant)."""
    port = free_port()
    log = config.parent / f"{name}.log"
    entry = "tests.support.instant" if instant else "app.cli"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", entry, "serve", "--config", str(config), "--port", str(port)],
            cwd=config.parent, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        )  # fmt: skip
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    server.wait_ready()
    return server

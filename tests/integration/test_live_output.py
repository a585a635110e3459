"""A running step's output, followed live through the real app and a real
`ansible-playbook`: a line a task prints reaches a follower of the event stream while the
step still runs (within a second of being printed), the same chunks are read by polling
after a point, a configured secret is masked even when it is split across two writes, and
an attempt keeps the tail of a long output, saying how much came before."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.executions.live import Attempt, LiveOutput
from app.store.models import Execution, OutputChunk
from app.store.output import append_output, output_after
from tests.support.instant import instant_step
from tests.support.service import AM_TOKEN, ROOT, Api, alert, ansible_step, runbook


def _events(api: Api, execution_id: str, **headers: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The execution's server-sent events, as (event, data), until the stream ends."""
    with api.client.stream("GET", f"/api/executions/{execution_id}/events",
                           headers={**api.auth, **headers}) as answer:  # fmt: skip
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in answer.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield kind, json.loads(line.removeprefix("data: "))


@pytest.mark.ansible
def test_a_line_a_task_prints_reaches_a_follower_while_the_step_runs(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    step = ansible_step("say-then-wait.yml", said="hello from the play", gate=str(gate))
    api = make_api([runbook("live", "Live", step)])
    execution_id = api.alertmanager(alert("Live")).json()["executions"][0]
    seen: list[tuple[float, str, dict[str, Any]]] = []
    follower = threading.Thread(target=lambda: seen.extend(
        (time.time(), kind, data) for kind, data in _events(api, execution_id)))  # fmt: skip
    follower.start()
    deadline = time.monotonic() + 60
    said = None
    while said is None and time.monotonic() < deadline:
        said = next(((at, data["text"]) for at, kind, data in list(seen)
                     if kind == "output" and "hello from the play" in data["text"]), None)  # fmt: skip
        time.sleep(0.02)
    assert said is not None, seen
    assert api.execution(execution_id)["status"] == "running"  # seen while it runs
    # Within a second of the task printing it (the play says when it did).
    printed = float(said[1].split("hello from the play @")[1].split('"')[0])
    assert said[0] - printed < 1.0, (said[0] - printed, said[1])
    gate.touch()
    follower.join(timeout=60)
    kinds = [kind for _, kind, _ in seen]
    assert kinds[0] == "state" and kinds[-1] == "end"
    assert seen[-1][2] == {"status": "succeeded"}
    text = "".join(data["text"] for _, kind, data in seen if kind == "output")
    assert "TASK [Wait for the test to open the gate]" in text and "PLAY RECAP" in text
    done = api.execution(execution_id)
    assert done["status"] == "succeeded"

    # Polling the attempt after a point gives the same chunks, and nothing twice.
    first = api.client.get(f"/api/executions/{execution_id}/attempts/1/output",
                           headers=api.auth).json()  # fmt: skip
    assert first["step"] == 1 and first["step_attempt"] == 1 and first["running"] is False
    assert "".join(c["text"] for c in first["chunks"]) == text
    middle = first["chunks"][0]["seq"]
    rest = api.client.get(f"/api/executions/{execution_id}/attempts/1/output",
                          params={"after": middle}, headers=api.auth).json()  # fmt: skip
    assert [c["seq"] for c in rest["chunks"]] == [c["seq"] for c in first["chunks"][1:]]
    # A reconnecting follower resumes after the last event it saw.
    resumed = list(_events(api, execution_id, **{"last-event-id": str(middle)}))
    assert [d["seq"] for k, d in resumed if k == "output"] == [c["seq"] for c in rest["chunks"]]
    missing = api.client.get(f"/api/executions/{execution_id}/attempts/2/output", headers=api.auth)
    assert missing.status_code == 404
    assert api.client.get("/api/executions/nope/events", headers=api.auth).status_code == 404
    assert api.client.get(f"/api/executions/{execution_id}/events").status_code == 401


def test_a_secret_split_across_two_writes_is_masked_and_the_tail_is_kept(
    make_api: Callable[..., Api], tmp_path: Path, instant_kind: None
) -> None:
    gate = tmp_path / "gate"
    api = make_api([runbook("live", "Live", instant_step(tmp_path / "out", gate=str(gate)))])
    execution_id = api.alertmanager(alert("Live")).json()["executions"][0]
    services = api.services
    with services.db.read() as session:
        step_id = session.get_one(Execution, execution_id).steps[0].id
    live = LiveOutput(Attempt(execution_id, step_id, 0, 9), services.secrets)
    live("token is " + AM_TOKEN[:7])
    live.flush(services)  # the flusher's tick, at the worst moment
    live(AM_TOKEN[7:] + " and more\n")
    live.flush(services)
    live.flush(services, final=True)
    with services.db.read() as session:
        chunks = [c.text for c in output_after(session, execution_id, 0, position=0, attempt=9)]
    assert len(chunks) >= 2 and "".join(chunks) == "token is *** and more\n"
    assert not any(AM_TOKEN[:4] in chunk for chunk in chunks)
    gate.touch()
    api.wait(execution_id)

    # An attempt keeps the tail of its output; offsets say how much came before.
    with services.db.write() as session:
        for n in range(10):
            append_output(session, execution_id=execution_id, step_id=step_id, position=0,
                          attempt=5, offset=n * 100, text="x" * 100, at=datetime.now(UTC),
                          keep_chars=350)  # fmt: skip
    with services.db.read() as session:
        kept = [(c.offset, len(c.text)) for c in session.query(OutputChunk).filter_by(attempt=5)]
    assert kept == [(600, 100), (700, 100), (800, 100), (900, 100)]


def test_remediator_logs_follows_an_execution_to_its_end(
    make_api: Callable[..., Api], tmp_path: Path, instant_kind: None
) -> None:
    """`remediator logs --follow` reads the store, as any replica's operator would: what
    the step said while it waits, then the rest, then how the execution ended."""
    gate = tmp_path / "gate"
    api = make_api([runbook("live", "Live", instant_step(tmp_path / "out", gate=str(gate),
                                                         line="waiting at the gate"))])  # fmt: skip
    execution_id = api.alertmanager(alert("Live")).json()["executions"][0]
    follower = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--config", str(tmp_path / "remediator.yaml"), "logs",
         execution_id[:8], "--follow"],
        cwd=tmp_path, stdout=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert follower.stdout is not None
    assert follower.stdout.readline() == "--- step 1, attempt 1\n"
    assert follower.stdout.readline() == "waiting at the gate starting\n"
    assert api.execution(execution_id)["status"] == "running"
    gate.touch()
    rest, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0
    assert rest.endswith("--- execution succeeded\n")

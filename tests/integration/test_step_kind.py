"""A step kind is one module and one registry line: `note`, defined only here and added to
the registry, works end to end through the loader (paths and templates checked with
file:line), simulate, a run, secret masking and the API, with nothing else told of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from app.config.settings import Settings
from app.errors import RunbookError
from app.fields.duration import Duration
from app.fields.templating import render_value
from app.gitops.records import Records
from app.runbooks.loader import load_runbooks
from app.steps.base import Executor, StepInput, StepResult, StepSpec, strings_in
from app.steps.registry import KINDS
from tests.support.service import Api, alert, bearer


class NoteStep(StepSpec):
    """`note:` writes `text` to a file in `folder` (relative to the playbooks directory).
    A payload may fill `text` and `fields` (as data)."""

    folder: str
    text: str
    fields: dict[str, Any] = Field(default_factory=dict)
    timeout: Duration = 10.0


class NoteExecutor:
    kind = "note"

    def __init__(self, base: Path) -> None:
        self.base = base

    def run(self, step: StepInput, *, cancelled: Callable[[], bool]) -> StepResult:
        started = datetime.now(UTC)
        spec = NoteStep.model_validate(step.spec)
        target = self.base / spec.folder / f"note-{step.execution_id}.txt"
        target.write_text(spec.text)
        said = f"wrote {target.name}: {spec.text} {spec.fields}"
        return StepResult("succeeded", 0, said, started, datetime.now(UTC),
                          detail={"summary": f"note in {spec.folder}"})  # fmt: skip

    def preview(self, spec: dict[str, Any]) -> dict[str, Any]:
        return {"would_write_in": spec["folder"]}

    def targets(self, spec: dict[str, Any]) -> list[str]:
        return [f"folder:{spec['folder']}"]


class NoteKind:
    name = "note"
    spec_model = NoteStep
    engines = ()

    def templates(self, spec: NoteStep) -> Iterator[tuple[str, str]]:
        yield "text", spec.text
        yield from strings_in(spec.fields, "fields")

    def render(self, spec: NoteStep, context: Mapping[str, Any]) -> dict[str, Any]:
        rendered = spec.model_dump(mode="json")
        rendered["text"] = render_value(spec.text, context)
        rendered["fields"] = render_value(spec.fields, context)
        return rendered

    def timeout_s(self, spec: NoteStep) -> float:
        return spec.timeout

    def variables(self, spec: NoteStep) -> Mapping[str, Any]:
        return spec.fields

    def paths(self, spec: NoteStep) -> Iterator[tuple[str, str, str]]:
        yield "folder", "playbooks_dir", spec.folder

    def executor(self, settings: Settings, _records: Records) -> Executor:
        return NoteExecutor(settings.playbooks_dir)


@pytest.fixture
def note_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KINDS, "note", NoteKind())  # the one registry line


def note_runbook(folder: str, text: str = "{{ incident.title }}") -> dict[str, Any]:
    return {
        "name": "take-note",
        "match": {"source": "alertmanager", "all": [{"field": "labels.alertname", "equals": "Note"}]},
        "steps": [{"note": {"folder": folder, "text": text,
                            "fields": {"token": "{{ incident.labels.token }}"}}}],
        "secret_vars": ["token"],
    }  # fmt: skip


def test_a_kind_from_one_module_runs_end_to_end(
    note_kind: None, make_api: Callable[..., Api], tmp_path: Path
) -> None:
    playbooks = tmp_path / "playbooks"
    (playbooks / "notes").mkdir(parents=True)
    api = make_api([note_runbook("notes")], playbooks_dir=str(playbooks))

    listed = api.client.get("/api/runbooks/take-note", headers=api.auth).json()
    assert listed["runbook"]["steps"] == [{"note": {
        "folder": "notes", "text": "{{ incident.title }}",
        "fields": {"token": "{{ incident.labels.token }}"}, "timeout": 10.0,
    }, "idempotent": False}]  # fmt: skip

    payload = alert("Note", token="tok-0123456789")
    payload["alerts"][0]["annotations"]["summary"] = "disk full on db-1"
    simulated = api.client.post("/api/simulate", headers=bearer("alice"),
                                json={"source": "alertmanager", "payload": payload}).json()  # fmt: skip
    [step] = simulated["incidents"][0]["matched"][0]["steps"]
    assert step["kind"] == "note" and step["text"] == "disk full on db-1"
    assert step["would_act_on"] == {"would_write_in": "notes"}

    [execution_id] = api.alertmanager(payload).json()["executions"]
    done = api.wait(execution_id)
    assert done["status"] == "succeeded", done
    note = playbooks / "notes" / f"note-{execution_id}.txt"
    assert note.read_text() == "disk full on db-1"
    [ran] = done["steps"]
    assert ran["kind"] == "note" and ran["attempt_log"][0]["output_tail"].startswith("wrote")
    # The secret the payload put in `fields` is masked in the view, wherever it shows.
    assert "tok-0123456789" not in str(done) and "***" in ran["attempt_log"][0]["output_tail"]


def test_a_kind_gets_the_loaders_checks(note_kind: None, tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "note.yml").write_text(
        "name: n\nsteps:\n  - note: {folder: ../elsewhere, text: '{{ incident.titel }}'}\n"
    )
    with pytest.raises(RunbookError) as raised:
        load_runbooks([runbooks], playbooks_dir=playbooks)
    problems = [str(p) for p in raised.value.problems]
    assert any(":1: at steps[0].note.folder '../elsewhere' leaves its directory" in p
               for p in problems), problems  # fmt: skip
    assert any("steps[0].note.text template uses incident.titel" in p for p in problems), problems
    (runbooks / "note.yml").write_text("name: n\nsteps:\n  - note: {folder: x, txt: y}\n")
    with pytest.raises(RunbookError, match=r":3: at steps\[0\]\.note\.txt"):
        load_runbooks([runbooks])

"""Runbook tests (`remediator test`): cases that say, for a payload, which runbooks must
match and what their steps must render to, run through the real source normalisation
(signature not checked), loader, matcher, occurrence rule and renderer with its sinks.

A test file (`*.test.yaml` / `*.test.yml`) is a list of cases:

    - name: cache full on web-1 clears the cache there
      source: alertmanager
      payload_file: payloads/cache-full.json     # relative to this file; or payload: {...}
      expect:
        runbooks: [clear-cache-when-full]          # exactly these match ([] = none)
        steps:                                     # per runbook, step by step, partially
          clear-cache-when-full:
            - ansible: {extra_vars: {cache_dir: /tmp/remediator-demo/cache}}
        mode: auto                                 # the runbook's own mode
        error: limit                               # a rendering error containing this
        runs:                                      # per runbook, by step id: would it run
          failover-when-close: {failover: true, page: false}
      outputs: {lag: {lag_s: 12}}                  # what steps would find, by step id

`outputs` stand for what earlier steps would find (as if they had run and succeeded), so
that a `when` reading them is decided and a step reading them is rendered; a `runs`
entry whose `when` cannot be decided from them fails the case.

Rules: values are equal; lists are equal in length and compared item by item; mappings
are partial (keys a case does not name are not looked at). When several incidents of one
payload match a runbook, each of them must render as expected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.errors import RemediatorError, RunbookError, RunbookProblem
from app.runbooks.loader import is_test_file
from app.runbooks.matcher import Matcher
from app.runbooks.yaml_places import read_documents, validation_problems
from app.simulate import simulate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(_Strict):
    runbooks: list[str] | None = Field(
        default=None, description="Exactly these runbooks match, in any order ([]: none)."
    )
    steps: dict[str, list[dict[str, Any]]] | None = Field(
        default=None,
        description="Per runbook, its rendered steps, each `{kind: {field: value}}`, partially.",
    )
    mode: Literal["auto", "approve", "shadow"] | None = Field(
        default=None, description="The mode every matching runbook would run in (its own)."
    )
    error: str | None = Field(
        default=None,
        description="A matching runbook fails to render, with an error containing this "
        "(a payload value its field refuses).",
    )
    runs: dict[str, dict[str, bool]] | None = Field(
        default=None,
        description="Per runbook, by step id: whether the step would run (its `when`, "
        "decided with the case's `outputs`).",
    )


class Case(_Strict):
    name: str = Field(min_length=1)
    source: str = Field(min_length=1)
    payload: Any = None
    payload_file: str | None = None
    outputs: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="What earlier steps would find, by step id (their outputs), as if they "
        "had run and succeeded.",
    )
    expect: Expect

    @model_validator(mode="after")
    def _one_payload(self) -> Case:
        if (self.payload is None) == (self.payload_file is None):
            raise ValueError("give exactly one of payload and payload_file")
        return self


@dataclass(frozen=True)
class LocatedCase:
    case: Case
    file: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def body(self) -> bytes:
        if self.case.payload_file is None:
            return json.dumps(self.case.payload).encode()
        path = self.file.parent / self.case.payload_file
        try:
            return path.read_bytes()
        except OSError as exc:
            raise BrokenTestFile(
                [RunbookProblem(str(self.file), self.line, "payload_file", f"cannot read: {exc}")]
            ) from exc


class BrokenTestFile(RunbookError):
    """A test file that cannot be read or is not a list of cases (exit 2)."""


@dataclass(frozen=True)
class Outcome:
    case: LocatedCase
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def find_test_files(paths: list[Path]) -> list[Path]:
    """The test files at or below each path, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if is_test_file(p)))
        elif path.exists():
            found.append(path)
        else:
            raise BrokenTestFile([RunbookProblem(str(path), None, "", "no such file")])
    return found


def load_cases(files: list[Path]) -> list[LocatedCase]:
    """Every case of every file, or BrokenTestFile with every problem, located."""
    problems: list[RunbookProblem] = []
    cases: list[LocatedCase] = []
    for file in files:
        cases.extend(_cases_of(file, problems))
    if problems:
        raise BrokenTestFile(problems)
    return cases


def _cases_of(file: Path, problems: list[RunbookProblem]) -> Iterator[LocatedCase]:
    name = str(file)
    documents = read_documents(file, problems)
    if documents is None:
        return
    node, value = documents[0] if len(documents) == 1 else (None, None)
    if not isinstance(value, list) or not isinstance(node, yaml.SequenceNode):
        line = node.start_mark.line + 1 if node is not None else None
        problems.append(RunbookProblem(name, line, "", "a test file is a list of cases"))
        return
    for index, (item_node, item) in enumerate(zip(node.value, value, strict=True)):
        try:
            case = Case.model_validate(item)
        except ValidationError as exc:
            problems.extend(validation_problems(name, item_node, exc, f"[{index}]"))
            continue
        yield LocatedCase(case, file, item_node.start_mark.line + 1)


def run_case(matcher: Matcher, located: LocatedCase) -> Outcome:
    """The case against what the runbooks would do with its payload."""
    case = located.case
    try:
        report = simulate(matcher, case.source, located.body(), outputs=case.outputs)
    except BrokenTestFile:
        raise
    except RemediatorError as exc:  # an unknown source, a payload not of its shape
        return Outcome(located, [f"the payload was refused: {exc}"])
    matched = [m for incident in report["incidents"] for m in incident["matched"]]
    expect, failures = case.expect, []
    names = sorted({m["runbook"] for m in matched})
    if expect.runbooks is not None and sorted(set(expect.runbooks)) != names:
        failures.append(_side_by_side("runbooks", sorted(set(expect.runbooks)), names))
    for runbook, steps in (expect.steps or {}).items():
        rendered = [m for m in matched if m["runbook"] == runbook]
        if not rendered:
            failures.append(f"steps of {runbook}: it did not match")
        for one in rendered:
            actual = [{step["kind"]: _spec(step)} for step in one["steps"]]
            found = differences(steps, actual, f"steps.{runbook}")
            if found:
                failures.append(_side_by_side(f"steps of {runbook}", steps, actual, found))
    for runbook, expected_runs in (expect.runs or {}).items():
        for one in (m for m in matched if m["runbook"] == runbook):
            failures.extend(_runs_unlike(runbook, expected_runs, one["steps"]))
        if not any(m["runbook"] == runbook for m in matched):
            failures.append(f"runs of {runbook}: it did not match")
    if expect.mode is not None:
        failures.extend(
            f"mode of {m['runbook']}: expected {expect.mode}, would be {m['mode']}"
            for m in matched if m["mode"] != expect.mode
        )  # fmt: skip
    errors = [str(m["error"]) for m in matched if m.get("error")]
    if expect.error is not None and not any(expect.error in e for e in errors):
        failures.append(_side_by_side("error", f"…{expect.error}…", errors or None))
    if expect.error is None and errors:
        failures.append(f"rendering failed: {'; '.join(errors)}")
    return Outcome(located, failures)


def _runs_unlike(
    runbook: str, expected: dict[str, bool], steps: list[dict[str, Any]]
) -> Iterator[str]:
    by_id = {step["id"]: step for step in steps if "id" in step}
    for step_id, runs in expected.items():
        step = by_id.get(step_id)
        if step is None:
            yield f"runs of {runbook}: it has no step with id {step_id!r}"
        elif step["runs"] is None:
            yield f"runs of {runbook}.{step_id}: undecided ({step['why']}); give `outputs`"
        elif step["runs"] != runs:
            yield (f"runs of {runbook}.{step_id}: expected {'to run' if runs else 'skipped'}, "
                   f"would {'run' if step['runs'] else 'be skipped'}: {step['why']}")  # fmt: skip


def _spec(step: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in step.items() if k not in ("kind", "idempotent")}


def differences(expected: Any, actual: Any, path: str) -> list[str]:
    """Where `actual` is not what `expected` says: mappings partial, lists item by item
    and equal in length, other values equal (numbers by value, flags only to flags)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a mapping, got {_shown(actual)}"]
        found: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                found.append(f"{path}.{key}: missing")
            else:
                found.extend(differences(value, actual[key], f"{path}.{key}"))
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {_shown(expected)}, got {_shown(actual)}"]
        return [d for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for d in differences(e, a, f"{path}[{i}]")]  # fmt: skip
    # Numbers by value (a `timeout: 60` is the rendered 60.0), but a flag is not a number.
    if expected != actual or isinstance(expected, bool) != isinstance(actual, bool):
        return [f"{path}: expected {_shown(expected)}, got {_shown(actual)}"]
    return []


def _shown(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _side_by_side(what: str, expected: Any, actual: Any, where: list[str] | None = None) -> str:
    lines = [f"{what}:", f"    expected: {_shown(expected)}", f"    rendered: {_shown(actual)}"]
    lines.extend(f"    - {one}" for one in where or [])
    return "\n".join(lines)


def report_text(outcomes: list[Outcome]) -> str:
    lines = []
    for outcome in outcomes:
        mark = "ok  " if outcome.passed else "FAIL"
        lines.append(f"{mark} {outcome.case.where} {outcome.case.case.name}")
        lines.extend("     " + line for f in outcome.failures for line in f.splitlines())
    failed = sum(not o.passed for o in outcomes)
    lines.append(f"{len(outcomes) - failed} passed, {failed} failed")
    return "\n".join(lines) + "\n"


def report_junit(outcomes: list[Outcome]) -> bytes:
    """JUnit XML as CI systems read it: one testsuite per file, one testcase per case."""
    root = ElementTree.Element("testsuites", name="remediator test")
    by_file: dict[Path, list[Outcome]] = {}
    for outcome in outcomes:
        by_file.setdefault(outcome.case.file, []).append(outcome)
    for file, ones in by_file.items():
        failed = sum(not o.passed for o in ones)
        suite = ElementTree.SubElement(root, "testsuite", name=str(file), tests=str(len(ones)),
                                       failures=str(failed), errors="0", skipped="0")  # fmt: skip
        for outcome in ones:
            case = ElementTree.SubElement(suite, "testcase", name=outcome.case.case.name,
                                          classname=str(file), file=str(file),
                                          line=str(outcome.case.line))  # fmt: skip
            if not outcome.passed:
                unmet = "; ".join(f.split(":", 1)[0] for f in outcome.failures)
                failure = ElementTree.SubElement(
                    case, "failure", message=f"not as expected: {unmet}"
                )
                failure.text = "\n".join(outcome.failures)
    root.set("tests", str(len(outcomes)))
    root.set("failures", str(sum(not o.passed for o in outcomes)))
    return bytes(ElementTree.tostring(root, encoding="utf-8", xml_declaration=True))

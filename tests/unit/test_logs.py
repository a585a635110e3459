from __future__ import annotations

import json
import logging

import pytest

from app.logs import configure_logging, log_context

SECRET = 's3cr3t-"token\\'


@pytest.fixture
def restore_root() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:], root.level = handlers, level


def test_json_lines_carry_the_context_and_mask_secrets(
    restore_root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json", [SECRET])
    log = logging.getLogger("remediator.test")
    with log_context(execution_id="e-1", runbook="r"):
        with log_context(event_id="ev-1", unset=None):
            log.info("calling %s", f"https://hooks.example/{SECRET}")
        try:
            raise RuntimeError(f"refused: {json.dumps({'token': SECRET})}")
        except RuntimeError:
            log.exception("delivery failed")
    log.info("outside")
    first, second, third = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["message"] == "calling https://hooks.example/***"
    assert (first["execution_id"], first["runbook"], first["event_id"]) == ("e-1", "r", "ev-1")
    assert (
        "unset" not in first and first["level"] == "info" and first["logger"] == "remediator.test"
    )
    assert "event_id" not in second and "RuntimeError" in second["message"]
    assert SECRET not in second["message"] and "***" in second["message"]
    assert "execution_id" not in third


def test_text_lines_append_the_context(
    restore_root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("warning", "text", [SECRET])
    log = logging.getLogger("remediator.test")
    with log_context(execution_id="e-2"):
        log.info("not shown")
        log.warning("slow target %s", SECRET)
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith("WARNING remediator.test: slow target *** execution_id=e-2")

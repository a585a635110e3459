"""The command a newcomer meets: a description and examples, a version, and help on
every command and option."""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Iterator

import pytest

from app.cli import main, parser


def _parsers(root: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield root.prog, root
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_help_describes_the_product_and_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    said = capsys.readouterr().out
    assert said.startswith("usage: remediator") and "automated remediation" in said
    assert "Errors become messages" not in said  # the module's note for its developers
    assert "remediator executions show 3f2a9c1e" in said and "COMMAND --help" in said


def test_version_is_the_installed_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"remediator {importlib.metadata.version('remediator')}\n"


def test_every_command_and_option_has_help() -> None:
    missing = [
        f"{prog}: {action.option_strings or action.dest}"
        for prog, one in _parsers(parser())
        for action in one._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []
    described = [prog for prog, one in _parsers(parser()) if not one.description]
    assert described == []

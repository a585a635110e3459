"""The `remediator` command. Errors become messages and exit codes here, once:
1 for a runbook/config problem the user must fix, 2 for usage."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select

from app.config import Settings, config_path_from, load_settings
from app.errors import ConfigError, RemediatorError, RunbookError
from app.executors.registry import build_executors
from app.logs import configure_logging
from app.runbooks.loader import load_runbooks
from app.runbooks.models import Runbook
from app.simulate import simulate
from app.store.db import Database
from app.store.models import Execution
from app.store.views import execution_summary
from app.wiring import load_matcher


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(config_path_from(args.config))


def _print(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app

    settings = _settings(args)
    configure_logging(args.log_level, settings.log_format, settings.secret_values())
    uvicorn.run(
        create_app(settings), host=args.host, port=args.port, log_level=args.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5, log_config=None,
    )  # fmt: skip
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    if args.paths:
        runbooks = load_runbooks([Path(p) for p in args.paths])
    else:
        runbooks = list(load_matcher(_settings(args)).runbooks)
    sys.stdout.write(f"ok: {len(runbooks)} runbook(s)\n")
    for item in runbooks:
        sys.stdout.write(f"  {item.runbook.name}  ({item.file}:{item.line})\n")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    body = Path(args.payload).read_bytes()
    settings = _settings(args)
    db = Database(settings.database_url)
    try:
        db.upgrade()  # `last_good` versions are read from it
        executors = build_executors(settings, db)
        _print(simulate(load_matcher(settings), args.source, body, executors))
    finally:
        db.close()
    return 0


def cmd_schema(_: argparse.Namespace) -> int:
    schema = TypeAdapter(Runbook | list[Runbook]).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "remediator runbook file"
    _print(schema)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)
    Database(settings.database_url).upgrade()
    sys.stdout.write("database is at the newest schema\n")
    return 0


def cmd_executions(args: argparse.Namespace) -> int:
    db = Database(_settings(args).database_url)
    query = select(Execution).order_by(Execution.created_at.desc()).limit(args.limit)
    if args.status:
        query = query.where(Execution.status == args.status)
    with db.read() as session:
        _print([execution_summary(e).model_dump(mode="json") for e in session.scalars(query)])
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="remediator", description=__doc__)
    root.add_argument(
        "--config", help="config file (default: $REMEDIATOR_CONFIG, ./remediator.yaml)"
    )
    commands = root.add_subparsers(dest="command", required=True)

    def add(
        name: str, run: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_)
        sub.add_argument("--config", default=argparse.SUPPRESS, help="config file")
        sub.set_defaults(run=run)
        return sub

    serve = add("serve", cmd_serve, "run the service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    lint = add("lint", cmd_lint, "validate runbooks (default: the configured runbooks_dir)")
    lint.add_argument("paths", nargs="*")
    sim = add("simulate", cmd_simulate, "show what a payload would match and run")
    sim.add_argument("payload")
    sim.add_argument("--source", required=True)
    add("schema", cmd_schema, "print the JSON Schema of runbook files")
    db = add("db", lambda _: 2, "database commands")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply migrations")
    upgrade.add_argument("--config", default=argparse.SUPPRESS)
    upgrade.set_defaults(run=cmd_db_upgrade)
    executions = add("executions", cmd_executions, "list recent executions")
    executions.add_argument("--status")
    executions.add_argument("--limit", type=int, default=50)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not hasattr(args, "config"):
        args.config = None
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except RunbookError as exc:
        sys.stderr.write(f"{len(exc.problems)} problem(s):\n{exc}\n")
        return 1
    except ConfigError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        return 1
    except (RemediatorError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())

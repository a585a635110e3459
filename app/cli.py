"""The `remediator` command. Errors become messages and exit codes here, once: 1 for a
runbook, config or database problem the user must fix, 2 for usage (argparse's own)."""

from __future__ import annotations

import argparse
import getpass
import importlib.metadata
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.backtest.history import export_lines, from_database, from_file
from app.backtest.replay import backtest
from app.backtest.report import backtest_markdown, backtest_text
from app.config.loading import config_path_from, load_settings
from app.config.settings import Settings
from app.errors import ConfigError, NotFound, RemediatorError, RunbookError, UnsupportedPayload
from app.execution_text import describe_execution
from app.executions.records import StoreRecords
from app.fields.duration import parse_duration
from app.identity import Identity
from app.logs import configure_logging
from app.manual import run_manually
from app.runbook_tests import (
    BrokenTestFile,
    find_test_files,
    load_cases,
    report_junit,
    report_text,
    run_case,
)
from app.runbooks.loader import load_runbooks
from app.runbooks.matcher import Matcher
from app.runbooks.models import Runbook
from app.runbooks.trust import TrustPolicy
from app.services import build_services, load_matcher
from app.simulate import Trust, simulate
from app.sources.registry import get_source
from app.steps.registry import build_executors
from app.store.audit import AuditEntry, record_audit
from app.store.db import Database
from app.store.models import FINAL, Execution
from app.store.output import output_after
from app.store.trust import clear_pause, set_pause
from app.store.views import execution_summaries, execution_view


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(config_path_from(args.config))


def _print(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.api.http_protocol import bounded_protocol
    from app.main import create_app

    settings = _settings(args)
    configure_logging(args.log_level, settings.log_format, settings.secret_values())
    # Built here, not in the app's start-up: a broken runbook set, configuration or
    # database is then a few plain lines and exit 1, not a server traceback.
    services = build_services(settings)
    uvicorn.run(
        create_app(settings, services=services),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
        log_config=None,
        access_log=settings.access_log,
        # Who may speak for a caller is decided in one place, `auth.trusted_proxy`; uvicorn
        # would otherwise rewrite the peer address from X-Forwarded-For for 127.0.0.1.
        proxy_headers=False,
        http=bounded_protocol(settings.max_header_bytes, settings.max_headers),
    )
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
        executors = build_executors(settings, StoreRecords(db))
        trust = Trust(db, TrustPolicy.of(settings))
        _print(simulate(load_matcher(settings), args.source, body, executors, trust))
    finally:
        db.close()
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """Exit 0 when every case passes, 1 when any fails (or the runbooks do not load), 2
    when a test file cannot be read or is not a list of cases."""
    settings = _settings(args)
    paths = [Path(p) for p in args.paths] or [settings.runbooks_dir / "tests"]
    try:
        cases = load_cases(find_test_files(paths))
    except BrokenTestFile as exc:
        sys.stderr.write(f"{len(exc.problems)} problem(s) in the test files:\n{exc}\n")
        return 2
    matcher = load_matcher(settings)
    try:
        outcomes = [run_case(matcher, case) for case in cases]
    except BrokenTestFile as exc:  # a payload_file that cannot be read
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.write(report_text(outcomes))
    if args.junit_xml:
        Path(args.junit_xml).write_bytes(report_junit(outcomes))
    if not cases:
        sys.stderr.write(f"no test files (*.test.yaml) under {', '.join(map(str, paths))}\n")
    return 0 if all(o.passed for o in outcomes) else 1


def _moment(text: str, now: datetime) -> datetime:
    """`30d` (that long ago) or an ISO 8601 time (UTC unless it says)."""
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RemediatorError(
            f"{text!r} is neither a duration (30d) nor a time (2026-11-01)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _window(args: argparse.Namespace) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return _moment(args.since, now), _moment(args.until, now) if args.until else now


def cmd_backtest(args: argparse.Namespace) -> int:
    """Exit 0, or 1 with --fail-on-change when any incident would be handled differently."""
    settings = _settings(args)
    since, until = _window(args)
    if args.runbooks:
        candidate = Matcher(load_runbooks(
            [Path(args.runbooks)], playbooks_dir=settings.playbooks_dir,
            terraform_dir=settings.terraform_dir,
            known_targets=set(settings.escalation.configured()),
        ))  # fmt: skip
    else:
        candidate = load_matcher(settings)
    if args.events:
        report = backtest(candidate, from_file(Path(args.events), since, until), since, until)
    else:
        db = Database(settings.database_url)
        try:
            report = backtest(candidate, from_database(db, since, until), since, until)
        finally:
            db.close()
    if args.format == "json":
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    elif args.format == "markdown":
        sys.stdout.write(backtest_markdown(report))
    else:
        sys.stdout.write(backtest_text(report))
    return 1 if args.fail_on_change and report.changed else 0


def cmd_events_export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    since, until = _window(args)
    db = Database(settings.database_url)
    try:
        entries = from_database(db, since, until, args.source)
        sys.stdout.writelines(export_lines(entries, settings.secret_values()))
    finally:
        db.close()
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    """Sign PAYLOAD as the platform would, with the configured secret or token, and post
    it to a running service; with --wait, follow what it started to its end. Exit 0 when
    it was accepted (and what it started succeeded), 1 otherwise."""
    settings = _settings(args)
    config = settings.sources.get(args.source)
    if config is None:
        raise ConfigError(f"sources.{args.source} is not configured in this config")
    body = Path(args.payload).read_bytes()
    headers = get_source(args.source).sign(body, config, time.time())
    url = f"{args.url.rstrip('/')}/webhooks/{args.source}"
    try:
        answer = httpx.post(url, content=body, timeout=30,
                            headers={**headers, "content-type": "application/json"})  # fmt: skip
    except httpx.TransportError as exc:
        raise RemediatorError(f"cannot reach {url}: {exc}") from exc
    sys.stdout.write(f"{answer.status_code} {answer.reason_phrase}\n{answer.text}\n")
    if not answer.is_success:
        return 1
    started = [str(i) for i in answer.json().get("executions", [])]
    if not args.wait or not started:
        return 0
    return _follow(settings, started, args.wait)


def _follow(settings: Settings, execution_ids: list[str], wait_s: float) -> int:
    """A line per execution once it ended (read from the service's database); exit 0
    when every one succeeded."""
    db = Database(settings.database_url)
    deadline, left, failed = time.monotonic() + wait_s, list(execution_ids), False
    try:
        while left and time.monotonic() < deadline:
            with db.read() as session:
                for execution in session.scalars(select(Execution).where(Execution.id.in_(left))):
                    if execution.status in FINAL:
                        left.remove(execution.id)
                        failed |= execution.status != "succeeded"
                        why = f": {execution.error}" if execution.error else ""
                        sys.stdout.write(f"execution {execution.id} ({execution.runbook}): "
                                         f"{execution.status}{why}\n")  # fmt: skip
            if left:
                time.sleep(0.5)
    finally:
        db.close()
    for execution_id in left:
        sys.stderr.write(f"execution {execution_id} is not done after {wait_s:g}s\n")
    return 1 if failed or left else 0


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
    if getattr(args, "execution_id", None) is not None:
        return cmd_execution_show(args)
    db = Database(_settings(args).database_url)
    query = select(Execution).order_by(Execution.created_at.desc()).limit(args.limit)
    if args.status:
        query = query.where(Execution.status.in_(args.status))
    if args.runbook:
        query = query.where(Execution.runbook == args.runbook)
    with db.read() as session:
        summaries = execution_summaries(session, list(session.scalars(query)))
        _print([summary.model_dump(mode="json") for summary in summaries])
    return 0


def cmd_execution_show(args: argparse.Namespace) -> int:
    """One execution, whole: as the API answers it (`--json`), or in lines for a person."""
    settings = _settings(args)
    db = Database(settings.database_url)
    try:
        with db.read() as session:
            found = _execution(session, args.execution_id)
            view = execution_view(found, settings.secret_values())
    finally:
        db.close()
    if args.json:
        _print(view.model_dump(mode="json"))
    else:
        sys.stdout.write(describe_execution(view))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    """An execution's output as it was stored while it ran, step by step; with
    `--follow`, what comes next too, until the execution is over (exit 0 if it
    succeeded, 1 if not). Reads the database: it works whichever replica runs it."""
    settings = _settings(args)
    db = Database(settings.database_url)
    try:
        with db.read() as session:
            execution_id = _execution(session, args.execution_id).id
        after, step = 0, None
        while True:
            with db.read() as session:
                chunks = output_after(session, execution_id, after)
                status = session.get_one(Execution, execution_id).status
            for chunk in chunks:
                if (chunk.position, chunk.attempt) != step:
                    step = (chunk.position, chunk.attempt)
                    sys.stdout.write(f"--- step {chunk.position + 1}, attempt {chunk.attempt}\n")
                sys.stdout.write(chunk.text)
                after = chunk.id
            sys.stdout.flush()
            if chunks:
                continue  # there may be more already
            if not args.follow or status in FINAL:
                if args.follow:
                    sys.stdout.write(f"--- execution {status}\n")
                return 0 if status == "succeeded" or not args.follow else 1
            time.sleep(FOLLOW_S)
    finally:
        db.close()


# How often `logs --follow` looks for more.
FOLLOW_S = 0.25
SHORT_ID = 8  # characters of an id, as the page and the notices show it


def _execution(session: Session, wanted: str) -> Execution:
    """By its id, or by a prefix of it as the page and the notices show it (8 characters)."""
    found = session.get(Execution, wanted)
    if found is not None:
        return found
    prefixed = select(Execution).where(Execution.id.startswith(wanted, autoescape=True))
    matches = list(session.scalars(prefixed.limit(2)))
    if len(matches) == 1 and len(wanted) >= SHORT_ID:
        return matches[0]
    if len(matches) > 1:
        raise NotFound(f"{wanted!r} is the start of several executions: give more of it")
    raise NotFound(f"no execution {wanted!r}")


def cmd_run(args: argparse.Namespace) -> int:
    """Queue a manual run; the service's workers (any replica) run it. With --wait, follow
    it to its end: exit 0 when it succeeded, 1 otherwise."""
    incident = json.loads(Path(args.incident).read_text(encoding="utf-8"))
    if not isinstance(incident, dict):
        raise UnsupportedPayload(f"{args.incident}: the incident must be a JSON object")
    services = build_services(_settings(args))
    try:
        accepted = run_manually(
            services, args.runbook, incident, reason=args.reason,
            # Whoever can run this holds the configuration and the database: the
            # service's operator. The name is the account's, and says it came this way.
            by=Identity(args.by, frozenset({"admin"}), "cli"),
            idempotency_key=args.idempotency_key,
        )  # fmt: skip
        ids = accepted.executions or accepted.attached
        _print({"event_id": accepted.event_id, "executions": accepted.executions,
                "attached": accepted.attached, "duplicate": accepted.duplicate})  # fmt: skip
        if not args.wait or not ids:
            return 0
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            with services.db.read() as session:
                execution = session.get_one(Execution, ids[0])
                if execution.status in FINAL:
                    _print(execution_view(execution, services.secrets).model_dump(mode="json"))
                    return 0 if execution.status == "succeeded" else 1
            time.sleep(0.5)
        sys.stderr.write(f"execution {ids[0]} is not done after {args.wait:g}s\n")
        return 1
    finally:
        services.db.close()


def _switch(
    args: argparse.Namespace, route: str, change: Callable[[Session, datetime], str]
) -> int:
    """Throw the pause switch from the command line: the database is the service's (every
    replica sees it at once), the change is audited under the account's name, `via cli`."""
    db = Database(_settings(args).database_url)
    try:
        now = datetime.now(UTC)
        with db.write() as session:
            said = change(session, now)
            record_audit(session, AuditEntry(
                at=now, identity=args.by, roles="admin", via="cli", method="CLI", route=route,
                target=None, outcome="ok", status=200, client=None,
            ))  # fmt: skip
        sys.stdout.write(said + "\n")
        return 0
    finally:
        db.close()


def cmd_pause(args: argparse.Namespace) -> int:
    def pause(session: Session, now: datetime) -> str:
        until = now + timedelta(seconds=parse_duration(args.until)) if args.until else None
        set_pause(session, by=f"{args.by} (via cli)", reason=args.reason, since=now,
                  until=until, runbooks=args.runbook or None)  # fmt: skip
        which = ", ".join(args.runbook) if args.runbook else "all runbooks"
        return f"paused {which} until {until.isoformat() if until else 'resumed'}"

    return _switch(args, "remediator pause", pause)


def cmd_resume(args: argparse.Namespace) -> int:
    def resume(session: Session, _: datetime) -> str:
        was = clear_pause(session)
        return "resumed" if was is not None else "was not paused"

    return _switch(args, "remediator resume", resume)


DESCRIPTION = """\
remediator: webhook-driven automated remediation. Incident platforms call its webhooks;
it matches each incident to the runbooks kept in git, runs the remediation (Ansible,
Terraform, AWX, HCP Terraform, a CI pipeline), checks it worked, and escalates to a human
when it did not."""

EXAMPLES = """\
examples:
  remediator serve --config remediator.yaml          run the service
  remediator lint runbooks/                           check runbooks before they merge
  remediator test                                     run the runbooks' tests (runbooks/tests/)
  remediator simulate alert.json --source alertmanager
                                                      what a payload would match and run
  remediator executions --status failed --limit 10    recent failed executions (JSON)
  remediator executions show 3f2a9c1e                 one execution, its steps and output
  remediator logs 3f2a9c1e --follow                   its output, live, as its steps produce it
  remediator run restart-web --incident incident.json --wait 300
                                                      run a runbook now, follow it
  remediator pause --reason "db migration" --until 2h new runs shadow until resumed

The configuration is ./remediator.yaml, $REMEDIATOR_CONFIG or --config FILE. Each
command's own options: remediator COMMAND --help."""


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="remediator",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument(
        "--config", help="config file (default: $REMEDIATOR_CONFIG, else ./remediator.yaml)"
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, run: Callable[[argparse.Namespace], int], help_: str, example: str = ""
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_,
            description=help_[0].upper() + help_[1:] + ".",
            epilog=f"example:\n  {example}" if example else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
        sub.set_defaults(run=run)
        return sub

    serve = add(
        "serve",
        cmd_serve,
        "run the service (webhooks, API, page, workers)",
        "remediator serve --host 0.0.0.0 --port 8080",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (%(default)s)")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the least severe line logged (%(default)s)",
    )
    lint = add(
        "lint",
        cmd_lint,
        "validate runbooks (default: the configured runbooks_dir)",
        "remediator lint runbooks/ other/extra.yml",
    )
    lint.add_argument("paths", nargs="*", metavar="PATH", help="runbook files or directories")
    send = add(
        "send", cmd_send, "sign a payload as its platform would and post it to a service",
        "remediator send alert.json --source alertmanager --url http://127.0.0.1:8080",
    )  # fmt: skip
    send.add_argument("payload", help="a JSON file: the webhook body as the platform sends it")
    send.add_argument("--source", required=True, help="the platform, as configured in sources:")
    send.add_argument("--url", default="http://127.0.0.1:8080",
                      help="the service's base URL (%(default)s)")  # fmt: skip
    send.add_argument("--wait", type=float, default=300, metavar="SECONDS",
                      help="follow what it started to its end (0: not; %(default)s s)")  # fmt: skip
    test = add(
        "test", cmd_test, "run runbook tests: payloads and what must match and render",
        "remediator test runbooks/tests/ --junit-xml report.xml",
    )  # fmt: skip
    test.add_argument("paths", nargs="*", metavar="PATH",
                      help="test files or directories (default: runbooks_dir/tests)")  # fmt: skip
    test.add_argument("--junit-xml", metavar="FILE", help="also write the results as JUnit XML")
    back = add(
        "backtest", cmd_backtest,
        "what a runbook change would have done with the incidents really received",
        "remediator backtest --since 30d --runbooks ./runbooks --format markdown",
    )  # fmt: skip
    _window_options(back)
    back.add_argument(
        "--runbooks",
        metavar="DIR",
        help="the candidate runbooks (default: the configured runbooks_dir)",
    )
    back.add_argument(
        "--events",
        metavar="FILE",
        help="an `events export` file instead of the configured database",
    )
    back.add_argument(
        "--format",
        choices=["text", "json", "markdown"],
        default="text",
        help="text, json, or markdown for a pull request comment (%(default)s)",
    )
    back.add_argument("--fail-on-change", action="store_true",
                      help="exit 1 when any incident would be handled differently")  # fmt: skip
    events = add("events", lambda _: 2, "stored events", "remediator events export --since 30d")
    event_commands = events.add_subparsers(dest="events_command", required=True,
                                           metavar="COMMAND")  # fmt: skip
    export = event_commands.add_parser(
        "export",
        help="stored incidents and what was done with them, as JSON lines (for backtest)",
        description="Stored incidents as they arrived (normalised) and what the service did\n"
        "with each, one JSON line each, configured secrets masked: `backtest --events`\n"
        "reads it where the database cannot be reached.",
        epilog="example:\n  remediator events export --since 30d > events.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _window_options(export)
    export.add_argument("--source", help="only this source's incidents (alertmanager)")
    export.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    export.set_defaults(run=cmd_events_export)
    sim = add(
        "simulate",
        cmd_simulate,
        "show what a payload would match and run",
        "remediator simulate alert.json --source alertmanager",
    )
    sim.add_argument("payload", help="a JSON file: the webhook body as the platform sends it")
    sim.add_argument("--source", required=True, help="the platform that sends it (alertmanager)")
    add(
        "schema",
        cmd_schema,
        "print the JSON Schema of runbook files",
        "remediator schema > runbook.schema.json",
    )
    db = add("db", lambda _: 2, "database commands", "remediator db upgrade")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade = db_commands.add_parser(
        "upgrade",
        help="apply migrations (the service does it at start too)",
        description="Bring the database to the newest schema.",
    )
    upgrade.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    upgrade.set_defaults(run=cmd_db_upgrade)
    executions = add(
        "executions",
        cmd_executions,
        "list recent executions, newest first (JSON)",
        "remediator executions --status failed --status timed_out --limit 10",
    )
    executions.add_argument(
        "--status",
        action="append",
        help="only this status (failed, succeeded, ...); repeat for several",
    )
    executions.add_argument("--runbook", help="only this runbook's executions")
    executions.add_argument("--limit", type=int, default=50, help="at most this many (%(default)s)")
    shown = executions.add_subparsers(dest="executions_command", metavar="show")
    show = shown.add_parser(
        "show",
        help="one execution: status, incident, steps and attempts with their output, "
        "escalations, actions",
        description="One execution: status, incident, each step and attempt with the tail of\n"
        "its output, escalations and what humans did.",
        epilog="example:\n  remediator executions show 3f2a9c1e --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("execution_id", metavar="ID", help="its id, or the first 8+ characters")
    show.add_argument("--json", action="store_true", help="as the API answers it, for scripts")
    show.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    logs = add(
        "logs",
        cmd_logs,
        "an execution's output, as its steps produced it; --follow: live, to its end",
        "remediator logs 3f2a9c1e --follow",
    )
    logs.add_argument("execution_id", metavar="ID", help="its id, or the first 8+ characters")
    logs.add_argument(
        "--follow", "-f", action="store_true",
        help="keep printing what comes, until the execution is over (exit 0 if it succeeded)",
    )  # fmt: skip
    run = add(
        "run",
        cmd_run,
        "run a runbook for an incident now (queued for the service)",
        "remediator run restart-web --incident incident.json --reason drill --wait 300",
    )
    run.add_argument("runbook", help="the runbook's name")
    run.add_argument("--incident", required=True, help="JSON file: a generic-source incident")
    run.add_argument("--by", default=getpass.getuser(), help="who runs it (default: you)")
    run.add_argument("--reason", default="", help="why, for the audit and the execution")
    run.add_argument("--idempotency-key", help="a second run with the same key starts nothing")
    run.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="follow it to its end: exit 0 if it succeeded, 1 if not",
    )
    pause = add(
        "pause",
        cmd_pause,
        "pause automation: new runs shadow (or wait for approval)",
        'remediator pause --reason "db failover drill" --until 2h --runbook "db-*"',
    )
    pause.add_argument("--reason", required=True, help="why, shown on the page and in the audit")
    pause.add_argument("--until", metavar="DURATION", help="ends by itself after this (2h)")
    pause.add_argument("--runbook", action="append", help="a glob; repeat; default all")
    pause.add_argument("--by", default=getpass.getuser(), help="who (default: you)")
    resume = add("resume", cmd_resume, "resume automation after a pause", "remediator resume")
    resume.add_argument("--by", default=getpass.getuser(), help="who (default: you)")
    return root


def _window_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--since",
        required=True,
        metavar="WHEN",
        help="from this long ago (30d) or this time (2026-11-01T00:00Z)",
    )
    command.add_argument("--until", metavar="WHEN", help="up to this long ago or time (now)")


CONFIG_HELP = "config file (default: $REMEDIATOR_CONFIG, else ./remediator.yaml)"


def _version() -> str:
    try:
        return importlib.metadata.version("remediator")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"


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
    except SQLAlchemyError as exc:
        # Its message ends with a paragraph and a link about SQLAlchemy itself.
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        sys.stderr.write(f"database error: {first}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())

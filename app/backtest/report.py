"""A backtest's report as people read it: text for a terminal, Markdown for a pull
request's comment (totals first, capped below the length a comment may have)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.backtest.replay import CHANGE_KINDS, Change, Report

# GitHub refuses a comment over 65,536 characters; GitLab's notes allow more.
COMMENT_LIMIT = 60_000


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _window(report: Report) -> str:
    return f"{_when(report.since)} to {_when(report.until)}"


def _totals(report: Report) -> str:
    return ", ".join(f"{kind}: {report.totals[kind]}" for kind in CHANGE_KINDS)


def backtest_text(report: Report) -> str:
    lines = [
        f"backtest of {report.incidents} incident(s) from {_window(report)}: "
        f"{report.changed} would be handled differently",
        f"  {_totals(report)}",
    ]
    if report.runbooks:
        lines.append("per runbook (matched before → now; new, no longer, rendered, refused):")
        width = max(len(name) for name in report.runbooks)
        for name, c in report.runbooks.items():
            lines.append(
                f"  {name:<{width}}  {c.matched_before} → {c.matched_now};  +{c.new_match} "
                f"-{c.no_longer_matches} ~{c.rendered_differently} !{c.now_refused}"
            )
    if report.changes:
        lines.append("changes:")
    for change in report.changes:
        lines.append(f"  {change.kind}: {_incident(change)}: {', '.join(change.runbooks)}")
        lines.extend(f"      {detail}" for detail in change.details)
    return "\n".join(lines) + "\n"


def _incident(change: Change) -> str:
    i = change.incident
    return f"{_when(i.received_at)} {i.source} {i.fingerprint} ({i.title})"


def _cell(text: str) -> str:
    """Table cell text: a pipe or a line break would end the cell; payload text is shown
    as code, so nothing in it is read as Markdown (a mention, a link, an image)."""
    flat = text.replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    fence = "``" if "`" in flat else "`"
    return f"{fence} {flat} {fence}" if flat else ""


def backtest_markdown(report: Report, limit: int = COMMENT_LIMIT) -> str:
    head = [
        f"### remediator backtest: {report.changed} of {report.incidents} incident(s) "
        "would be handled differently",
        "",
        f"From {_window(report)}.",
        "",
        "| " + " | ".join(CHANGE_KINDS) + " |",
        "|" + "---:|" * len(CHANGE_KINDS),
        "| " + " | ".join(str(report.totals[kind]) for kind in CHANGE_KINDS) + " |",
        "",
    ]
    if report.runbooks:
        head += [
            "| runbook | matched before | matched now | new | no longer | rendered differently "
            "| now refused |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        head += [
            f"| {name} | {c.matched_before} | {c.matched_now} | {c.new_match} | "
            f"{c.no_longer_matches} | {c.rendered_differently} | {c.now_refused} |"
            for name, c in report.runbooks.items()
        ]
        head.append("")
    if not report.changes:
        return "\n".join(head + ["No incident would be handled differently."]) + "\n"
    head += ["| change | incident | runbooks | details |", "|---|---|---|---|"]
    text = "\n".join(head) + "\n"
    for shown, change in enumerate(report.changes):
        row = (
            f"| {change.kind} | {_cell(_incident(change))} | {', '.join(change.runbooks)} "
            f"| {'<br>'.join(_cell(d) for d in change.details)} |\n"
        )
        if len(text) + len(row) > limit - 200:
            rest = len(report.changes) - shown
            return text + f"\n… and {rest} more change(s): run the backtest for all of them.\n"
        text += row
    return text

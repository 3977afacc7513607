"""How ``service outbox`` shows things: tables for people, JSON documents for scripts, times
in ISO 8601 UTC, and a progress bar on a terminal. No SQL and no commands here."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.json import JSON
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.store.attempt_history import Attempt
from service.store.outbox_admin import EventRow, ReplayAction, ReplayResult
from service.store.outbox_stats import OutboxStats
from service.store.statuses import DEAD, DELIVERED, PENDING
from service.timefmt import human_age, iso

ERROR_WIDTH = 60


def short_time(ms: int | None) -> str:
    """Epoch milliseconds as RFC 3339 UTC to the second (``2026-11-23T10:00:00Z``), for
    tables: the logs' and ``--json``'s format without the milliseconds."""
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%FT%TZ")


def console() -> Console:
    """Rich output on stdout; wide enough for ids and times when not on a terminal."""
    out = Console(highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(highlight=False, width=200)
    return out


def emit(document: dict[str, Any]) -> None:
    click.echo(json.dumps(document, ensure_ascii=False))


def stats_document(s: OutboxStats) -> dict[str, Any]:
    return {
        "at": iso(s.at),
        "counts": {**s.counts, "total": sum(s.counts.values())},
        "pending": {
            "due_now": s.due_now,
            "being_sent": s.leased,
            "scheduled_later": s.scheduled_later,
            "oldest_created_at": iso(s.oldest_pending_at),
            "oldest_age_seconds": s.oldest_pending_age,
            "oldest_failing_since": iso(s.oldest_failing_since),
            "oldest_failing_seconds": s.oldest_failing_for,
        },
        "attempts": [{"bucket": bucket, **counts} for bucket, counts in s.attempts.items()],
        "top_errors": [{"error": error, "rows": n} for error, n in s.top_errors],
    }


def print_stats(s: OutboxStats) -> None:
    out = console()
    age = s.oldest_pending_age
    oldest = "-" if age is None else f"{human_age(age)} (accepted {iso(s.oldest_pending_at)})"
    out.print(f"outbox at {iso(s.at)}; oldest pending row: {oldest}")
    failing = s.oldest_failing_for
    if failing is not None:
        out.print(
            f"longest-failing pending row: failing for {human_age(failing)} "
            f"(first failed {iso(s.oldest_failing_since)})"
        )
    rows = Table("state", "rows")
    rows.columns[1].justify = "right"
    for label, n in (
        (PENDING, s.counts[PENDING]),
        ("  due now", s.due_now),
        ("  being sent", s.leased),
        ("  waiting to retry", s.scheduled_later),
        (DELIVERED, s.counts[DELIVERED]),
        (DEAD, s.counts[DEAD]),
    ):
        rows.add_row(label, f"{n:,}")
    out.print(rows)
    attempts = Table("attempts", PENDING, DEAD)
    for column in attempts.columns:
        column.justify = "right"
    for bucket, counts in s.attempts.items():
        attempts.add_row(bucket, f"{counts[PENDING]:,}", f"{counts[DEAD]:,}")
    out.print(attempts)
    if not s.top_errors:
        out.print("no last errors on pending or dead rows")
        return
    errors = Table("rows", "most common last errors (pending and dead rows)")
    errors.columns[0].justify = "right"
    errors.columns[1].overflow = "fold"
    for error, n in s.top_errors:
        errors.add_row(f"{n:,}", error)
    out.print(errors)


def row_document(row: EventRow) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": row.id,
        "inngest_id": row.inngest_id,
        "seq": row.seq,
        "name": row.name,
        "status": row.status,
        "attempts": row.attempts,
        "created_at": iso(row.created_at),
        "next_attempt_at": iso(row.next_attempt_at) if row.status == PENDING else None,
        "completed_at": iso(row.completed_at),
        "last_error": row.last_error,
        "first_failed_at": iso(row.first_failed_at),
        "locked_by": row.locked_by,
        "locked_until": iso(row.locked_until),
        "replay_of": row.replay_of,
        "env": row.env,
        "traceparent": row.traceparent,
        "tracestate": row.tracestate,
    }
    if row.payload is not None:
        document["payload"] = json.loads(row.payload)
    return document


def attempt_document(attempt: Attempt) -> dict[str, Any]:
    """A failed attempt as ``show`` gives it: when, Inngest's status code, the error."""
    return {"at": iso(attempt.at), "status_code": attempt.status_code, "error": attempt.error}


def print_rows(rows: list[EventRow], limit: int) -> None:
    """A listing: one line per row, newest first."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for heading, width in (("id", 36), ("status", 9), ("name", 0), ("tries", 5)):
        table.add_column(heading, no_wrap=True, min_width=width)
    table.add_column("created at", no_wrap=True, min_width=19)
    table.add_column("done / due at", no_wrap=True, min_width=19)
    table.add_column("last error", no_wrap=True, overflow="ellipsis", max_width=ERROR_WIDTH)
    table.columns[3].justify = "right"
    for row in rows:
        when = row.next_attempt_at if row.status == PENDING else row.completed_at
        table.add_row(
            row.id,
            row.status,
            row.name,
            str(row.attempts),
            short_time(row.created_at),
            short_time(when),
            row.last_error or "",
        )
    more = f" (the newest {limit}; raise --limit for more)" if len(rows) == limit else ""
    table.caption, table.caption_justify = f"{len(rows)} rows, newest first{more}", "left"
    console().print(table)


def print_event(document: dict[str, Any]) -> None:
    """One row's fields, then its payload as indented JSON."""
    payload = document.pop("payload", None)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    attempts = document.pop("failed_attempts", [])
    for key, value in document.items():
        table.add_row(key, "-" if value is None else str(value))
    for n, attempt in enumerate(attempts, 1):
        status = attempt["status_code"] if attempt["status_code"] is not None else "no answer"
        table.add_row(f"failed attempt {n}", f"{attempt['at']}  {status}  {attempt['error']}")
    out = console()
    out.print(table)
    out.print("payload", style="bold")
    out.print(JSON.from_data(payload, indent=2))


@contextlib.contextmanager
def progress(show: bool, label: str, total: int | None) -> Iterator[Progress | None]:
    """A progress bar on a terminal (transient: the lines printed through it stay)."""
    if not show:
        yield None
        return
    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(highlight=False),
        transient=True,
    )
    with bar:
        bar.add_task(label, total=total)
        yield bar


def replay_summary(tally: dict[ReplayAction, int], dry_run: bool, by_status: bool) -> str:
    """The closing line of a replay: what was (or would be) done, and what was refused."""
    requeued, resent = tally[ReplayAction.REQUEUED], tally[ReplayAction.RESENT]
    if by_status and not requeued:
        return "nothing to replay: no dead event matches"
    refused = tally[ReplayAction.ALREADY_PENDING] + tally[ReplayAction.NOT_FOUND]
    verbs = ("would requeue", "would re-send") if dry_run else ("requeued", "re-sent")
    parts = [f"{verb} {n}" for verb, n in zip(verbs, (requeued, resent), strict=True) if n]
    line = ", ".join(parts) or "nothing replayed"
    line += f"; refused {refused}" if refused else ""
    return line + (" (dry run: nothing changed)" if dry_run else "")


def replay_line(result: ReplayResult) -> str:
    """What replaying one row did, as a line (refusals start with ``error: ``)."""
    would = result.dry_run
    if result.action is ReplayAction.REQUEUED:
        return f"{'would requeue' if would else 'requeued'} {result.id} (dead -> pending)"
    if result.action is ReplayAction.RESENT:
        target = "under a new id" if would else f"as {result.new_id}"
        return f"{'would re-send' if would else 're-sent'} {result.id} {target} (delivered)"
    if result.action is ReplayAction.ALREADY_PENDING:
        return f"error: {result.id} is pending (already queued); not replayed"
    return f"error: no event with id {result.id}"

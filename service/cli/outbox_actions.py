"""What ``service outbox`` does once a command's usage checked out: the queries of
``outbox_admin`` and ``outbox_stats`` against an engine at the schema's head, shown by
``outbox_views`` (tables for people, ``--json`` for scripts, a progress bar on a terminal)."""

from __future__ import annotations

import getpass
import logging
import sys

import click
from rich.progress import Progress
from sqlalchemy.ext.asyncio import AsyncEngine

from service.cli.database import run, with_engine
from service.cli.outbox_views import (
    attempt_document,
    emit,
    print_event,
    print_rows,
    print_stats,
    progress,
    replay_line,
    replay_summary,
    row_document,
    stats_document,
)
from service.config import Settings
from service.events.ids import now_ms
from service.store import delivery_state, outbox_stats
from service.store import outbox_admin as admin
from service.store.attempt_history import Attempt, attempts_of
from service.store.event_filter import EventFilter
from service.store.outbox_admin import EventRow, ReplayAction, ReplayResult
from service.store.statuses import DEAD
from service.timefmt import iso

log = logging.getLogger(__name__)


def stats(settings: Settings, as_json: bool) -> None:
    result = run(with_engine(settings, outbox_stats.stats))
    if as_json:
        emit(stats_document(result))
    else:
        print_stats(result)


def list_rows(
    settings: Settings,
    status: str | None,
    name: str | None,
    since: int | None,
    until: int | None,
    *,
    limit: int,
    as_json: bool,
) -> None:
    where = EventFilter(status, name, since, until)

    async def work(engine: AsyncEngine) -> list[EventRow]:
        return await admin.list_events(engine, where, limit)

    rows = run(with_engine(settings, work))
    if as_json:
        for row in rows:
            emit(row_document(row))
        return
    print_rows(rows, limit)


def show(settings: Settings, event_id: str, as_json: bool) -> None:
    async def work(engine: AsyncEngine) -> tuple[EventRow, list[Attempt]]:
        row = await admin.get_event(engine, event_id)
        return row, await attempts_of(engine, row.seq)

    row, attempts = run(with_engine(settings, work))
    document = row_document(row)
    document["failed_attempts"] = [attempt_document(attempt) for attempt in attempts]
    if as_json:
        emit(document)
        return
    print_event(document)


def on_terminal(as_json: bool) -> bool:
    return not as_json and sys.stdout.isatty()


def replay(
    settings: Settings,
    ids: list[str],
    name: str | None,
    since: int | None,
    until: int | None,
    *,
    same_id: bool = False,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Replay the rows of ``ids`` (delivered ones under their own ids with ``same_id``), or
    without ids every dead row that matches; the number of ids refused (pending or unknown)."""
    where = EventFilter(DEAD, name, since, until)
    show_bar = on_terminal(as_json)

    async def work(engine: AsyncEngine) -> dict[ReplayAction, int]:
        total = len(ids) if ids else await admin.count_events(engine, where) if show_bar else 0
        tally = dict.fromkeys(ReplayAction, 0)
        batches = (
            admin.replay_ids(engine, ids, dry_run=dry_run, same_id=same_id)
            if ids
            else admin.replay_dead(engine, where, dry_run=dry_run)
        )
        with progress(show_bar, "replaying", total) as bar:
            async for results in batches:
                for result in results:
                    tally[result.action] += 1
                    report_replay(result, as_json, bar)
                if bar is not None:
                    bar.advance(bar.task_ids[0], len(results))
        return tally

    tally = run(with_engine(settings, work))
    if not as_json:
        click.echo(replay_summary(tally, dry_run, by_status=not ids))
    return tally[ReplayAction.ALREADY_PENDING] + tally[ReplayAction.NOT_FOUND]


def report_replay(result: ReplayResult, as_json: bool, bar: Progress | None) -> None:
    if as_json:
        emit(
            {
                "id": result.id,
                "action": result.action.value,
                "new_id": result.new_id,
                "dry_run": result.dry_run,
            }
        )
        return
    line = replay_line(result)
    if line.startswith("error: "):
        click.echo(line, err=True)
        return
    if bar is not None:
        bar.console.print(line, highlight=False)
    else:
        click.echo(line)


def purge(
    settings: Settings, targets: list[tuple[str, int]], *, dry_run: bool, as_json: bool
) -> None:
    """Remove (or count) the rows of each (status, age) target."""
    show_bar = on_terminal(as_json)

    async def work(engine: AsyncEngine) -> dict[str, int]:
        removed: dict[str, int] = {}
        for status, age in targets:
            if dry_run:
                removed[status] = await admin.count_purgeable(engine, status, age)
                continue
            total = await admin.count_purgeable(engine, status, age) if show_bar else None
            removed[status] = 0
            with progress(show_bar, f"purging {status} rows", total) as bar:
                async for count in admin.purge(engine, status, age):
                    removed[status] += count
                    if bar is not None:
                        bar.advance(bar.task_ids[0], count)
        return removed

    removed = run(with_engine(settings, work))
    if as_json:
        emit({**removed, "dry_run": dry_run})
        return
    for status, age in targets:
        verb = "would remove" if dry_run else "removed"
        cutoff = iso(now_ms() - age)
        click.echo(f"{verb} {removed[status]:,} {status} rows completed before {cutoff}")


def operator() -> str:
    """Who runs the command, as the audit log and the console name them."""
    return f"{getpass.getuser()} (command line)"


def mark_dead(settings: Settings, ids: list[str], reason: str) -> int:
    """Bury the pending rows of ``ids``; the number left as they were (not pending)."""
    who = operator()

    async def work(engine: AsyncEngine) -> list[str]:
        return await admin.mark_dead(engine, ids, f"{reason} ({who})")

    buried = set(run(with_engine(settings, work)))
    for event_id in dict.fromkeys(ids):
        if event_id in buried:
            click.echo(f"{event_id}: dead")
        else:
            click.echo(f"error: {event_id}: not pending (or no such event)", err=True)
    log.warning(
        "%s marked %d events dead: %s",
        who,
        len(buried),
        reason,
        extra={"action": "outbox.mark_dead", "operator": who, "count": len(buried)},
    )
    return len(set(ids) - buried)


def pause(settings: Settings) -> None:
    who = operator()

    async def work(engine: AsyncEngine) -> tuple[bool, delivery_state.DeliveryState]:
        changed = await delivery_state.pause(engine, who, now_ms())
        return changed, await delivery_state.read_state(engine)

    changed, state = run(with_engine(settings, work))
    if changed:
        log.warning("%s paused delivery", who, extra={"action": "outbox.pause", "operator": who})
        click.echo("delivery paused: the relays stop within seconds; events are still accepted")
    else:
        click.echo(f"delivery was paused already, by {state.paused_by} at {iso(state.paused_at)}")


def resume(settings: Settings) -> None:
    who = operator()
    if run(with_engine(settings, delivery_state.resume)):
        log.warning("%s resumed delivery", who, extra={"action": "outbox.resume", "operator": who})
        click.echo("delivery resumed")
    else:
        click.echo("delivery was not paused")

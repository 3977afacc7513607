"""``service outbox``: inspect and repair the outbox (stats, list, show, replay, purge).

The commands parse and check their options, call ``outbox_admin`` (which holds all the SQL) and
hand the results to ``outbox_views`` (tables for people, ``--json`` for scripts).
``service.cli.main`` adds the group to the ``service`` command.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime

import click
from rich.progress import Progress
from sqlalchemy.ext.asyncio import AsyncEngine

from service.cli.common import load_settings, run, with_engine
from service.cli.outbox_views import (
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
from service.config import parse_duration
from service.events.ids import now_ms
from service.store import outbox_admin as admin
from service.store import outbox_stats
from service.store.outbox_admin import EventFilter, EventRow, ReplayAction, ReplayResult
from service.store.statuses import DEAD, DELIVERED, STATUSES
from service.timefmt import iso

RELATIVE = re.compile(r"\d+(\.\d+)?(ms|s|m|h|d)")


def parse_when(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """A moment as epoch ms: an ISO 8601 time (UTC unless it says otherwise) or a duration
    ago (``2h``, ``7d``)."""
    if value is None:
        return None
    raw = value.strip()
    if RELATIVE.fullmatch(raw.lower()):
        return now_ms() - int(parse_duration(raw) * 1000)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise click.BadParameter(
            f"{raw!r} is neither a duration ago (30m, 2h, 7d) nor an ISO 8601 time "
            "(2026-11-23T10:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_age(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """A duration (``7d``, ``12h``) as milliseconds."""
    if value is None:
        return None
    try:
        return int(parse_duration(value) * 1000)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
since_option = click.option(
    "--since", callback=parse_when, metavar="TIME", help="Created at or after (2h, 7d, ISO)."
)
until_option = click.option(
    "--until", callback=parse_when, metavar="TIME", help="Created before (2h, 7d, ISO)."
)
name_option = click.option("--name", help="Only events of this name.")


@click.group()
def outbox() -> None:
    """Inspect and repair the outbox: stats, list, show, replay, purge."""


# -- stats ----------------------------------------------------------------------------------


@outbox.command()
@json_option
def stats(as_json: bool) -> None:
    """Rows by state, pending schedule, attempts and the commonest errors."""
    settings = load_settings()
    result = run(with_engine(settings, outbox_stats.stats))
    if as_json:
        emit(stats_document(result))
    else:
        print_stats(result)


# -- list and show --------------------------------------------------------------------------


@outbox.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only rows in this state.")
@name_option
@since_option
@until_option
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@json_option
def list_command(
    status: str | None,
    name: str | None,
    since: int | None,
    until: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """Outbox rows, newest first (--json: one object per line)."""
    where = make_filter(status, name, since, until)
    settings = load_settings()

    async def work(engine: AsyncEngine) -> list[EventRow]:
        return await admin.list_events(engine, where, limit)

    rows = run(with_engine(settings, work))
    if as_json:
        for row in rows:
            emit(row_document(row))
        return
    print_rows(rows, limit)


def make_filter(
    status: str | None, name: str | None, since: int | None, until: int | None
) -> EventFilter:
    if since is not None and until is not None and since >= until:
        raise click.UsageError("--since must be earlier than --until")
    return EventFilter(status, name, since, until)


@outbox.command()
@click.argument("event_id", metavar="ID")
@json_option
def show(event_id: str, as_json: bool) -> None:
    """One event in full: payload, state, attempts, times, error, lease, origin."""
    settings = load_settings()

    async def work(engine: AsyncEngine) -> EventRow:
        return await admin.get_event(engine, event_id.strip())

    document = row_document(run(with_engine(settings, work)))
    if as_json:
        emit(document)
        return
    print_event(document)


# -- replay and purge -----------------------------------------------------------------------


def on_terminal(as_json: bool) -> bool:
    return not as_json and sys.stdout.isatty()


@outbox.command()
@click.option("--id", "ids", multiple=True, metavar="ID", help="An event to replay (repeatable).")
@click.option("--status", type=click.Choice([DEAD]), help="Replay every dead event that matches.")
@name_option
@since_option
@until_option
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@json_option
def replay(
    ids: tuple[str, ...],
    status: str | None,
    name: str | None,
    since: int | None,
    until: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Send dead or delivered events again.

    A dead row goes back to pending under the same id (attempts 0, due now, lease cleared,
    last error kept until the next attempt); a delivered row is sent again as a new event
    whose replay_of names it. Pending rows are refused: they are queued already.

    \b
    service outbox replay --id 6f1c0d9e-...            # one event, dead or delivered
    service outbox replay --status dead --since 1h     # every dead event of the last hour
    """
    if bool(ids) == bool(status):
        raise click.UsageError("give either --id ID (repeatable) or --status dead")
    if ids and (name or since is not None or until is not None):
        raise click.UsageError("--name, --since and --until go with --status dead, not --id")
    where = make_filter(DEAD, name, since, until)
    settings = load_settings()
    show_bar = on_terminal(as_json)

    async def work(engine: AsyncEngine) -> dict[ReplayAction, int]:
        total = len(ids) if ids else await admin.count_events(engine, where) if show_bar else 0
        tally = dict.fromkeys(ReplayAction, 0)
        batches = (
            admin.replay_ids(engine, [i.strip() for i in ids], dry_run=dry_run)
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
    refused = tally[ReplayAction.ALREADY_PENDING] + tally[ReplayAction.NOT_FOUND]
    if not as_json:
        click.echo(replay_summary(tally, dry_run, bool(status)))
    if refused:
        sys.exit(1)


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


@outbox.command()
@click.option(
    "--delivered-older-than",
    callback=parse_age,
    metavar="AGE",
    help="Remove delivered rows older than this.",
)
@click.option(
    "--dead-older-than", callback=parse_age, metavar="AGE", help="Remove dead rows older than this."
)
@click.option("--dry-run", is_flag=True, help="Count what would go; remove nothing.")
@json_option
def purge(
    delivered_older_than: int | None, dead_older_than: int | None, dry_run: bool, as_json: bool
) -> None:
    """Remove old delivered and dead rows (never pending ones).

    Rows completed longer ago than the given age go, in batches of 1,000 (one short
    transaction each).  e.g. service outbox purge --delivered-older-than 7d"""
    targets = [
        (status, age)
        for status, age in ((DELIVERED, delivered_older_than), (DEAD, dead_older_than))
        if age is not None
    ]
    if not targets:
        raise click.UsageError("give --delivered-older-than, --dead-older-than or both")
    settings = load_settings()
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

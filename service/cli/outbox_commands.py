"""``service outbox``: inspect and repair the outbox (stats, list, show, replay, mark-dead,
purge, pause, resume).

The commands parse and check their options here; what they do when they run is in
``outbox_actions`` (the queries of ``outbox_admin`` and ``outbox_stats``, the output of
``outbox_views``), which each command imports once its usage checked out, so that
``service --help`` and every command's help never load the store, SQLAlchemy or rich.
``service.cli.main`` adds the group to the ``service`` command.
"""

from __future__ import annotations

import sys

import click

from service.cli.common import load_settings
from service.config import parse_duration
from service.events.ids import now_ms
from service.store.statuses import DEAD, DELIVERED, STATUSES
from service.timefmt import parse_moment


def parse_when(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """A moment as epoch ms: an ISO 8601 time (UTC unless it says otherwise) or a duration
    ago (``2h``, ``7d``)."""
    if value is None:
        return None
    try:
        return parse_moment(value, now_ms())
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def parse_age(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """A duration (``7d``, ``12h``) as milliseconds."""
    if value is None:
        return None
    try:
        return int(parse_duration(value) * 1000)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def check_window(since: int | None, until: int | None) -> None:
    if since is not None and until is not None and since >= until:
        raise click.UsageError("--since must be earlier than --until")


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
    """Inspect and repair the outbox: stats, list, show, replay, purge, pause."""


# -- stats ----------------------------------------------------------------------------------


@outbox.command()
@json_option
def stats(as_json: bool) -> None:
    """Rows by state, pending schedule, attempts and the commonest errors."""
    settings = load_settings()
    from service.cli import outbox_actions  # loaded when the command runs

    outbox_actions.stats(settings, as_json)


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
    check_window(since, until)
    settings = load_settings()
    from service.cli import outbox_actions  # loaded when the command runs

    outbox_actions.list_rows(settings, status, name, since, until, limit=limit, as_json=as_json)


@outbox.command()
@click.argument("event_id", metavar="ID")
@json_option
def show(event_id: str, as_json: bool) -> None:
    """One event in full: payload, state, attempts, times, error, lease, origin."""
    settings = load_settings()
    from service.cli import outbox_actions  # loaded when the command runs

    outbox_actions.show(settings, event_id.strip(), as_json)


# -- replay and purge -----------------------------------------------------------------------


@outbox.command()
@click.option("--id", "ids", multiple=True, metavar="ID", help="An event to replay (repeatable).")
@click.option("--status", type=click.Choice([DEAD]), help="Replay every dead event that matches.")
@name_option
@since_option
@until_option
@click.option(
    "--same-id",
    is_flag=True,
    help="Send delivered events again under their own ids (Inngest runs nothing again).",
)
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@json_option
def replay(
    ids: tuple[str, ...],
    status: str | None,
    name: str | None,
    since: int | None,
    until: int | None,
    same_id: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Send dead or delivered events again.

    A dead row goes back to pending under the same id (attempts 0, due now, lease cleared,
    last error kept until the next attempt); a delivered row is sent again as a new event,
    with new ids (its own and Inngest's), whose replay_of names it, so that Inngest runs its
    functions again. With --same-id a delivered row goes back to pending as it is: Inngest
    files it under the same id and takes it for a repeat of the event it has. Pending rows
    are refused: they are queued already.

    \b
    service outbox replay --id 01KBX3...               # one event, dead or delivered
    service outbox replay --status dead --since 1h     # every dead event of the last hour
    """
    if bool(ids) == bool(status):
        raise click.UsageError("give either --id ID (repeatable) or --status dead")
    if ids and (name or since is not None or until is not None):
        raise click.UsageError("--name, --since and --until go with --status dead, not --id")
    if same_id and not ids:
        raise click.UsageError("--same-id goes with --id (dead events keep their ids anyway)")
    check_window(since, until)
    settings = load_settings()
    from service.cli import outbox_actions  # loaded when the command runs

    refused = outbox_actions.replay(
        settings,
        [i.strip() for i in ids],
        name,
        since,
        until,
        same_id=same_id,
        dry_run=dry_run,
        as_json=as_json,
    )
    if refused:
        sys.exit(1)


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
    from service.cli import outbox_actions  # loaded when the command runs

    outbox_actions.purge(settings, targets, dry_run=dry_run, as_json=as_json)


# -- give up, pause and resume --------------------------------------------------------------


@outbox.command("mark-dead")
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option("--reason", default="marked dead by an operator", help="Kept as the last error.")
def mark_dead(ids: tuple[str, ...], reason: str) -> None:
    """Give up on pending events: dead, with REASON as their last error (replay brings them
    back). Rows not pending are left as they are, and the exit status is 1."""
    settings = load_settings()
    from service.cli import outbox_actions  # loaded when the command runs

    if outbox_actions.mark_dead(settings, [i.strip() for i in ids], reason.strip()):
        sys.exit(1)


@outbox.command()
def pause() -> None:
    """Stop every relay from delivering until `service outbox resume` (events are still
    accepted; they wait, pending)."""
    settings = load_settings()
    from service.cli import outbox_actions  # loaded when the command runs

    outbox_actions.pause(settings)


@outbox.command()
def resume() -> None:
    """Let the relays deliver again after `service outbox pause`."""
    settings = load_settings()
    from service.cli import outbox_actions  # loaded when the command runs

    outbox_actions.resume(settings)

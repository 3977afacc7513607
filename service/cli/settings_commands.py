"""``service settings``: read and change the app settings document.

The module declares the commands and reads their input; what they do with the database is in
``app_settings_actions``, which each command imports when it runs, so that ``service --help``
and the other commands never load the store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from service.cli.common import fail, load_settings
from service.json_reader import MalformedJson, parse_json


@click.group("settings")
def settings_group() -> None:
    """Read and change the app settings document."""


@settings_group.command("show")
def settings_show() -> None:
    """Print the app settings as JSON."""
    settings = load_settings()
    from service.cli import app_settings_actions  # loaded when the command runs

    click.echo(json.dumps(app_settings_actions.read(settings), indent=2, sort_keys=True))


def _parse_value(raw: str) -> object:
    """A JSON value when VALUE parses as one (42, true, {"a": 1}), else the plain string."""
    try:
        return parse_json(raw.encode("utf-8", "surrogateescape"), "VALUE")
    except MalformedJson:
        return raw


sync_option = click.option(
    "--sync/--no-sync", default=True, show_default=True, help="Enqueue an app.sync event."
)


@settings_group.command("set")
@click.argument("key")
@click.argument("value")
@sync_option
def settings_set(key: str, value: str, sync: bool) -> None:
    """Set KEY to VALUE (parsed as JSON when it is JSON, else a string)."""
    settings = load_settings()
    parsed = _parse_value(value)
    from service.cli import app_settings_actions  # loaded when the command runs

    event_id = app_settings_actions.set_key(settings, key, parsed, sync)
    click.echo(f"set {key}" + (f"; enqueued event {event_id}" if event_id else ""))


@settings_group.command("load")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path, allow_dash=True))
@sync_option
def settings_load(file: Path, sync: bool) -> None:
    """Replace the whole document with the JSON object in FILE (- for stdin)."""
    settings = load_settings()
    try:
        raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        document = parse_json(raw, str(file))
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    except MalformedJson as exc:
        fail(str(exc))
    if not isinstance(document, dict):
        fail(f"{file} must hold a JSON object")
    from service.cli import app_settings_actions  # loaded when the command runs

    event_id = app_settings_actions.replace(settings, document, sync)
    click.echo(
        f"loaded {len(document)} keys" + (f"; enqueued event {event_id}" if event_id else "")
    )

"""What every command shares: settings from the environment, their start-up checks, and
one-line failures with the right exit status.

Every command's module imports it, so it imports nothing a command's help does not need; what
a command runs against the database is in ``service.cli.database``."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

import click

from service.config import ConfigError, Settings
from service.logs import configure_logging

_tracebacks = {"shown": os.environ.get("LOG_LEVEL", "").strip().upper() == "DEBUG"}


def show_tracebacks() -> None:
    """From now on ``fail`` prints the traceback of the error it reports (``--debug``)."""
    _tracebacks["shown"] = True


def fail(message: str, code: int = 1) -> NoReturn:
    """One readable line on stderr, then exit (1: failure, 2: usage or configuration); with
    ``--debug`` or LOG_LEVEL=DEBUG, the traceback of the error being handled first."""
    if _tracebacks["shown"] and sys.exc_info()[0] is not None:
        traceback.print_exc()
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_settings() -> Settings:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        fail(str(exc), code=2)
    configure_logging(settings)
    return settings


def require(check: Callable[[Settings], None], settings: Settings) -> None:
    """Run a start-up check of the settings; a refusal is one line and exit 2."""
    try:
        check(settings)
    except ConfigError as exc:
        fail(str(exc), code=2)

"""Logging: one JSON object per line in production, readable lines on a terminal.

A JSON line's keys: ``time`` (RFC 3339 in UTC with milliseconds, ``2026-12-01T18:46:58.844Z``),
``level``, ``logger``, ``action`` and ``message``, then the record's extras. Every record
carries a stable ``action`` (``extra={"action": "relay.sent"}``); records about an event carry
its ``event_id``.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter

from service.config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(action)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(action)s %(message)s"
JSON_KEYS = {"asctime": "time", "levelname": "level", "name": "logger"}


class _Rfc3339JsonFormatter(JsonFormatter):
    """JSON lines whose ``time`` is RFC 3339 UTC with milliseconds and ``Z``: what Loki,
    Elasticsearch and Cloud Logging parse without a custom pattern (``asctime`` is local time
    with a comma before the milliseconds)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _DefaultAction(logging.Filter):
    """Records logged without an action (e.g. by libraries) get one from their logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "action"):
            record.action = record.name
        return True


def configure_logging(settings: Settings) -> None:
    """Install the root handler once, as LOG_FORMAT and LOG_LEVEL say."""
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_DefaultAction())
    if fmt == "json":
        handler.setFormatter(_Rfc3339JsonFormatter(JSON_FIELDS, rename_fields=JSON_KEYS))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # aiohttp_session warns on every undecryptable cookie: a forged cookie is a 401, not news.
    logging.getLogger("aiohttp_session").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)

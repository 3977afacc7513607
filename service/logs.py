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

from aiohttp.http_exceptions import HttpProcessingError
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


class _MalformedRequests(logging.Filter):
    """aiohttp logs a request it could not parse with the offending bytes, which can be the
    start of a cookie or a bearer token (an oversized header): keep only the error's kind."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.name == "aiohttp.server" and isinstance(error, HttpProcessingError):
            record.msg, record.args = "refused a malformed request: %s", (type(error).__name__,)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.action = "http.malformed_request"
        return True


def configure_logging(settings: Settings) -> None:
    """Install the root handler once, as LOG_FORMAT and LOG_LEVEL say."""
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_MalformedRequests())
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

"""What aiohttp's own server logs of a request it could not parse: the kind of error, never
the offending bytes."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class _MalformedRequests(logging.Filter):
    """aiohttp logs a request it could not parse with the offending bytes, which can be the
    start of a cookie or a bearer token (an oversized header): keep only the error's kind."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg, record.args = "refused a malformed request: %s", (type(error).__name__,)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.action = "http.malformed_request"
        return True


def quiet_malformed_requests() -> None:
    """Filter aiohttp's server log as above; once per process, however many apps it builds."""
    server = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(existing, _MalformedRequests) for existing in server.filters):
        server.addFilter(_MalformedRequests())

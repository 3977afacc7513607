"""RFC 9457 problem details: every error answer is ``application/problem+json``."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from service.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
PROBLEM_TYPE = "application/problem+json"


def problem_text(status: int, title: str, detail: str) -> str:
    """The problem document's JSON."""
    return json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})


def problem(
    status: int, title: str, detail: str, *, headers: Mapping[str, str] | None = None
) -> web.HTTPException:
    """An HTTP error whose body is a problem document; raise it from a handler."""
    error = web.HTTPException(
        text=problem_text(status, title, detail), content_type=PROBLEM_TYPE, headers=headers
    )
    error.status_code = status
    # HTTPException keeps the status on the instance; the response must carry it too.
    error.set_status(status, title)
    return error


def _from_http_error(error: web.HTTPException) -> web.HTTPException:
    """aiohttp's own errors (404, 405, 413...) as problem documents, keeping their headers."""
    if error.content_type == PROBLEM_TYPE:
        return error
    headers = {k: v for k, v in error.headers.items() if k.lower() in ("allow", "retry-after")}
    detail = {
        404: "There is no such route.",
        405: "This route does not take that method.",
        413: "The request body is larger than this service accepts.",
    }.get(error.status, error.reason)
    return problem(error.status, error.reason, detail, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a problem answer; no traceback or internal text leaves."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        raise _from_http_error(error) from None
    except DatabaseUnavailable as error:
        log.error("database unavailable: %s", error, extra={"action": "http.db_unavailable"})
        raise problem(
            503,
            "Service Unavailable",
            "The database cannot serve this request now; retry later (with an "
            "Idempotency-Key, a retry of POST /api cannot enqueue twice).",
            headers={"Retry-After": "1"},
        ) from None
    except Exception:
        log.exception("unhandled error", extra={"action": "http.unhandled"})
        raise problem(
            500, "Internal Server Error", "The service failed; it has been logged."
        ) from None

"""Driver failures as the domain's ``DatabaseUnavailable``: which exceptions mean the database
failed, and their reason in one line."""

from __future__ import annotations

from sqlalchemy import exc

from service.errors import DatabaseUnavailable
from service.store.connect_errors import connection_problem, is_misconfiguration

__all__ = ["UNAVAILABLE", "describe_db_error", "unavailable"]

# Every driver failure of a write means the same to a caller: it did not happen; retry later.
UNAVAILABLE = (exc.DBAPIError, exc.TimeoutError, OSError)


def unavailable(error: BaseException) -> DatabaseUnavailable:
    """The domain error of a driver's failure: its reason in one line, and whether the
    connection's settings are at fault."""
    return DatabaseUnavailable(describe_db_error(error), misconfigured=is_misconfiguration(error))


def describe_db_error(error: BaseException) -> str:
    """A one-line reason without SQL text or parameters (they may hold user data)."""
    problem = connection_problem(error)
    if problem is not None:
        return problem
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        # asyncpg's errors arrive wrapped in the dialect's adapter class; name the driver's own.
        cause = error.orig.__cause__ if error.orig.__cause__ is not None else error.orig
        lines = str(cause).splitlines() or [""]
        return f"{type(cause).__name__}: {lines[0]}"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

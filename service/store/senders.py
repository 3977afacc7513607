"""Who may write events in their own transactions: a database role granted ``send_event``."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.errors import InvalidInput
from service.store.backend import backend_of
from service.store.engine import transaction

__all__ = ["grant_sender"]


async def grant_sender(engine: AsyncEngine, role: str) -> None:
    """Let ``role`` call ``send_event`` (and see the schema it is in), nothing more: it can
    send events and cannot read or change a row of the outbox. ``InvalidInput`` on a database
    without roles or with no role of that name; ``DatabaseUnavailable`` when the grant
    fails."""
    statements = backend_of(engine).grant_sender(role)
    async with transaction(engine) as conn:
        known = await conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
        if known is None:
            raise InvalidInput(
                f"there is no database role {role!r}: create it first"
                f" (CREATE ROLE \"{role}\" LOGIN PASSWORD '...'), then grant it again"
            )
        for statement in statements:
            await conn.exec_driver_sql(statement)

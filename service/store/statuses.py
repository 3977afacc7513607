"""The states of an outbox row. Apart from the tables so that what only names a state (the
command line's options, its views) does not load SQLAlchemy."""

from __future__ import annotations

__all__ = ["DEAD", "DELIVERED", "PENDING", "STATUSES"]

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
STATUSES = (PENDING, DELIVERED, DEAD)

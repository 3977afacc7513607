"""The PostgreSQL backend's named statements (``postgres.sql``) for the service's schema: the
fields of the file filled in once per schema, the idempotency claims, the relays' wake-up and
their delivery statements, and the two statements of DDL that take a value of their own."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from service.store.backends.named_sql import named_statements
from service.store.backends.rows import ROW_FIELDS, integer_fields, row_sql_fields

__all__ = ["PostgresStatements", "quoted", "quoted_literal"]

# The high halves of the relays' advisory lock keys; the low half is the schema's oid, so that
# the services of two schemas in one database never wait on each other's lock.
WAKE_KEY_HIGH = 0x4F55_5458  # "OUTX": a relay waits for work
TAKE_IN_KEY_HIGH = 0x494E_544B  # "INTK": a relay takes in the intake


def quoted(identifier: str) -> str:
    """``identifier`` as a quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def quoted_literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _lock_key(high: int, schema: str) -> str:
    """An advisory lock key of the schema ``schema`` (quoted), as an SQL expression."""
    return f"(({high}::bigint << 32) | {quoted_literal(schema)}::regnamespace::oid::bigint)"


def _filled(statement: str, fields: dict[str, str]) -> str:
    for name, value in fields.items():
        statement = statement.replace("{" + name + "}", value)
    return statement


@dataclass(frozen=True)
class PostgresStatements:
    """The statements of the service's tables in one schema, by their names in the file."""

    schema: str
    channel: str  # the NOTIFY channel, named after the schema
    insert_events: str
    take_in: str
    claim_keys: str
    stored_answers: str
    notify: str
    start_waiting: str
    shared_available: str
    stop_waiting: str
    save_settings: str
    claim_due: str
    claim_early: str
    mark_delivered: str
    retry_later: str
    bury: str
    release: str
    send_event: str
    size_limit: str
    grant_sender_schema: str
    grant_sender_function: str
    event_max_bytes: str

    def grant_sender(self, role: str) -> list[str]:
        """``role`` may find the schema and call ``send_event``: no table of it, no row."""
        role_field = {"role": quoted(role)}
        return [
            _filled(self.grant_sender_schema, role_field),
            _filled(self.grant_sender_function, role_field),
        ]

    def set_event_max_bytes(self, limit: int) -> str:
        """The statement that sets how large an event ``send_event`` takes."""
        return _filled(self.event_max_bytes, {"limit": str(int(limit))})

    @classmethod
    @functools.cache
    def of(cls, schema: str) -> PostgresStatements:
        s = quoted(schema)
        channel = f"{schema}.outbox_events"
        integers = integer_fields()
        fields = {
            "schema": s,
            # The schema's name inside a string literal (``to_regprocedure``, ``EXECUTE``).
            "schema_text": s.replace("'", "''"),
            "wake_key": _lock_key(WAKE_KEY_HIGH, s),
            "take_in_key": _lock_key(TAKE_IN_KEY_HIGH, s),
            "channel": channel.replace("'", "''"),
            # The row's fields as arrays, one parameter each, in order.
            "row_arrays": ", ".join(
                f"${place}::{'bigint' if name in integers else 'text'}[]"
                for place, name in enumerate(ROW_FIELDS, 1)
            ),
            **row_sql_fields(),
        }
        statements = {
            name: _filled(text, fields) for name, text in named_statements("postgres").items()
        }
        return cls(schema=schema, channel=channel, **statements)

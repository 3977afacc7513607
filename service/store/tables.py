"""The tables: the outbox, the app settings document, idempotency keys and the relays' probe;
on PostgreSQL also the intake that apps' transactions write to.

Times are epoch milliseconds (UTC) in BIGINT columns: the same type on SQLite and PostgreSQL,
cheap to index and compare, and the unit of the event's own ``ts``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from service.store.statuses import PENDING, STATUSES

__all__ = [
    "RELAY_PROBE_ROW",
    "app_settings",
    "idempotency_keys",
    "metadata",
    "outbox_attempts",
    "outbox_events",
    "outbox_intake",
    "postgresql_metadata",
    "relay_probe",
]

# SQLite gives an autoincrementing rowid only to INTEGER PRIMARY KEY.
BigSerial = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)

outbox_events = Table(
    "outbox_events",
    metadata,
    # seq orders the outbox; id is the event's UUID, the one Inngest deduplicates on.
    Column("seq", BigSerial, primary_key=True, autoincrement=True),
    # Any id a client may give (the Event API's ULIDs, an app's own ids), not only UUIDs.
    Column("id", Text, nullable=False, unique=True),
    Column("name", String(256), nullable=False),
    # The event exactly as it is sent, serialized once: the relay joins payloads into the
    # request body without parsing them. Text, not jsonb: jsonb makes the claim ~3x slower.
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False, server_default=PENDING),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    # When a pending row is due. A claim leaves it as it is: the lease is ``locked_by`` and
    # ``locked_until`` alone, which no index holds, so that the claim updates no index.
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("locked_by", String(128)),
    # Until when a relay holds the row; it is free again after (a relay that dies gives its
    # rows back so).
    Column("locked_until", BigInteger),
    Column("last_error", Text),
    # When the row's first failed attempt was made: the relay's time budget counts from here.
    Column("first_failed_at", BigInteger),
    Column("completed_at", BigInteger),
    Column("replay_of", Text),
    # The Inngest environment an app named (``x-inngest-env``); the relay sends it along.
    Column("env", String(256)),
    # The id Inngest gives the event (a ULID of a run, ``events.inngest_ids``): the relay sends
    # the seed that makes Inngest give it. NULL for rows older than these ids: Inngest makes one.
    Column("inngest_id", Text),
    # The caller's W3C trace context, sent along as the request's headers.
    Column("traceparent", Text),
    Column("tracestate", Text),
    CheckConstraint(f"status IN {STATUSES!r}".replace('"', "'"), name="status"),
)


def partial_index(name: str, *columns: Column[Any], where: str) -> Index:
    """An index of the rows ``where`` holds for, on both databases."""
    return Index(name, *columns, postgresql_where=text(where), sqlite_where=text(where))


o = outbox_events.c
# The relay's claim and the count of due rows read only this partial index.
partial_index("ix_outbox_events_due", o.next_attempt_at, o.seq, where="status = 'pending'")
# Purges read finished rows by completion time; dead rows, few, have an index of their own.
# No index starts with ``status``: SQLite's planner would pick it for pending queries.
partial_index("ix_outbox_events_completed", o.completed_at, where="completed_at IS NOT NULL")
partial_index("ix_outbox_events_dead", o.completed_at, where="status = 'dead'")
# The age of the oldest pending row, for metrics and stats, without a scan of delivered rows;
# with the next ones, the console's event list: newest first by (created_at, seq), each filter
# it offers reading an index that starts where its page does.
partial_index("ix_outbox_events_pending_created", o.created_at, o.seq, where="status = 'pending'")
Index("ix_outbox_events_created", o.created_at, o.seq)
Index("ix_outbox_events_name_created", o.name, o.created_at, o.seq)
partial_index("ix_outbox_events_dead_created", o.created_at, o.seq, where="status = 'dead'")
partial_index(
    "ix_outbox_events_failed_created", o.created_at, o.seq, where="last_error IS NOT NULL"
)
# Inngest ids that are not the row's own id (an app's or an SDK's id kept beside the one Inngest
# gives): a lookup by Inngest id finds the others by ``id``'s unique index, so the rows of the
# service's own ids, nearly all of them, are not held twice.
partial_index("ix_outbox_events_inngest_id", o.inngest_id, where="inngest_id <> id")

# Each failed attempt at delivering a row: when, Inngest's status code (None: no answer came)
# and the error. A delivered attempt is the row's own completion; only failures, which are
# rare, write here, so the usual event costs nothing more. Purged with its row.
outbox_attempts = Table(
    "outbox_attempts",
    metadata,
    Column("event_seq", BigInteger, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("status_code", Integer),
    Column("error", Text, nullable=False),
)
Index("ix_outbox_attempts_event_seq", outbox_attempts.c.event_seq, outbox_attempts.c.at)

app_settings = Table(
    "app_settings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("document", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("caller", String(256), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("event_id", Text, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)
Index("ix_idempotency_keys_expires", idempotency_keys.c.expires_at)

# One row that the relays of a database share during an outage: whose turn it is to probe
# Inngest (one probe per interval, however many relays), and when a probe last got through.
relay_probe = Table(
    "relay_probe",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("next_probe_at", BigInteger, nullable=False, server_default="0"),
    Column("recovered_at", BigInteger),
    # What the console shows of delivery: an operator's pause (and whose), and since when the
    # relays see an outage or a refused event key, with the error that made it one.
    Column("paused_at", BigInteger),
    Column("paused_by", Text),
    Column("outage_since", BigInteger),
    Column("outage_error", Text),
    Column("key_refused_since", BigInteger),
    Column("key_refused_error", Text),
)
RELAY_PROBE_ROW = 1

# PostgreSQL only: what ``send_event`` writes in an app's transaction, as cheap a row as can be
# (no index, no key), until a relay moves it into the outbox (``take_in`` of the backend).
postgresql_metadata = MetaData()
outbox_intake = Table(
    "outbox_intake",
    postgresql_metadata,
    Column("id", Text, nullable=False),
    Column("name", String(256), nullable=False),
    Column("payload", Text, nullable=False),
    Column("env", String(256)),
    Column("created_at", BigInteger, nullable=False),
    Column("inngest_id", Text),
)

"""Events in the app's own transaction: PostgreSQL's ``send_event`` called by an app's plain SQL
(its rules, its repeats, rollback and commit, late commits, the relay it wakes), and the
Python helper on both databases."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from service import send_event
from service.config import Settings
from service.events.ids import now_ms
from service.events.inngest_ids import ulid_parts
from service.events.validation import event_error, size_error
from service.store import deliveries
from service.store.in_transaction import EventRefused
from service.store.outbox_stats import gauge_snapshot
from service.store.outbox_stats import stats as outbox_stats
from service.store.tables import outbox_events
from tests.app_transactions import APP_TABLE, app_connection, sent_rows, take_in
from tests.conftest import POSTGRESQL_ONLY
from tests.fake_inngest import FakeInngest, running_fake
from tests.relay_harness import (
    eventually,
    relay_in_background,
    relay_settings,
    running_relay,
)

SEND = "SELECT public.send_event($1, $2::jsonb, $3::jsonb, $4, $5, $6)"
NOW = 1_764_000_000_000


async def count(engine: AsyncEngine) -> int:
    """The events sent: the outbox's rows once the intake is taken in."""
    await take_in(engine)
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(outbox_events)) or 0)


async def received(fake: FakeInngest, *ids: str) -> bool:
    return set(ids) <= set(fake.received_ids)


async def waiting_relays(conn: asyncpg.Connection) -> int:
    """Relays that wait for work: they hold the advisory lock exclusively."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND mode = 'ExclusiveLock' AND granted"
        )
    )


@POSTGRESQL_ONLY
async def test_a_rolled_back_transaction_sends_nothing(
    settings: Settings, engine: AsyncEngine, database_url: str
) -> None:
    async with app_connection(database_url) as app, running_fake() as fake:
        await app.execute(APP_TABLE)
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            transaction = app.transaction()
            await transaction.start()
            await app.execute("INSERT INTO app_rows (note) VALUES ('never')")
            event_id = await app.fetchval(
                SEND, "app/rolled.back", '{"n": 1}', None, None, None, None
            )
            await transaction.rollback()
            await run.until(run.passed(20 * settings.relay.poll_interval))  # many polls
        assert event_id and fake.requests == []
        assert await app.fetchval("SELECT count(*) FROM app_rows") == 0
    assert await count(engine) == 0


@POSTGRESQL_ONLY
async def test_an_event_is_invisible_until_commit_and_then_wakes_the_relay(
    settings: Settings, engine: AsyncEngine, database_url: str
) -> None:
    async with app_connection(database_url) as app, running_fake() as fake:
        # Polling once an hour: only the commit's NOTIFY can deliver within the test.
        tuned = relay_settings(settings, fake.origin, poll_interval=3600.0)
        async with relay_in_background(tuned, engine):
            await eventually(lambda: _waits(app))
            async with app.transaction():
                event_id = await app.fetchval(SEND, "app/committed", "{}", None, None, None, None)
                # Not visible to anyone, relays included, before the commit.
                assert await deliveries.claim(engine, "peek", 10, 60_000, NOW * 2, early=True) == []
            await eventually(lambda: received(fake, event_id))
        assert [e["id"] for e in fake.received] == [event_id]


async def _waits(app: asyncpg.Connection) -> bool:
    return await waiting_relays(app) == 1


@POSTGRESQL_ONLY
@pytest.mark.parametrize("order", ["relay-waits-first", "relay-restarts", "app-sends-first"])
async def test_a_late_commit_is_delivered_and_holds_up_no_one(
    settings: Settings, engine: AsyncEngine, database_url: str, order: str
) -> None:
    """T1 sends A and stays open; T2 sends B and commits; B is delivered while T1 is open;
    T1 commits, and A is delivered: whether a relay waited when A was sent (A's commit wakes
    it), was restarted meanwhile (batches of one), or started only after A was sent (then no
    NOTIFY comes: the relay sees the open sender and looks again until it ends)."""
    batch_size = 1 if order == "relay-restarts" else 500
    async with (
        app_connection(database_url) as first,
        app_connection(database_url) as second,
        running_fake() as fake,
    ):
        # Polling once an hour: deliveries within the test come from wake-ups and rechecks.
        tuned = relay_settings(settings, fake.origin, poll_interval=3600.0, batch_size=batch_size)
        long_one = first.transaction()
        if order == "app-sends-first":
            await long_one.start()
            a = await first.fetchval(SEND, "app/late", '{"n": "A"}', None, None, None, None)
        async with relay_in_background(tuned, engine):
            if order != "app-sends-first":
                await eventually(lambda: _waits(second))
                await long_one.start()
                a = await first.fetchval(SEND, "app/late", '{"n": "A"}', None, None, None, None)
            async with second.transaction():
                b = await second.fetchval(SEND, "app/early", '{"n": "B"}', None, None, None, None)
            await eventually(lambda: received(fake, b))
            assert a not in fake.received_ids
            if order != "relay-restarts":
                await long_one.commit()
                await eventually(lambda: received(fake, a))
        if order == "relay-restarts":
            async with relay_in_background(tuned, engine):
                await long_one.commit()
                await eventually(lambda: received(fake, a))
    assert sorted(fake.received_ids) == sorted([a, b])


@POSTGRESQL_ONLY
async def test_a_repeated_id_is_one_row_and_the_transaction_goes_on(
    engine: AsyncEngine, database_url: str
) -> None:
    async with app_connection(database_url) as app:
        await app.execute(APP_TABLE)
        async with app.transaction():
            first = await app.fetchval(SEND, "app/once", '{"n": 1}', None, "order-7", None, None)
            again = await app.fetchval(SEND, "app/once", '{"n": 2}', None, "order-7", None, None)
            await app.execute("INSERT INTO app_rows (note) VALUES ('after the repeat')")
        assert first == again == "order-7"
        assert await app.fetchval("SELECT count(*) FROM app_rows") == 1
    [row] = (await sent_rows(engine)).values()
    assert json.loads(row["payload"])["data"] == {"n": 1}  # the first one's


@POSTGRESQL_ONLY
@pytest.mark.parametrize("first_commits", [True, False], ids=["first-commits", "first-rolls-back"])
async def test_one_id_in_two_concurrent_transactions_is_one_row(
    engine: AsyncEngine, database_url: str, first_commits: bool
) -> None:
    async with app_connection(database_url) as first, app_connection(database_url) as second:
        one = first.transaction()
        await one.start()
        await first.fetchval(SEND, "app/twice", '{"by": "first"}', None, "shared-id", None, None)
        async with second.transaction():
            # Neither waits for the other: the repeat is dropped when a relay takes them in.
            again = await second.fetchval(
                SEND, "app/twice", '{"by": "second"}', None, "shared-id", None, None
            )
            await (one.commit() if first_commits else one.rollback())
        assert again == "shared-id"
    [row] = (await sent_rows(engine)).values()
    assert json.loads(row["payload"])["data"] == {"by": "first" if first_commits else "second"}


@POSTGRESQL_ONLY
async def test_a_repeat_of_an_event_taken_in_already_is_dropped(
    engine: AsyncEngine, database_url: str
) -> None:
    async with app_connection(database_url) as app:
        await app.fetchval(SEND, "app/once", '{"n": 1}', None, "kept-id", None, None)
        assert await take_in(engine) == 1
        await app.fetchval(SEND, "app/once", '{"n": 2}', None, "kept-id", None, None)
        assert await take_in(engine) == 1  # it left the intake ...
    [row] = (await sent_rows(engine)).values()  # ... and the outbox kept the first
    assert json.loads(row["payload"])["data"] == {"n": 1}
    assert await take_in(engine) == 0


@POSTGRESQL_ONLY
async def test_events_in_the_intake_count_as_pending_and_due(
    engine: AsyncEngine, database_url: str
) -> None:
    """Until a relay takes them in, the events apps committed are pending, due, never tried:
    in the gauges, in ``service outbox stats``, and for an idle relay's next look."""
    async with app_connection(database_url) as app:
        for n in range(3):
            await app.fetchval(SEND, "app/waiting", f'{{"n": {n}}}', None, None, None, None)
    before = now_ms()

    async def figures() -> tuple[Any, ...]:
        gauges, stats = await gauge_snapshot(engine), await outbox_stats(engine, before + 1)
        return (
            gauges.pending,
            stats.counts["pending"],
            stats.due_now,
            stats.attempts["0"]["pending"],
            sum(stats.counts.values()),
        )

    assert await figures() == (3, 3, 3, 3, 3)
    due = await deliveries.next_due_at(engine, now_ms())
    assert due is not None and due <= before
    assert await take_in(engine) == 3
    assert await figures() == (3, 3, 3, 3, 3)  # the same, read from the outbox now
    assert await deliveries.next_due_at(engine, now_ms()) == due


@POSTGRESQL_ONLY
async def test_relays_side_by_side_take_every_event_in_once(
    settings: Settings, engine: AsyncEngine, database_url: str
) -> None:
    sent: list[str] = []
    async with app_connection(database_url) as app, running_fake() as fake:
        tuned = relay_settings(settings, fake.origin, batch_size=25)
        async with relay_in_background(tuned, engine), relay_in_background(tuned, engine):
            for _ in range(20):
                async with app.transaction():
                    for _ in range(25):
                        event = await app.fetchval(SEND, "app/many", "{}", None, None, None, None)
                        sent.append(event)
            await eventually(lambda: received(fake, *sent))
    assert sorted(fake.received_ids) == sorted(sent)  # each once
    assert len(await sent_rows(engine)) == len(sent)


BAD_CALLS = {
    "empty name": ("", "{}", None, None, None),
    "reserved name": ("Inngest/function.failed", "{}", None, None, None),
    "long name": ("x" * 257, "{}", None, None, None),
    "data array": ("app/x", "[1, 2]", None, None, None),
    "data string": ("app/x", '"text"', None, None, None),
    "user number": ("app/x", "{}", "42", None, None),
    "ts before 1980": ("app/x", "{}", None, 5, None),
    "ts after 2100": ("app/x", "{}", None, 4_200_000_000_000, None),
    "env not ascii": ("app/x", "{}", None, None, "bränch"),
    "too large": ("app/x", json.dumps({"pad": "x" * 300_000}), None, None, None),
}


def event_api_text(name: str, data: str, user: str | None, ts: int | None, env: str | None) -> str:
    """What the Event API (and the Python helper) says of the same event."""
    event: dict[str, Any] = {"name": name, "data": json.loads(data), "id": "x", "ts": ts or NOW}
    if user is not None:
        event["user"] = json.loads(user)
    if env is not None:
        return "env must be 1 to 256 printable ASCII characters"
    error = event_error(event)
    if error is None:
        error = size_error(json.dumps(event), 256 * 1024) or ""
        return error.split(" / Size")[0]
    return error


@POSTGRESQL_ONLY
@pytest.mark.parametrize("call", sorted(BAD_CALLS))
async def test_a_bad_event_fails_the_statement_with_the_event_apis_text(
    engine: AsyncEngine, database_url: str, call: str
) -> None:
    name, data, user, ts, env = BAD_CALLS[call]
    async with app_connection(database_url) as app:
        await app.execute(APP_TABLE)
        async with app.transaction():
            with pytest.raises(asyncpg.PostgresError) as refused:
                async with app.transaction():  # a savepoint: the caller goes on after it
                    await app.fetchval(SEND, name, data, user, None, ts, env)
            await app.execute("INSERT INTO app_rows (note) VALUES ('the caller went on')")
        assert refused.value.sqlstate == "22023"
        assert refused.value.message.startswith(event_api_text(name, data, user, ts, env))
        assert await app.fetchval("SELECT count(*) FROM app_rows") == 1
    assert await count(engine) == 0


@POSTGRESQL_ONLY
async def test_the_function_is_one_with_a_frozen_signature_and_no_public_execute(
    database_url: str,
) -> None:
    async with app_connection(database_url) as app:
        signatures = await app.fetch(
            "SELECT pg_get_function_identity_arguments(p.oid) AS args, p.prosecdef,"
            " p.proconfig, has_function_privilege('public', p.oid, 'EXECUTE') AS public"
            " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE p.proname = 'send_event'"
        )
    assert [row["args"] for row in signatures] == [
        "name text, data jsonb, event_user jsonb, id text, ts bigint, env text"
    ]
    [function] = signatures
    assert function["prosecdef"]  # SECURITY DEFINER
    assert function["proconfig"] == ["search_path=pg_catalog, pg_temp"]
    assert function["public"] is False


@POSTGRESQL_ONLY
async def test_what_the_function_stores_is_what_the_event_api_stores(
    engine: AsyncEngine, database_url: str
) -> None:
    async with app_connection(database_url) as app:
        user = '{"id": "u-1", "email": "a@example.com"}'
        event_id = await app.fetchval(SEND, "app/x", '{"k": [1, 2]}', user, "e-1", NOW, "branch-1")
        generated = await app.fetchval(SEND, "app/y", None, None, None, None, None)
    rows = await sent_rows(engine)
    assert json.loads(rows[event_id]["payload"]) == {
        "name": "app/x",
        "data": {"k": [1, 2]},
        "user": {"id": "u-1", "email": "a@example.com"},
        "id": "e-1",
        "ts": NOW,
    }
    assert (rows[event_id]["status"], rows[event_id]["env"]) == ("pending", "branch-1")
    payload = json.loads(rows[generated]["payload"])
    assert payload["data"] == {} and "user" not in payload and payload["id"] == generated
    assert abs(payload["ts"] - rows[generated]["created_at"]) < 1000  # the database's clock
    # Without an id of its own, the event's id is the one Inngest will give it: a ULID of the
    # second it was sent in. An id of the app's own stays its own, beside Inngest's.
    assert rows[generated]["inngest_id"] == generated
    parts = ulid_parts(generated)
    assert parts is not None and parts[0] == rows[generated]["created_at"] // 1000 * 1000
    assert ulid_parts(rows[event_id]["inngest_id"]) is not None


# -- the Python helper ------------------------------------------------------------------------


@pytest.fixture
async def app_engine(settings: Settings) -> Any:
    """The app's own engine: SQLAlchemy, as the app configured it, not the service's."""
    engine = create_async_engine(settings.database_url)
    yield engine
    await engine.dispose()


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
async def test_the_helper_sends_in_a_connections_transaction(
    app_engine: AsyncEngine, engine: AsyncEngine, commit: bool
) -> None:
    async with app_engine.connect() as conn:
        await conn.execute(text("CREATE TABLE app_notes (note text)"))
        await conn.commit()
        async with conn.begin() as transaction:
            await conn.execute(text("INSERT INTO app_notes VALUES ('written')"))
            event_id = await send_event(conn, "app/noted", {"n": 1}, user={"id": "u-7"}, env="b")
            await (transaction.commit() if commit else transaction.rollback())
        notes = await conn.scalar(text("SELECT count(*) FROM app_notes"))
    rows = await sent_rows(engine)
    assert notes == (1 if commit else 0)
    assert list(rows) == ([event_id] if commit else [])
    if commit:
        payload = json.loads(rows[event_id]["payload"])
        assert (payload["name"], payload["data"], payload["user"]) == (
            "app/noted",
            {"n": 1},
            {"id": "u-7"},
        )
        assert rows[event_id]["env"] == "b"


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
async def test_the_helper_sends_in_a_sessions_transaction(
    app_engine: AsyncEngine, engine: AsyncEngine, commit: bool
) -> None:
    async with AsyncSession(app_engine) as session:
        await session.begin()
        first = await send_event(session, "app/session", {"n": 1}, id="fixed-id")
        again = await send_event(session, "app/session", {"n": 2}, id="fixed-id")
        await (session.commit() if commit else session.rollback())
    assert first == again == "fixed-id"
    assert await count(engine) == (1 if commit else 0)


async def test_the_helper_refuses_outside_a_transaction_and_bad_events_before_writing(
    app_engine: AsyncEngine, engine: AsyncEngine
) -> None:
    async with app_engine.connect() as conn:
        with pytest.raises(RuntimeError, match="inside a transaction"):
            await send_event(conn, "app/x")
        async with conn.begin():
            with pytest.raises(EventRefused, match="event name is reserved for internal use"):
                await send_event(conn, "inngest/x")
            with pytest.raises(EventRefused, match="data must be an object, not an array"):
                await send_event(conn, "app/x", [1])  # type: ignore[arg-type]
            # Refused before any statement: the transaction goes on.
            await send_event(conn, "app/fine")
    assert await count(engine) == 1


async def test_an_event_the_database_finds_too_large_is_refused_and_the_transaction_goes_on(
    app_engine: AsyncEngine, engine: AsyncEngine
) -> None:
    # Compact, as the helper measures it, the event is under 256 KB; PostgreSQL writes its data
    # as jsonb does, with a space after every ':' and ',', which takes it over.
    data = {f"k{n:05}": 1 for n in range(23_000)}
    assert len(json.dumps(data, separators=(",", ":"))) < 256 * 1024
    assert len(json.dumps(data)) > 256 * 1024
    async with app_engine.connect() as conn:
        async with conn.begin():
            try:
                await send_event(conn, "app/large", data)
            except EventRefused as refused:  # PostgreSQL's measure
                assert str(refused).startswith("Event is over the max size: Max 262144 bytes")
            else:  # SQLite stores the compact text, which fits
                assert conn.dialect.name == "sqlite"
            await send_event(conn, "app/after")  # the transaction goes on
    assert await count(engine) == (2 if "sqlite" in str(engine.url) else 1)

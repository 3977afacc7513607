"""The service in a schema of its own beside an app in one PostgreSQL database: the app's
tables untouched, two services in two schemas apart, a database from before the schema upgraded
in place, and the role an app sends with, which can do nothing else."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from click.testing import CliRunner

from service.cli.main import main
from service.store import migrations
from tests.app_transactions import app_connection, scratch_database, sent_rows, service_in
from tests.conftest import admin_execute
from tests.fake_inngest import running_fake
from tests.relay_harness import eventually, relay_in_background, relay_settings, rows_by_id

pytestmark = pytest.mark.usefixtures("postgres_template")  # the server answers (or CI fails)


def sender(schema: str) -> str:
    return f"SELECT {schema}.send_event($1, $2::jsonb)"


async def test_the_service_leaves_the_apps_own_tables_alone() -> None:
    async with scratch_database() as url:
        async with app_connection(url) as app:
            # The app has tables of the service's names, and alembic of its own.
            await app.execute("CREATE TABLE public.outbox_events (id int PRIMARY KEY, what text)")
            await app.execute("INSERT INTO public.outbox_events VALUES (1, 'the app''s')")
            await app.execute("CREATE TABLE public.alembic_version (version_num text)")
            await app.execute("INSERT INTO public.alembic_version VALUES ('app_0042')")
            async with service_in(url, "inngest_outbox") as (_settings, engine):
                event_id = await app.fetchval(sender("inngest_outbox"), "app/x", "{}")
                assert list(await sent_rows(engine)) == [event_id]
            assert await app.fetch("SELECT * FROM public.outbox_events") == [(1, "the app's")]
            assert await app.fetchval("SELECT version_num FROM public.alembic_version") == (
                "app_0042"
            )
            version = await app.fetchval("SELECT version_num FROM inngest_outbox.alembic_version")
            assert version == migrations.head_revision()


async def test_two_services_in_two_schemas_deliver_only_their_own() -> None:
    async with (
        scratch_database() as url,
        running_fake() as first_inngest,
        running_fake() as second_inngest,
        app_connection(url) as app,
        service_in(url, "first_outbox") as (first_settings, first_engine),
        service_in(url, "second_outbox") as (second_settings, second_engine),
    ):
        # Polling once an hour: what is delivered comes from each schema's own wake-ups.
        first = relay_settings(first_settings, first_inngest.origin, poll_interval=3600.0)
        second = relay_settings(second_settings, second_inngest.origin, poll_interval=3600.0)
        async with (
            relay_in_background(first, first_engine),
            relay_in_background(second, second_engine),
        ):
            await eventually(lambda: _relays_waiting(app, 2))
            to_first = await app.fetchval(sender("first_outbox"), "app/first", "{}")
            to_second = await app.fetchval(sender("second_outbox"), "app/second", "{}")
            await eventually(lambda: _got(first_inngest.received_ids, to_first))
            await eventually(lambda: _got(second_inngest.received_ids, to_second))
        assert first_inngest.received_ids == [to_first]
        assert second_inngest.received_ids == [to_second]


async def _relays_waiting(app: asyncpg.Connection, count: int) -> bool:
    waiting = await app.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        " AND mode = 'ExclusiveLock' AND granted"
    )
    return bool(waiting == count)


async def _got(ids: list[str], event_id: str) -> bool:
    return event_id in ids


async def test_a_database_from_before_upgrades_in_place_and_keeps_its_rows() -> None:
    async with scratch_database() as url:
        async with service_in(url, "public", revision="0004"), app_connection(url) as app:
            await app.execute(
                "INSERT INTO outbox_events (id, name, payload, status, attempts, created_at,"
                " next_attempt_at) VALUES ('0194-old', 'openapi/app.sync', '{}', 'pending', 0,"
                " 1, 1)"
            )
        async with service_in(url, "public") as (_settings, engine), app_connection(url) as app:
            rows = await rows_by_id(engine)
            assert list(rows) == ["0194-old"]
            new = await app.fetchval(sender("public"), "app/after", '{"n": 1}')
            assert json.loads((await sent_rows(engine))[new]["payload"])["data"] == {"n": 1}
            assert await app.fetchval(
                "SELECT data_type FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = 'outbox_events'"
                " AND column_name = 'id'"
            ) == ("text")


async def test_a_granted_role_sends_and_can_do_nothing_else() -> None:
    role, idle = f"app_sender_{uuid.uuid4().hex[:8]}", f"app_idle_{uuid.uuid4().hex[:8]}"
    await admin_execute(f'CREATE ROLE "{role}" LOGIN', f'CREATE ROLE "{idle}" LOGIN')
    try:
        async with scratch_database() as url:
            async with service_in(url, "inngest_outbox") as (_settings, engine):
                env = {"DATABASE_URL": url, "DATABASE_SCHEMA": "inngest_outbox"}
                command = ["db", "grant-sender", role]
                # The command runs its own event loop: in a thread, beside this test's.
                granted = await asyncio.to_thread(CliRunner().invoke, main, command, env=env)
                assert granted.exit_code == 0, granted.output
                assert f"{role} may call inngest_outbox.send_event" in granted.output
                async with app_connection(url, user=role) as app:
                    event_id = await app.fetchval(sender("inngest_outbox"), "app/x", "{}")
                    # What the Python helper checks an event against first.
                    assert await app.fetchval("SELECT inngest_outbox.event_max_bytes()") > 0
                    for forbidden in (
                        "SELECT * FROM inngest_outbox.outbox_events",
                        "UPDATE inngest_outbox.outbox_events SET status = 'dead'",
                        "DELETE FROM inngest_outbox.outbox_events",
                        "SELECT * FROM inngest_outbox.outbox_intake",
                        "INSERT INTO inngest_outbox.outbox_intake VALUES ('i', 'n', '{}', NULL, 1)",
                        "DELETE FROM inngest_outbox.outbox_intake",
                        "INSERT INTO inngest_outbox.app_settings VALUES (1, '{}', 0)",
                    ):
                        with pytest.raises(asyncpg.InsufficientPrivilegeError):
                            await app.execute(forbidden)
                async with app_connection(url, user=idle) as stranger:
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await stranger.fetchval(sender("inngest_outbox"), "app/x", "{}")
                assert list(await sent_rows(engine)) == [event_id]
                async with app_connection(url) as admin:
                    await admin.execute(f'DROP OWNED BY "{role}", "{idle}"')
    finally:
        await admin_execute(f'DROP ROLE IF EXISTS "{role}"', f'DROP ROLE IF EXISTS "{idle}"')


async def test_a_role_granted_before_the_helper_checked_the_limit_may_read_it() -> None:
    role = f"app_sender_{uuid.uuid4().hex[:8]}"
    await admin_execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        async with scratch_database() as url:
            async with service_in(url, "public", revision="0007"):
                async with app_connection(url) as owner:
                    await owner.execute(
                        "GRANT EXECUTE ON FUNCTION"
                        f' public.send_event(text, jsonb, jsonb, text, bigint, text) TO "{role}"'
                    )
            async with service_in(url, "public"), app_connection(url, user=role) as app:
                assert await app.fetchval("SELECT public.event_max_bytes()") == 256 * 1024
                async with app_connection(url) as owner:
                    await owner.execute(f'DROP OWNED BY "{role}"')
    finally:
        await admin_execute(f'DROP ROLE IF EXISTS "{role}"')


def test_grant_sender_on_sqlite_says_the_helper_is_the_way(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/service.db"}
    assert CliRunner().invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    refused = CliRunner().invoke(main, ["db", "grant-sender", "someone"], env=env)
    assert refused.exit_code == 1
    assert "SQLite has no roles" in refused.output and "send_event" in refused.output


async def test_downgrading_moves_the_intake_into_the_outbox() -> None:
    """Back to revision 0005: what the intake held is in the outbox, and ``send_event`` writes
    there again."""
    async with scratch_database() as url:
        async with service_in(url, "inngest_outbox") as (settings, engine):
            async with app_connection(url) as app:
                waiting = await app.fetchval(sender("inngest_outbox"), "app/waiting", "{}")
                config = migrations.alembic_config(settings)
                await asyncio.to_thread(command.downgrade, config, "0005")
                outbox_ids = "SELECT id FROM inngest_outbox.outbox_events"
                assert [r["id"] for r in await app.fetch(outbox_ids)] == [waiting]
                after = await app.fetchval(sender("inngest_outbox"), "app/after", "{}")
                assert {r["id"] for r in await app.fetch(outbox_ids)} == {waiting, after}
                intake = "SELECT to_regclass('inngest_outbox.outbox_intake')"
                assert await app.fetchval(intake) is None
            await asyncio.to_thread(migrations.upgrade, settings)
            async with app_connection(url) as app:
                again = await app.fetchval(sender("inngest_outbox"), "app/again", "{}")
            assert set(await sent_rows(engine)) == {waiting, after, again}

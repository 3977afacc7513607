"""An app's Node.js code sends an event in its own transaction with node-postgres (the ``pg``
package, pinned by tests/node-pg's lock): rolled back, nothing is stored or sent; committed,
the event is delivered exactly as sent, once."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from tests.app_transactions import APP_TABLE, app_connection, dsn
from tests.conftest import POSTGRESQL_ONLY
from tests.fake_inngest import running_fake
from tests.js_clients import NODE_PG, require_js, run_script
from tests.relay_harness import eventually, relay_in_background, relay_settings, rows_by_id

pytestmark = POSTGRESQL_ONLY


def app_sends(database_url: str, name: str, data: dict[str, object], *, commit: bool) -> str:
    """What the app's code does: BEGIN, its own row, send_event, COMMIT or ROLLBACK."""
    request = {"url": dsn(database_url), "schema": "public", "name": name, "data": data}
    answer = run_script(
        "send-in-transaction.mjs", json.dumps(request | {"commit": commit}), package=NODE_PG
    )
    return str(json.loads(answer)["id"])


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
async def test_an_apps_transaction_through_node_postgres(
    settings: Settings, engine: AsyncEngine, database_url: str, commit: bool
) -> None:
    require_js(NODE_PG)
    async with app_connection(database_url) as app, running_fake() as fake:
        await app.execute(APP_TABLE)
        tuned = relay_settings(settings, fake.origin, poll_interval=3600.0)
        async with relay_in_background(tuned, engine):
            data = {"plan": "pro", "seats": 3}
            event_id = await asyncio.to_thread(
                app_sends, database_url, "app/plan.changed", data, commit=commit
            )
            notes = await app.fetchval("SELECT count(*) FROM app_rows")
            if commit:
                await eventually(lambda: _received(fake.received_ids, event_id))
        rows = await rows_by_id(engine)
    if commit:
        assert notes == 1 and list(rows) == [event_id]
        [event] = fake.received
        assert (event["id"], event["name"], event["data"]) == (event_id, "app/plan.changed", data)
        assert fake.received_ids == [event_id]  # once
    else:
        assert notes == 0 and rows == {} and fake.requests == []


async def _received(ids: list[str], event_id: str) -> bool:
    return event_id in ids

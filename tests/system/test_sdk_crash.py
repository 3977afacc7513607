"""A real ``service serve`` is killed with SIGKILL after it committed a send and before its
answer reached the SDK; the SDK's retry, with the same seed, reaches the restarted service,
which stores nothing new and answers the same ids."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from service.store.engine import create_engine
from service.store.tables import outbox_events
from tests.conftest import make_settings
from tests.lossy_proxy import lossy_proxy
from tests.processes import free_port, kill, service_env, spawn, wait_http
from tests.sdk_clients import CLIENTS, require_client, send

pytestmark = pytest.mark.slow
APP_KEY = "app-event-key-0123456789"


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_send_committed_by_a_killed_service_is_stored_once(
    client: str, database_url: str, tmp_path: Path
) -> None:
    require_client(client)
    port = free_port()
    env = service_env(database_url, EVENT_API_KEYS=APP_KEY)
    args = ["serve", "--no-relay", "--port", str(port)]
    log = tmp_path / "serve.log"
    processes: list[subprocess.Popen[bytes]] = [spawn(args, env, log)]
    url = f"http://127.0.0.1:{port}"

    async def kill_and_restart() -> None:
        # The service has committed the batch and answered; it dies before the SDK hears it.
        assert kill(processes[-1]) != 0
        processes.append(spawn(args, env, log))
        await wait_http(f"{url}/health", processes[-1])

    events = [{"name": "app/crash", "data": {"n": n}, "ts": 1_800_000_000_000} for n in range(4)]
    try:
        await wait_http(f"{url}/health", processes[0])
        async with lossy_proxy(url, lose=1, before_reset=kill_and_restart) as proxy:
            sent = await send(client, proxy.origin, APP_KEY, events)
    finally:
        for process in processes:
            kill(process)
    assert sent.error is None and sent.ids is not None, log.read_text()[-2000:]
    assert len(processes) == 2 and proxy.forwarded == 2
    assert json.loads(proxy.lost[0])["ids"] == sent.ids

    engine = create_engine(make_settings(database_url))
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(outbox_events).order_by(outbox_events.c.seq))).all()
    finally:
        await engine.dispose()
    assert [row.id for row in rows] == sent.ids
    assert [json.loads(row.payload)["data"] for row in rows] == [e["data"] for e in events]

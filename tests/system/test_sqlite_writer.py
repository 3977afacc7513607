"""The SQLite writer process: it answers while the web process lives, ignores the signals a
terminal sends to the whole group, ends with a killed server, and is replaced when it dies."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from service.http.app import create_app
from service.store.engine import create_engine
from service.store.tables import outbox_events
from tests.conftest import bearer, make_settings
from tests.processes import free_port, kill, service_env, spawn, wait_http

WRITER_MODULE = b"service.store.backends.sqlite_writer"


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "service.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


def writer_processes(parent: int) -> list[int]:
    """The pids of ``parent``'s SQLite writer children."""
    while True:
        try:
            children = [
                int(pid)
                for task in Path(f"/proc/{parent}/task").iterdir()
                for pid in (task / "children").read_text().split()
            ]
        except (FileNotFoundError, ProcessLookupError):
            # A thread ended while the threads were read: its children went to another
            # thread, maybe one read already. Read them all again.
            continue
        return [pid for pid in children if WRITER_MODULE in _cmdline(pid)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, it was read
        return b""


def is_running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):  # reaped before, or while, it was read
        return False
    return "State:\tZ" not in status  # a zombie has exited; only its parent's wait is left


async def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while is_running(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        await asyncio.sleep(0.05)


async def rows(database_url: str) -> int:
    engine = create_engine(make_settings(database_url))
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(outbox_events)) or 0)
    finally:
        await engine.dispose()


@pytest.mark.slow
async def test_the_writer_ignores_group_signals_and_ends_with_a_killed_server(
    sqlite_url: str, tmp_path: Path
) -> None:
    import aiohttp

    port = free_port()
    server = spawn(
        ["serve", "--no-relay", "--port", str(port)], service_env(sqlite_url), tmp_path / "log"
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        await wait_http(f"http://127.0.0.1:{port}/health", server)
        async with aiohttp.ClientSession() as session:
            async with session.post(url, headers=bearer()) as response:
                assert response.status == 200
            [writer] = writer_processes(server.pid)
            # Ctrl-C in a terminal reaches every process of the group: the server decides.
            os.kill(writer, signal.SIGINT)
            os.kill(writer, signal.SIGTERM)
            await asyncio.sleep(0.3)
            assert is_running(writer)
            async with session.post(url, headers=bearer()) as response:
                assert response.status == 200
        kill(server)
        await wait_gone(writer)
    finally:
        kill(server)
    assert await rows(sqlite_url) == 2


async def test_a_dead_writer_is_replaced(aiohttp_client, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(make_settings(sqlite_url)))
    assert (await client.post("/api", headers=bearer())).status == 200
    [writer] = writer_processes(os.getpid())
    os.kill(writer, signal.SIGKILL)
    await wait_gone(writer)
    statuses = [(await client.post("/api", headers=bearer())).status for _ in range(3)]
    # Gone between batches, it is simply started again; a batch in flight would get a 503.
    assert set(statuses) <= {200, 503} and statuses[-1] == 200
    assert await rows(sqlite_url) == 1 + statuses.count(200)
    [replacement] = writer_processes(os.getpid())
    assert replacement != writer


async def test_a_batch_waits_for_a_lock_held_within_the_busy_timeout(  # type: ignore[no-untyped-def]
    aiohttp_client, sqlite_url: str
) -> None:
    # The writer waits for the lock itself (SQLite's own wait is off in it): a lock released
    # within SQLITE_BUSY_TIMEOUT_MS (1 s here) delays the batch, it does not fail it.
    client = await aiohttp_client(create_app(make_settings(sqlite_url)))
    assert (await client.post("/api", headers=bearer())).status == 200
    holder = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        posted = asyncio.ensure_future(client.post("/api", headers=bearer()))
        await asyncio.sleep(0.3)
        assert not posted.done()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (await posted).status == 200
    assert await rows(sqlite_url) == 2

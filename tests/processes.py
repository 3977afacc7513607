"""Real ``service`` processes for crash and concurrency tests."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp

from tests.conftest import SECRET, TOKEN

ROOT = Path(__file__).resolve().parents[1]


# The ports of the servers tests start: below the kernel's ephemeral range (the ports outgoing
# connections are given), in a block of their own for each worker of a parallel run, so that a
# port one test was handed is never another test's, nor a client socket's.
FIRST_PORT = 20000
PORTS_PER_WORKER = 2000
_next_port = itertools.count()


def free_port() -> int:
    """A port of this worker's block that nothing listens on now."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    block = FIRST_PORT + int(worker or 0) * PORTS_PER_WORKER
    for _ in range(PORTS_PER_WORKER):
        port = block + next(_next_port) % PORTS_PER_WORKER
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken (a server an earlier test left, or someone else's)
        return port
    raise RuntimeError(f"no free port in {block}..{block + PORTS_PER_WORKER - 1}")


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a service process under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INNGEST_", "RELAY_"))}
    env.update(
        DATABASE_URL=database_url,
        SESSION_SECRET=SECRET,
        INTERNAL_API_TOKENS=TOKEN,
        LOG_FORMAT="json",
        SQLITE_BUSY_TIMEOUT_MS="5000",
    )
    env.update(extra)
    return env


def sqlite_copy(template: Path, directory: Path) -> str:
    """A fresh migrated SQLite database for processes: a copy of the session's template."""
    path = directory / "service.db"
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


def spawn(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m service ARGS`` with its output in ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service", *args],
            env=dict(env),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Wait until ``url`` answers 200, failing early if the process died."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"process exited with {process.returncode}")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def kill(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout=30)


async def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    """``kill`` without blocking the event loop (a fake Inngest in this loop must answer)."""
    return await asyncio.to_thread(kill, process, sig)

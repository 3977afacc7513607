"""The processes of a bench: starting, waiting on and stopping them, and reading their logs.

Every process a bench starts goes through ``Processes`` (stopped on exit, even on failure), in
an environment that the caller's service variables do not leak into (``clean_env``); every wait
has a deadline. Also owns where the project is (``ROOT``), the Python that runs it, the one host
everything listens on (``HOST``) and ``BenchError``, how a bench that cannot run fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PYTHON = sys.executable
HOST = "127.0.0.1"

# Variables of the service that the caller's environment must not leak into a bench run.
SERVICE_VARIABLES = (
    "SERVICE_ENV",
    "HOST",
    "PORT",
    "DATABASE_URL",
    "INTERNAL_API_TOKENS",
    "MAX_BODY_BYTES",
    "IDEMPOTENCY_TTL",
    "LOG_FORMAT",
    "LOG_LEVEL",
)
SERVICE_PREFIXES = (
    *("INNGEST_", "RELAY_", "SQLITE_", "SESSION_", "DB_", "RETENTION_"),
    *("AUTH_SECRET", "NEXTAUTH_"),
)


class BenchError(RuntimeError):
    """A bench could not run (a process died, a deadline passed, a tool is missing)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any of the service's variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SERVICE_VARIABLES and not k.startswith(SERVICE_PREFIXES)
    }
    env.update(PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING", LOG_FORMAT="json")
    env.update(extra)
    return env


class Processes:
    """Starts processes with their output in ``logdir/NAME.log``; stops them all on exit."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.logdir.mkdir(parents=True, exist_ok=True)
        self._running: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *_exc: object) -> None:
        for process in reversed(self._running):
            self.stop(process)

    def python(
        self, name: str, module: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``python -m MODULE ARGS`` in the project root."""
        log = self.logdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [PYTHON, "-m", module, *args],
                env=dict(env if env is not None else clean_env()),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._running.append(process)
        self.logs[process.pid] = log
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; return the exit status."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process in self._running:
            self._running.remove(process)
        return int(process.returncode)

    def log_of(self, process: subprocess.Popen[bytes]) -> Path:
        return self.logs[process.pid]


async def run_command(
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
) -> tuple[int, str, str]:
    """Run a command to completion within ``timeout`` (fed ``stdin``, if given); killed on
    timeout or cancellation."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate(stdin)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    return int(process.returncode or 0), out.decode(errors="replace"), err.decode(errors="replace")


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.1
) -> float:
    """Poll ``check`` until it is true; return the seconds it took; BenchError at ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(interval)
    raise BenchError(f"{what}: not within {timeout:.0f}s")


def log_tail(path: Path, lines: int = 8) -> str:
    """The last lines of a process log, to quote in an error."""
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"--- last lines of {path.relative_to(ROOT)}:\n" + "\n".join(tail)


def log_problems(path: Path) -> dict[str, Any]:
    """Warnings and errors in a process log (JSON lines), with a few samples."""
    counts = {"warnings": 0, "errors": 0}
    samples: list[str] = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {**counts, "samples": samples}
    for line in lines:
        try:
            record = json.loads(line)
            level = str(record.get("level", "")) if isinstance(record, dict) else ""
        except ValueError:
            level = "ERROR" if line.startswith("Traceback") else ""
            record = line
        if level in ("ERROR", "CRITICAL"):
            counts["errors"] += 1
        elif level == "WARNING":
            counts["warnings"] += 1
        else:
            continue
        if len(samples) < 5:
            samples.append(record.get("message", line) if isinstance(record, dict) else line)
    return {**counts, "samples": samples}

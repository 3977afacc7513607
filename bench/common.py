"""What every bench shares: processes, ports, databases, wrk, the receiver and load generator,
percentiles, tables and JSON results.

Every process a bench starts goes through ``Processes`` (stopped on exit, even on failure);
every wait has a deadline; everything listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PYTHON = sys.executable
HOST = "127.0.0.1"
TOKEN = "bench-internal-token-0123456789abcdef"
SECRET = "bench-session-secret-0123456789abcdefghijklmnop"
EVENT_KEY = "bench-event-key"
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")
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
SERVICE_PREFIXES = ("INNGEST_", "RELAY_", "SQLITE_", "SESSION_", "DB_", "RETENTION_")


class BenchError(RuntimeError):
    """A bench could not run (a process died, a deadline passed, a tool is missing)."""


# -- payloads ------------------------------------------------------------------------------


def sample_document(size: int = 1024) -> dict[str, Any]:
    """An app-settings-like JSON object whose compact encoding is about ``size`` bytes."""
    document: dict[str, Any] = {
        "appName": "bench",
        "theme": {"primary": "#3366ff", "mode": "dark"},
        "locale": "en-GB",
        "features": {f"feature{n:02d}": n % 3 == 0 for n in range(12)},
        "limits": {"requestsPerMinute": 600, "maxUploadBytes": 10485760},
        "notes": "",
    }
    filler = size - len(compact(document))
    document["notes"] = "x" * max(0, filler)
    return document


def compact(value: Any) -> str:
    """Compact JSON, as the service serializes events."""
    return json.dumps(value, separators=(",", ":"))


def write_body(size: int, directory: Path) -> Path:
    """Write a ~``size`` byte JSON request body to a file and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"body-{size}.json"
    path.write_text(compact(sample_document(size)))
    return path


# -- statistics ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (NaN for none)."""
    return percentile(list(values), 50)


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """Count, p50, p90, p99 and max of a sample (milliseconds in, milliseconds out)."""
    return {
        "count": len(values),
        "p50": round(percentile(values, 50), 2),
        "p90": round(percentile(values, 90), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2) if values else math.nan,
    }


def fmt(value: float | int | None, digits: int = 1) -> str:
    """A number for a table cell: thousands separators, ``-`` for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


# -- processes -----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int | None:
    """Resident memory of ``pid`` in KiB (VmRSS), None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


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
    argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    """Run a command to completion within ``timeout``; killed on timeout or cancellation."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
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


async def get_json(url: str, timeout: float = 10.0) -> Any:
    """GET ``url`` and decode its JSON body."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(url) as response,
    ):
        response.raise_for_status()
        return await response.json(content_type=None)


async def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until ``url`` answers 200; BenchError if the process exits first."""

    async def answers() -> bool:
        if process.poll() is not None:
            raise BenchError(f"{url}: the process exited with {process.returncode}")
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
                session.get(url) as response,
            ):
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    await wait_until(answers, timeout, f"{url} answering", interval=0.1)


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


def service_env(
    database_url: str, inngest_origin: str | None = None, **extra: str
) -> dict[str, str]:
    """The environment of a ``service`` process: database, token, WARNING logs, Inngest."""
    env = clean_env(
        DATABASE_URL=database_url,
        SESSION_SECRET=SECRET,
        INTERNAL_API_TOKENS=TOKEN,
        HOST=HOST,
    )
    if inngest_origin is not None:
        env.update(INNGEST_EVENT_API_BASE_URL=inngest_origin, INNGEST_EVENT_KEY=EVENT_KEY)
    env.update(extra)
    return env


@dataclass
class Server:
    """A running HTTP process of a bench and its base URL."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


async def start_http(
    procs: Processes,
    name: str,
    module: str,
    args: Sequence[str],
    env: Mapping[str, str],
    port: int | None = None,
) -> Server:
    """Start ``python -m MODULE ARGS --port P`` and wait for its ``/health``."""
    port = port or free_port()
    process = procs.python(name, module, [*args, "--port", str(port)], env)
    server = Server(process, port, procs.log_of(process))
    try:
        await wait_http(f"{server.url}/health", process)
    except BenchError as exc:
        raise BenchError(f"{name}: {exc}\n{log_tail(server.log)}") from None
    return server


def log_tail(path: Path, lines: int = 8) -> str:
    """The last lines of a process log, to quote in an error."""
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"--- last lines of {path.relative_to(ROOT)}:\n" + "\n".join(tail)


async def start_service(
    procs: Processes,
    name: str,
    database_url: str,
    *,
    relay: bool,
    inngest_origin: str | None = None,
    **extra: str,
) -> Server:
    """``service serve`` (with its in-process relay unless ``relay`` is false)."""
    args = ["serve"] if relay else ["serve", "--no-relay"]
    env = service_env(database_url, inngest_origin, **extra)
    return await start_http(procs, name, "service", args, env)


def start_relay(
    procs: Processes, name: str, database_url: str, inngest_origin: str, **extra: str
) -> subprocess.Popen[bytes]:
    """``service relay`` without its metrics server (RELAY_METRICS_PORT=0)."""
    env = service_env(database_url, inngest_origin, RELAY_METRICS_PORT="0", **extra)
    return procs.python(name, "service", ["relay"], env)


@dataclass
class Receiver(Server):
    """A running ``bench.receiver``: answers Inngest's 200 with ids, counts and timestamps."""

    async def stats(self) -> dict[str, int]:
        result: dict[str, int] = await get_json(f"{self.url}/stats")
        return result

    async def arrivals(self) -> dict[str, tuple[int, float]]:
        """First arrival of each event id: ``id -> (event ts ms, arrival ms)``."""
        records = (await get_json(f"{self.url}/records", timeout=60))["records"]
        first: dict[str, tuple[int, float]] = {}
        for event_id, ts, arrival in records:
            first.setdefault(event_id, (int(ts), float(arrival)))
        return first


async def start_receiver(
    procs: Processes,
    name: str,
    *,
    port: int | None = None,
    delay_ms: float = 0.0,
    record: bool = False,
) -> Receiver:
    """Start a receiver; ``record`` keeps (id, ts, arrival) of every event for ``arrivals``."""
    args = ["--delay-ms", str(delay_ms), "--key", EVENT_KEY] + (["--record"] if record else [])
    server = await start_http(procs, name, "bench.receiver", args, clean_env(), port)
    return Receiver(server.process, server.port, server.log)


async def post_api(url: str, count: int, body: bytes) -> list[str]:
    """``count`` sequential POSTs with the bench token, which must all answer 200; return the
    ids answered (a warm-up, and a check that the target is up and takes the token)."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    ids = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for _ in range(count):
            async with session.post(url, data=body, headers=headers) as response:
                text = await response.text()
                if response.status != 200:
                    raise BenchError(f"POST {url}: {response.status} {text}")
                ids.append(str(json.loads(text).get("id", "")))
    return ids


async def wait_arrivals(
    receiver: Receiver, ids: Iterable[str], timeout: float
) -> tuple[dict[str, tuple[int, float]], float]:
    """Wait until the receiver has seen every one of ``ids`` or ``timeout`` passed; return
    its arrivals and the seconds waited (the caller counts what is missing)."""
    wanted = set(ids)
    start = time.monotonic()
    arrivals: dict[str, tuple[int, float]] = {}
    while True:
        if (await receiver.stats())["events"] >= len(wanted):
            arrivals = await receiver.arrivals()
            if wanted <= arrivals.keys():
                break
        if time.monotonic() - start > timeout:
            arrivals = await receiver.arrivals()
            break
        await asyncio.sleep(0.1)
    return arrivals, time.monotonic() - start


# -- the open-loop load generator ---------------------------------------------------------


@dataclass
class Load:
    """What ``bench.loadgen`` measured: latencies from each request's scheduled start."""

    requests: int
    elapsed_s: float
    statuses: dict[str, int]
    errors: dict[str, int]
    latency_ms: list[float]
    ids: list[str]
    late_ms_p99: float

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("2"))

    @property
    def failed(self) -> int:
        return self.requests - self.ok

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "achieved_rps": round(self.requests / self.elapsed_s, 1) if self.elapsed_s else 0,
            "ok": self.ok,
            "failed": self.failed,
            "statuses": self.statuses,
            "errors": self.errors,
            "latency_ms": summarize(self.latency_ms),
            "generator_late_ms_p99": self.late_ms_p99,
        }


async def run_load(
    procs: Processes,
    name: str,
    url: str,
    *,
    rate: float,
    duration: float,
    connections: int = 256,
    body_bytes: int = 1024,
    timeout: float = 30.0,
) -> Load:
    """Run ``bench.loadgen`` against ``url`` at ``rate`` requests/s for ``duration`` s."""
    out = procs.logdir / f"{name}.json"
    out.unlink(missing_ok=True)
    args = [
        "--url",
        url,
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--connections",
        str(connections),
        "--body-bytes",
        str(body_bytes),
        "--timeout",
        str(timeout),
        "--token",
        TOKEN,
        "--out",
        str(out),
    ]
    process = procs.python(name, "bench.loadgen", args, clean_env())

    async def finished() -> bool:
        return process.poll() is not None

    await wait_until(finished, duration + timeout + 30, f"load generator {name}", 0.2)
    if process.returncode != 0 or not out.exists():
        raise BenchError(f"load generator {name} failed; see {procs.log_of(process)}")
    data = json.loads(out.read_text())
    return Load(**data)


# -- databases -----------------------------------------------------------------------------


async def postgres_reason() -> str | None:
    """None when PostgreSQL answers at POSTGRES_ADMIN_URL, else why not."""
    import asyncpg

    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {exc}"
    await conn.close()
    return None


async def backends(requested: Sequence[str]) -> list[str]:
    """The requested backends that can run here (PostgreSQL is skipped with a warning)."""
    chosen = [b for b in requested if b in BACKENDS]
    if "postgresql" in chosen:
        reason = await postgres_reason()
        if reason:
            warn(f"skipping PostgreSQL: {reason}")
            chosen.remove("postgresql")
    return chosen


async def _admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@dataclass
class Database:
    """A scratch database: ``url`` is what DATABASE_URL gets; queries use the service's engine."""

    kind: str
    url: str
    _engine: Any = field(default=None, repr=False)

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from service.config import Settings, normalise_database_url
            from service.db import create_engine

            settings = Settings(database_url=normalise_database_url(self.url), db_pool_size=2)
            self._engine = create_engine(settings)
        return self._engine

    async def scalar(self, sql: str, **params: Any) -> Any:
        """One value, read as the service reads (on SQLite: without taking the write lock)."""
        from sqlalchemy import text

        from service.db import reading

        async with reading(self.engine) as conn:
            return await conn.scalar(text(sql), params)

    async def execute(self, sql: str, **params: Any) -> None:
        """A statement in a write transaction of its own."""
        from sqlalchemy import text

        from service.db import transaction

        async with transaction(self.engine) as conn:
            await conn.execute(text(sql), params)

    async def count(self, status: str | None = None) -> int:
        """Rows of the outbox, all or of one status."""
        if status is None:
            return int(await self.scalar("SELECT count(*) FROM outbox_events"))
        sql = "SELECT count(*) FROM outbox_events WHERE status = :status"
        return int(await self.scalar(sql, status=status))

    async def any_pending(self) -> bool:
        """Whether any outbox row is pending (stops at the first one found)."""
        sql = "SELECT 1 FROM outbox_events WHERE status = 'pending' LIMIT 1"
        return await self.scalar(sql) is not None

    async def status_counts(self) -> dict[str, int]:
        from sqlalchemy import text

        from service.db import reading

        sql = "SELECT status, count(*) FROM outbox_events GROUP BY status"
        async with reading(self.engine) as conn:
            rows = (await conn.execute(text(sql))).all()
        return {str(status): int(n) for status, n in rows}

    async def settled_count(self, timeout: float = 15.0) -> int:
        """The row count once it stops changing (commits of requests still in flight)."""
        last, stable_since = await self.count(), time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and time.monotonic() - stable_since < 1.0:
            await asyncio.sleep(0.2)
            now = await self.count()
            if now != last:
                last, stable_since = now, time.monotonic()
        return last

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


def _sqlite_file(directory: Path, tag: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"bench-{tag}.db"


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def fresh_database(kind: str, workdir: Path) -> AsyncIterator[Database]:
    """A new database migrated by ``service db upgrade``; removed afterwards."""
    from sqlalchemy.engine import make_url

    tag = uuid.uuid4().hex[:10]
    if kind == "sqlite":
        path = _sqlite_file(workdir, tag)
        database = Database(kind, f"sqlite:///{path}")
    else:
        name = f"bench_{tag}"
        await _admin(f'CREATE DATABASE "{name}"')
        url = make_url(POSTGRES_ADMIN_URL).set(database=name)
        database = Database(kind, url.render_as_string(hide_password=False))
    try:
        code, out, err = await run_command(
            [PYTHON, "-m", "service", "db", "upgrade"], 120, service_env(database.url)
        )
        if code != 0:
            raise BenchError(f"service db upgrade failed ({code}): {err or out}")
        yield database
    finally:
        await database.dispose()
        if kind == "sqlite":
            _remove_sqlite(path)
        else:
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- wrk -----------------------------------------------------------------------------------

WRK_SCRIPT = BENCH / "wrk_post.lua"
WRK_MARKER = "WRK_JSON "


async def ensure_wrk() -> str:
    """The path of wrk, installed with apt-get when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    warn("wrk is missing: installing it with apt-get")
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        code, _out, err = await run_command(argv, 300, env)
        if code != 0:
            raise BenchError(f"{' '.join(argv)} failed: {err.strip()[-500:]}")
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is still missing after apt-get install wrk")
    return found


@dataclass
class WrkResult:
    """One wrk run: throughput, latency and every answer's status as the Lua hooks counted."""

    requests: int
    duration_s: float
    sent: int
    statuses: dict[str, int]
    errors: dict[str, int]
    latency_ms: dict[str, float]

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("2"))

    @property
    def non_2xx(self) -> dict[str, int]:
        return {s: n for s, n in self.statuses.items() if not s.startswith("2")}

    @property
    def unanswered(self) -> int:
        """Requests written but never answered: in flight when wrk stopped, or errors."""
        return max(0, self.sent - self.requests)

    def summary(self) -> dict[str, Any]:
        return {
            "rps": round(self.rps, 1),
            "requests": self.requests,
            "sent": self.sent,
            "ok": self.ok,
            "non_2xx": self.non_2xx,
            "socket_errors": {k: v for k, v in self.errors.items() if v},
            "latency_ms": self.latency_ms,
        }


async def run_wrk(
    wrk: str,
    url: str,
    body: Path,
    *,
    threads: int,
    connections: int,
    duration: float,
    timeout: float = 10.0,
) -> WrkResult:
    """POST ``body`` to ``url`` with the bench token through ``bench/wrk_post.lua``."""
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        f"--timeout={timeout:g}s",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        TOKEN,
        str(body),
    ]
    code, out, err = await run_command(argv, duration + timeout + 30)
    line = next((ln for ln in out.splitlines() if ln.startswith(WRK_MARKER)), None)
    if code != 0 or line is None:
        raise BenchError(f"wrk failed ({code}): {err.strip() or out.strip()}")
    data = json.loads(line[len(WRK_MARKER) :])
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        sent=int(data["sent"]),
        statuses={str(k): int(v) for k, v in data["statuses"].items()},
        errors={k: int(v) for k, v in data["errors"].items()},
        latency_ms={k: round(v / 1000, 2) for k, v in data["latency_us"].items()},
    )


# -- output --------------------------------------------------------------------------------


def console() -> Any:
    from rich.console import Console

    # Wide enough for every table when the output is a file or a pipe (make, CI, tee).
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def warn(message: str) -> None:
    """One line on stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def say(message: str) -> None:
    """A progress line."""
    console().print(f"[dim]{dt.datetime.now():%H:%M:%S}[/dim] {message}")


def print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], labels: int = 1
) -> None:
    """A rich table on stdout: the first ``labels`` columns left-aligned, numbers right."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index < labels else "right")
    for row in rows:
        table.add_row(*row)
    console().print(table)


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


def _code_version() -> dict[str, str]:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "service").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {"git_head": head, "service_sources_sha256": digest.hexdigest()[:16]}


def write_results(name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``bench/results/NAME.json`` with the machine and code version alongside."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        "bench": name,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "code": _code_version(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    console().print(f"wrote {path.relative_to(ROOT)}")
    return path


# -- entry points --------------------------------------------------------------------------


def workdir(name: str) -> Path:
    """Scratch space of a bench (SQLite files, bodies) on the project's disk."""
    return RESULTS / "tmp" / name


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every bench has."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--db",
        default=",".join(BACKENDS),
        help="comma-separated backends to run (default: sqlite,postgresql)",
    )
    return p


def run_main(
    name: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    bench: Callable[[argparse.Namespace, Processes], Awaitable[int]],
) -> NoReturn:
    """Parse arguments and run ``bench``; SIGTERM and Ctrl-C stop it with its processes."""
    p = parser(description)
    add_arguments(p)
    args = p.parse_args()
    args.db = [b.strip() for b in args.db.split(",") if b.strip()]

    async def main() -> int:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with Processes(RESULTS / "logs" / name) as procs:
            try:
                return await bench(args, procs)
            finally:
                shutil.rmtree(workdir(name), ignore_errors=True)
                with contextlib.suppress(OSError):  # the last bench out tidies up
                    workdir(name).parent.rmdir()

    try:
        code = asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        warn(f"{name}: interrupted")
        code = 130
    except BenchError as exc:
        warn(f"{name}: {exc}")
        code = 1
    sys.exit(code)


def serve_app(app: Any, port: int) -> None:
    """Run a helper's aiohttp app the way ``service serve`` runs its own: on 127.0.0.1, no
    access log, no banner, a graceful stop on SIGTERM."""
    from aiohttp import web

    web.run_app(
        app,
        host=HOST,
        port=port,
        access_log=None,
        print=None,
        shutdown_timeout=10,
        handle_signals=True,
    )

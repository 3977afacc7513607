#!/usr/bin/env python3
"""bench/store_cost.py: what the store costs the database server per event, from the app's
``send_event`` to the purge, against the cheapest way to keep a row for a while.

One private PostgreSQL cluster, started here with ``pg_stat_statements`` (every statement
counted, those inside functions too). Each repeat uses a fresh database that holds the service's
schema, an app table and a floor table (a primary key and a 1 KB text, nothing else), and runs
``--events`` pgbench transactions of each shape:

- ``plain``: ``BEGIN; INSERT an app row; COMMIT``, the app's own cost;
- ``floor``: the same with an INSERT of the 1 KB row into the floor table, then one ``DELETE``
  of them all (the retention), then ``VACUUM``;
- ``send_event``: the same with ``SELECT send_event(...)`` of a 1 KB event, no relay running;
  then one ``service relay`` delivers them all to ``bench.receiver``, ``service outbox purge``
  removes them, and ``VACUUM`` runs;
- ``with relay``: ``send_event`` while the relay delivers, then the same purge and ``VACUUM``.

For each: the app's transactions/s, and from the server (every process of the cluster) its CPU
time, its WAL bytes and the statements it ran, each per event, with the app's own cost (the
``plain`` run's) taken off; and the tables' size after the retention. Goals, as ratios in the
same run: ``send_event`` >= 0.7x ``plain``, ``with relay`` >= 0.5x, WAL per event <= 3x the
floor's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cli import run_main
from bench.output import fmt, print_table, say, warn
from bench.processes import PYTHON, BenchError, Processes, run_command
from bench.results import workdir, write_results
from bench.servers import Receiver, service_env, start_receiver, start_watched_relay
from bench.stats import median

NAME = "store_cost"
DATA = '{"note": "' + "x" * 990 + '"}'  # with its name, id and ts, a 1 KB event
APP_ROW = "INSERT INTO app_rows (note) VALUES ('an order');"
SHAPES = {
    "plain": [APP_ROW],
    "floor": [APP_ROW, f"INSERT INTO floor_events (payload) VALUES ('{DATA}');"],
    "send_event": [APP_ROW, f"SELECT public.send_event('app/order.created', '{DATA}');"],
}
SETUP = (
    "CREATE TABLE app_rows (id bigserial PRIMARY KEY, note text NOT NULL)",
    "CREATE TABLE floor_events (id bigserial PRIMARY KEY, payload text NOT NULL)",
)
# The cluster's settings beyond the private cluster's own: statements counted everywhere, and
# WAL as a durable server writes it (full pages after a checkpoint, commits flushed).
CLUSTER_SETTINGS = (
    "shared_preload_libraries = 'pg_stat_statements'",
    "pg_stat_statements.track = all",
    "pg_stat_statements.max = 10000",
    "full_page_writes = on",
    "synchronous_commit = on",
    "fsync = on",
    "max_wal_size = '4GB'",
    "checkpoint_timeout = '1h'",
)
TPS = re.compile(r"tps = ([0-9.]+)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# (figure, against, at most or at least, goal)
GOALS = (
    ("tps", "send_event", "plain", ">=", 0.7),
    ("tps", "with relay", "plain", ">=", 0.5),
    ("wal", "send_event", "floor", "<=", 3.0),
    ("wal", "with relay", "floor", "<=", 3.0),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=int, default=50_000, help="transactions of each shape")
    p.add_argument("--clients", type=int, default=8, help="pgbench clients")
    p.add_argument("--repeats", type=int, default=3, help="runs of every shape (median)")
    p.add_argument("--timeout", type=float, default=300, help="seconds allowed for a drain")


@dataclass(frozen=True)
class Counters:
    """What the server had done by a moment: CPU seconds of all its processes (those gone
    included), WAL bytes written, statements run in the bench's database."""

    cpu_s: float
    wal: int
    statements: int

    def __sub__(self, other: Counters) -> Counters:
        return Counters(
            self.cpu_s - other.cpu_s, self.wal - other.wal, self.statements - other.statements
        )


class Server:
    """The bench's cluster: its superuser's connection for the counters, and its processes."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        pid_file = cluster.directory / "data" / "postmaster.pid"
        self.postmaster = int(pid_file.read_text().split()[0])

    def cpu_s(self) -> float:
        """CPU seconds of the postmaster, the children it reaped and those that still run."""
        ticks = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile: its time is the postmaster's reaped children's now
            pid, ppid = int(entry.name), int(fields[1])
            if pid == self.postmaster:
                ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            elif ppid == self.postmaster:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / CLOCK_TICKS

    async def statements(self, database: str) -> list[tuple[int, str]]:
        """The statements run in ``database`` since the last reset, most called first."""
        rows = await self.cluster.execute(
            "SELECT calls || ' ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 160)"
            " FROM pg_stat_statements"
            f" WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{database}')"
            " ORDER BY calls DESC LIMIT 12",
            database="postgres",
        )
        return [(int(str(r).split(" ", 1)[0]), str(r).split(" ", 1)[1]) for r in rows]

    async def counters(self, database: str) -> Counters:
        wal, statements = await self.cluster.execute(
            # Two rows of one column: what the cluster's ``execute`` answers.
            "SELECT unnest(ARRAY[pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,"
            " (SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements"
            f" WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{database}'))])",
            database="postgres",
        )
        return Counters(self.cpu_s(), int(wal), int(statements))


@contextlib.contextmanager
def running_server() -> Iterator[Server]:
    from tests.hosted_servers import missing_programs, running_cluster

    reason = missing_programs()
    if reason:
        raise BenchError(reason)
    with running_cluster(None, settings=CLUSTER_SETTINGS) as cluster:
        yield Server(cluster)


@dataclass
class Database:
    """A fresh database of the cluster, migrated, with the app's and the floor's tables."""

    server: Server
    name: str

    @property
    def url(self) -> str:
        return str(self.server.cluster.url(database=self.name, sslmode="disable"))

    async def execute(self, *statements: str) -> list[object]:
        values: list[object] = await self.server.cluster.execute(*statements, database=self.name)
        return values

    async def counters(self) -> Counters:
        return await self.server.counters(self.name)


@contextlib.asynccontextmanager
async def fresh_database(server: Server) -> AsyncIterator[Database]:
    from tests.hosted_servers import APP_USER

    name = f"cost_{uuid.uuid4().hex[:10]}"
    await server.cluster.execute(f'CREATE DATABASE "{name}" OWNER {APP_USER}', database="postgres")
    db = Database(server, name)
    try:
        code, out, err = await run_command(
            [PYTHON, "-m", "service", "db", "upgrade"], 120, service_env(db.url)
        )
        if code != 0:
            raise BenchError(f"service db upgrade failed ({code}): {err or out}")
        await db.execute(*SETUP)
        yield db
    finally:
        await server.cluster.execute(f'DROP DATABASE "{name}" WITH (FORCE)', database="postgres")


async def pgbench(db: Database, shape: str, args: argparse.Namespace) -> float:
    """Transactions/s of ``--events`` transactions of ``shape`` from ``--clients`` clients."""
    path = workdir(NAME) / f"{shape}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["BEGIN;", *SHAPES[shape], "COMMIT;"]) + "\n")
    cluster = db.server.cluster
    per_client = max(1, args.events // args.clients)
    argv = ["pgbench", "-n", "-h", str(cluster.directory), "-p", str(cluster.port)]
    argv += ["-U", "postgres", "-c", str(args.clients), "-j", "2", "-t", str(per_client)]
    code, out, err = await run_command([*argv, "-f", str(path), db.name], args.timeout)
    found = TPS.search(out)
    if code != 0 or found is None:
        raise BenchError(f"pgbench {shape} failed ({code}): {err or out}")
    return float(found.group(1))


async def delivered(receiver: Receiver, count: int, timeout: float) -> None:
    """Wait until the receiver has accepted ``count`` events in all."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (await receiver.stats())["events"] < count:
        if loop.time() > deadline:
            raise BenchError(f"the relay did not deliver {count} events in {timeout:.0f}s")
        await asyncio.sleep(0.1)


async def retention(db: Database) -> None:
    """What retention does to delivered events: ``service outbox purge``, then ``VACUUM``."""
    argv = [PYTHON, "-m", "service", "outbox", "purge", "--delivered-older-than", "0s"]
    code, out, err = await run_command(argv, 300, service_env(db.url))
    if code != 0:
        raise BenchError(f"service outbox purge failed ({code}): {err or out}")
    await db.execute("VACUUM outbox_events", "VACUUM outbox_intake")


async def outbox_size(db: Database) -> int:
    (size,) = await db.execute(
        "SELECT pg_total_relation_size('outbox_events') + pg_total_relation_size('outbox_intake')"
    )
    return int(str(size))


async def one_repeat(
    procs: Processes, server: Server, receiver: Receiver, args: argparse.Namespace
) -> dict[str, Any]:
    """Every shape once, on a database of its own."""
    results: dict[str, Any] = {}
    async with fresh_database(server) as db:
        seen = (await receiver.stats())["events"]

        async def relay_delivers() -> Any:
            return await start_watched_relay(procs, "relay", db.url, receiver.url)

        async def drain(relay: Any) -> None:
            nonlocal seen
            seen += args.events // args.clients * args.clients
            await delivered(receiver, seen, args.timeout)
            procs.stop(relay.process)
            await retention(db)

        async def plain() -> tuple[float, int]:
            return await pgbench(db, "plain", args), 0

        async def floor() -> tuple[float, int]:
            tps = await pgbench(db, "floor", args)
            (size,) = await db.execute(
                "DELETE FROM floor_events",
                "VACUUM floor_events",
                "SELECT pg_total_relation_size('floor_events')",
            )
            return tps, int(str(size))

        async def send_event() -> tuple[float, int]:
            tps = await pgbench(db, "send_event", args)
            await drain(await relay_delivers())
            return tps, await outbox_size(db)

        async def with_relay() -> tuple[float, int]:
            relay = await relay_delivers()
            tps = await pgbench(db, "send_event", args)
            await drain(relay)
            return tps, await outbox_size(db)

        for shape, run in (
            ("plain", plain),
            ("floor", floor),
            ("send_event", send_event),
            ("with relay", with_relay),
        ):
            await db.execute("CHECKPOINT")
            await server.cluster.execute("SELECT pg_stat_statements_reset()", database="postgres")
            before = await db.counters()
            tps, size = await run()
            results[shape] = measured(tps, await db.counters() - before, size)
            results[shape]["top"] = await server.statements(db.name)
    events = args.events // args.clients * args.clients
    plain_costs = results["plain"]
    for shape, figures in results.items():
        own = {k: figures[k] - (0 if shape == "plain" else plain_costs[k]) for k in COSTS}
        figures.update({f"{k}_per_event": v / events for k, v in own.items()})
    return results


COSTS = ("cpu_ms", "wal", "statements")


def measured(tps: float, spent: Counters, size: int) -> dict[str, float]:
    return {
        "tps": tps,
        "cpu_ms": spent.cpu_s * 1000,
        "wal": spent.wal,
        "statements": spent.statements,
        "size": size,
    }


def summarize(repeats: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """The median of every figure of every shape."""
    return {
        shape: {k: median(r[shape][k] for r in repeats) for k in repeats[0][shape] if k != "top"}
        for shape in repeats[0]
    }


def print_results(summary: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    plain, floor = summary["plain"], summary["floor"]
    rows = []
    for shape, figures in summary.items():
        rows.append(
            [
                shape,
                fmt(figures["tps"], 0),
                f"{figures['tps'] / plain['tps']:.3f}",
                "" if shape == "plain" else fmt(figures["cpu_ms_per_event"] * 1000, 0),
                "" if shape == "plain" else fmt(figures["wal_per_event"], 0),
                ""
                if shape == "plain"
                else f"{figures['wal_per_event'] / floor['wal_per_event']:.2f}",
                "" if shape == "plain" else fmt(figures["statements_per_event"], 2),
                "" if shape == "plain" else fmt(figures["size"] / 1024, 0),
            ]
        )
    print_table(
        f"store cost: {args.events:,} transactions per shape, {args.clients} pgbench clients,"
        f" median of {args.repeats}; per event, the app's own (plain) cost taken off",
        [
            "shape",
            "tps",
            "vs plain",
            "server CPU us",
            "WAL B",
            "vs floor",
            "statements",
            "KiB after",
        ],
        rows,
        labels=1,
    )


def goals_missed(summary: dict[str, dict[str, float]]) -> list[str]:
    missed = []
    for figure, shape, against, sense, goal in GOALS:
        key = "tps" if figure == "tps" else "wal_per_event"
        ratio = summary[shape][key] / summary[against][key]
        if (ratio < goal) if sense == ">=" else (ratio > goal):
            missed.append(f"{figure} {shape} / {against} = {ratio:.2f} (goal {sense} {goal:g})")
    return missed


async def bench(args: argparse.Namespace, procs: Processes) -> int:
    if "postgresql" not in args.db:
        warn(f"{NAME}: PostgreSQL only (--db postgresql)")
        return 0
    repeats = []
    with running_server() as server:
        await server.cluster.execute("CREATE EXTENSION pg_stat_statements", database="postgres")
        receiver = await start_receiver(procs, "receiver")
        for repeat in range(args.repeats):
            repeats.append(await one_repeat(procs, server, receiver, args))
            say(
                f"#{repeat + 1}: "
                + ", ".join(f"{s} {r['tps']:,.0f} tps" for s, r in repeats[-1].items())
            )
    summary = summarize(repeats)
    print_results(summary, args)
    write_results(NAME, {"settings": vars(args), "repeats": repeats, "median": summary})
    for miss in goals_missed(summary):
        warn(f"{NAME}: goal missed: {miss}")
    return 0


if __name__ == "__main__":
    run_main(NAME, __doc__ or NAME, add_arguments, bench)

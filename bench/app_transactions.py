#!/usr/bin/env python3
"""bench/app_transactions.py: what an event in the app's own transaction costs the app, against
the same transaction without it and against Graphile Worker's ``add_job``, and whether the relay
keeps up and stays prompt.

pgbench (PostgreSQL's own client) runs one transaction in three shapes, ``--clients`` at once,
on a fresh database that holds the service's schema, Graphile Worker's and an app table:
``BEGIN; INSERT an app row; COMMIT``, the same with ``SELECT send_event(...)`` before the commit,
and with ``SELECT graphile_worker.add_job(...)`` instead. Then ``send_event`` again while one
``service relay`` delivers to ``bench.receiver``: the pending rows are sampled during the load,
and the time from its end until every event arrived is measured; and at ``--low-rate``
transactions/s, the time from each event's ``ts`` (the database's clock at the send, just before
its commit) to its arrival.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cli import run_main
from bench.databases import Database, fresh_database
from bench.output import fmt, print_table, say, warn
from bench.processes import ROOT, BenchError, Processes, run_command
from bench.results import workdir, write_results
from bench.servers import start_receiver, start_relay, wait_arrivals
from bench.stats import median, summarize

NAME = "app_transactions"
GRAPHILE = ROOT / "bench" / "graphile"
APP_TABLE = "CREATE TABLE app_rows (id bigserial PRIMARY KEY, note text NOT NULL)"
DATA = '{"order": 42, "total": 12.5, "currency": "EUR"}'
APP_ROW = "INSERT INTO app_rows (note) VALUES ('an order');"
SHAPES = {
    "plain": [APP_ROW],
    "send_event": [APP_ROW, f"SELECT public.send_event('app/order.created', '{DATA}');"],
    "graphile": [APP_ROW, f"SELECT graphile_worker.add_job('order_created', '{DATA}');"],
}
# (shape, against, at least): send_event keeps 0.6x of the plain transaction, and twice
# Graphile Worker's add_job.
GOALS = (("send_event", "plain", 0.6), ("send_event", "graphile", 2.0))
TPS = re.compile(r"tps = ([0-9.]+)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=8, help="pgbench clients")
    p.add_argument("--duration", type=int, default=10, help="seconds per pgbench run")
    p.add_argument("--repeats", type=int, default=3, help="runs of each shape (median)")
    p.add_argument("--low-rate", type=int, default=100, help="transactions/s of the lag run")


def script(directory: Path, shape: str) -> Path:
    path = directory / f"{shape}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["BEGIN;", *SHAPES[shape], "COMMIT;"]) + "\n")
    return path


async def pgbench(db: Database, shape: str, args: argparse.Namespace, *extra: str) -> float:
    """Transactions/s of one pgbench run of ``shape``."""
    name = db.url.rsplit("/", 1)[1]
    argv = ["pgbench", "-n", "-h", "127.0.0.1", "-U", "postgres", "-c", str(args.clients)]
    argv += ["-j", "2", "-T", str(args.duration), "-f", str(script(workdir(NAME), shape))]
    code, out, err = await run_command([*argv, *extra, name], args.duration + 60)
    found = TPS.search(out)
    if code != 0 or found is None:
        raise BenchError(f"pgbench {shape} failed ({code}): {err or out}")
    return float(found.group(1))


async def prepare(db: Database) -> bool:
    """The app's table, and Graphile Worker's schema (False without node: no graphile row)."""
    await db.execute(APP_TABLE)
    url = db.url.replace("postgresql+asyncpg://", "postgresql://")
    cli = GRAPHILE / "node_modules" / ".bin" / "graphile-worker"
    if not cli.exists():
        warn(f"{cli.relative_to(ROOT)} is missing (make bench installs it): no Graphile Worker row")
        return False
    code, out, err = await run_command([str(cli), "--schema-only", "-c", url], 120)
    if code != 0:
        raise BenchError(f"graphile-worker --schema-only failed ({code}): {err or out}")
    return True


async def throughput(db: Database, shapes: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Each shape ``--repeats`` times, in turns (so that the machine's drift hits all alike)."""
    runs: dict[str, list[float]] = {shape: [] for shape in shapes}
    for repeat in range(args.repeats):
        for shape in shapes:
            runs[shape].append(await pgbench(db, shape, args))
            say(f"#{repeat + 1} {shape}: {runs[shape][-1]:,.0f} tps")
    return {shape: {"runs": tps, "median": median(tps)} for shape, tps in runs.items()}


async def delivery(procs: Processes, db: Database, args: argparse.Namespace) -> dict[str, Any]:
    """send_event under load with a relay delivering, then at a low rate for the lag."""
    receiver = await start_receiver(procs, "receiver", record=True)
    relay = start_relay(procs, "relay", db.url, receiver.url)
    try:
        pending: list[int] = []

        async def sample() -> None:
            while True:
                # Sent and not yet delivered: in the intake, or pending in the outbox.
                waiting = await db.scalar("SELECT count(*) FROM outbox_intake")
                pending.append(await db.count("pending") + int(waiting))
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        try:
            tps = await pgbench(db, "send_event", args)
        finally:
            sampler.cancel()
        ids = [str(i) for i in await _ids(db)]
        arrivals, drained_s = await wait_arrivals(receiver, ids, 120)
        missing = len(set(ids) - arrivals.keys())
        await db.execute("DELETE FROM outbox_events")
        low = await pgbench(db, "send_event", args, "-R", str(args.low_rate))
        low_ids = [str(i) for i in await _ids(db)]
        low_arrivals, _ = await wait_arrivals(receiver, low_ids, 60)
        lags = [low_arrivals[i][1] - low_arrivals[i][0] for i in low_ids if i in low_arrivals]
    finally:
        procs.stop(relay)
        procs.stop(receiver.process)
    return {
        "tps_with_relay": tps,
        "events": len(ids),
        "pending_max": max(pending, default=0),
        "drained_after_load_s": round(drained_s, 2),
        "missing": missing + len(set(low_ids) - low_arrivals.keys()),
        "low_rate_tps": low,
        "lag_ms": summarize(lags),
    }


async def _ids(db: Database) -> list[Any]:
    """The ids of every event sent: moved into the outbox, or still in the intake."""
    rows = await db.scalar(
        "SELECT coalesce(array_agg(id), '{}') FROM"
        " (SELECT id FROM outbox_events UNION SELECT id FROM outbox_intake) AS sent"
    )
    return list(rows or [])


def print_results(result: dict[str, Any], args: argparse.Namespace) -> None:
    shapes = result["throughput"]
    plain = shapes["plain"]["median"]
    rows = []
    for shape, label in (
        ("plain", "BEGIN; INSERT app row; COMMIT"),
        ("send_event", "... + SELECT send_event(...)"),
        ("graphile", "... + SELECT graphile_worker.add_job(...)"),
    ):
        if shape in shapes:
            tps = shapes[shape]["median"]
            runs = ", ".join(f"{t:,.0f}" for t in shapes[shape]["runs"])
            rows.append([label, fmt(tps, 0), f"{tps / plain:.3f}", runs])
    print_table(
        f"app transactions: pgbench, {args.clients} clients, {args.duration}s, median of "
        f"{args.repeats}",
        ["transaction", "tps", "vs plain", "runs"],
        rows,
        labels=1,
    )
    d = result["delivery"]
    print_table(
        "delivery: send_event under pgbench with one `service relay` delivering",
        [
            "tps",
            "events",
            "pending max",
            "all delivered s after load",
            "missing",
            f"lag p50 ms at {args.low_rate}/s",
            "lag p99 ms",
        ],
        [
            [
                fmt(d["tps_with_relay"], 0),
                fmt(d["events"]),
                fmt(d["pending_max"]),
                fmt(d["drained_after_load_s"], 2),
                fmt(d["missing"]),
                fmt(d["lag_ms"]["p50"], 1),
                fmt(d["lag_ms"]["p99"], 1),
            ]
        ],
        labels=0,
    )


def goals_missed(result: dict[str, Any]) -> list[str]:
    shapes, missed = result["throughput"], []
    for shape, against, ratio in GOALS:
        if shape in shapes and against in shapes:
            got = shapes[shape]["median"] / shapes[against]["median"]
            if got < ratio:
                missed.append(f"{shape} / {against} = {got:.2f} (goal {ratio:g})")
    d = result["delivery"]
    if d["drained_after_load_s"] > 2.0:
        missed.append(f"delivered {d['drained_after_load_s']:.1f}s after the load (goal 2s)")
    if d["lag_ms"]["p99"] > 50:
        missed.append(f"lag p99 {d['lag_ms']['p99']:.0f} ms at the low rate (goal 50)")
    return missed


async def bench(args: argparse.Namespace, procs: Processes) -> int:
    if "postgresql" not in args.db:
        warn("app_transactions: PostgreSQL only (--db postgresql)")
        return 0
    async with fresh_database("postgresql", workdir(NAME)) as db:
        graphile = await prepare(db)
        shapes = ["plain", "send_event", *(["graphile"] if graphile else [])]
        result = {"throughput": await throughput(db, shapes, args)}
        await db.execute("DELETE FROM outbox_intake")  # no relay ran: the events wait there
        await db.execute("DELETE FROM outbox_events")
        result["delivery"] = await delivery(procs, db, args)
    print_results(result, args)
    write_results(NAME, {"settings": vars(args), **result})
    for miss in goals_missed(result):
        warn(f"app_transactions: goal missed: {miss}")
    return 1 if result["delivery"]["missing"] else 0


if __name__ == "__main__":
    run_main(NAME, __doc__ or NAME, add_arguments, bench)

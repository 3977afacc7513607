#!/usr/bin/env python3
"""bench/id_runs.py: what sending each event under the Inngest id the service answered costs
the relay.

For each backend: ``service serve --no-relay`` takes ``--events`` ``POST /api`` requests from
``--connections`` concurrent clients, so the group commits make runs of Inngest ids as they
do under load. The runs' lengths are read back from the outbox. Then the same rows are drained
by one ``service relay`` three ways, each ``--repeats`` times, in turns, every row reset to
pending (and, on PostgreSQL, vacuumed) before each drain:

- ``before``: the rows without Inngest ids (``inngest_id`` NULL), which the relay sends as it
  did before it knew them: no seed, as many events per request as the batch limits allow;
- ``runs``: the rows as written, each request a stretch of one run, under its seed;
- ``traced``: the runs again, each event with a trace context of its own (every caller in a
  trace of its own), so that no two events may share a request.

Reported: events/s (medians), the ratio of ``runs`` and ``traced`` to ``before`` (goal: runs
>= 0.8), requests per event as the receiver counted them, 1 / the median run length, and the
fewest requests the runs can go in (each run in ceil(length / RELAY_BATCH_SIZE) requests: a
request holds one run at most, and at most a batch). Goal: runs' requests per event at most
1 / the median run length, which can hold only while the runs are shorter than a batch; longer
runs are held to the fewest requests instead (2% over it at most).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench.cli import run_main
from bench.databases import Database, backends, fresh_database
from bench.output import fmt, print_table, say, warn
from bench.processes import Processes
from bench.relay import drain
from bench.results import workdir, write_results
from bench.servers import bearer, start_receiver, start_service
from bench.stats import median

NAME = "id_runs"
WAYS = ("before", "runs", "traced")
GOAL_DRAIN_RATIO = 0.8
BATCH_SIZE = 500  # the relay's RELAY_BATCH_SIZE, as it runs here (its default)
# Every row back to pending, with the Inngest ids and trace contexts of one of the ways. The
# service's own events have their Inngest id as their id.
RESET = (
    "UPDATE outbox_events SET status = 'pending', attempts = 0, next_attempt_at = created_at,"
    " completed_at = NULL, locked_by = NULL, locked_until = NULL, first_failed_at = NULL,"
    " last_error = NULL, inngest_id = {inngest_id}, traceparent = {traceparent}"
)
TRACEPARENT = {
    "sqlite": "'00-' || printf('%032x', seq) || '-' || printf('%016x', seq) || '-01'",
    "postgresql": "'00-' || lpad(to_hex(seq), 32, '0') || '-' || lpad(to_hex(seq), 16, '0')"
    " || '-01'",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=int, default=20_000, help="POST /api requests to take")
    p.add_argument("--connections", type=int, default=64, help="concurrent POST /api clients")
    p.add_argument("--repeats", type=int, default=3, help="drains of each way")
    p.add_argument("--timeout", type=float, help="seconds allowed for a drain")
    p.add_argument("--interval", type=float, default=0.1, help="seconds between samples")


async def take_posts(url: str, count: int, connections: int) -> None:
    """``count`` POST /api requests from ``connections`` clients at once."""
    name, value = bearer()
    left = count
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(f"{url}/api", headers={name: value}) as response:
                    if response.status != 200:
                        raise RuntimeError(f"POST /api: {response.status}")

        await asyncio.gather(*(client() for _ in range(connections)))


async def run_lengths(db: Database) -> list[int]:
    """The lengths of the runs of Inngest ids the outbox holds, in the order written."""
    from sqlalchemy import text

    from service.events.inngest_ids import follows, ulid_parts
    from service.store.engine import reading

    async with reading(db.engine) as conn:
        ids = (await conn.execute(text("SELECT inngest_id FROM outbox_events ORDER BY seq"))).all()
    lengths: list[int] = []
    previous = None
    for (inngest_id,) in ids:
        parts = ulid_parts(inngest_id)
        if previous is not None and parts is not None and follows(previous, parts):
            lengths[-1] += 1
        else:
            lengths.append(1)
        previous = parts
    return lengths


async def reset(db: Database, way: str) -> None:
    """Every row pending again, with the ids and trace contexts of ``way``."""
    inngest_id = "NULL" if way == "before" else "id"
    traceparent = TRACEPARENT[db.kind] if way == "traced" else "NULL"
    await db.execute(RESET.format(inngest_id=inngest_id, traceparent=traceparent))
    await db.settle()


async def run_backend(procs: Processes, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    async with fresh_database(kind, workdir(NAME)) as db:
        say(f"{kind}: {args.events:,} POST /api from {args.connections} clients")
        server = await start_service(procs, f"service-{kind}", db.url, relay=False)
        try:
            await take_posts(server.url, args.events, args.connections)
        finally:
            procs.stop(server.process)
        events = await db.count()
        lengths = sorted(await run_lengths(db))
        drains: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
        for repeat in range(args.repeats):
            for way in WAYS:
                await reset(db, way)
                receiver = await start_receiver(procs, f"receiver-{kind}-{way}-{repeat}")
                try:
                    say(f"{kind}: drain {repeat + 1}/{args.repeats}, {way}")
                    result = await drain(procs, db, receiver, events, args)
                    requests = (await receiver.stats())["requests"]
                finally:
                    procs.stop(receiver.process)
                drains[way].append(
                    {
                        "events_per_s": result["events_per_s"],
                        "requests_per_event": requests / events,
                        "log": result["log"],
                    }
                )
        statuses = await db.status_counts()
    figures = {
        way: {
            "events_per_s": median([d["events_per_s"] or 0 for d in runs]),
            "requests_per_event": median([d["requests_per_event"] for d in runs]),
        }
        for way, runs in drains.items()
    }
    before = figures["before"]["events_per_s"] or 1
    return {
        "db": kind,
        "events": events,
        "runs": len(lengths),
        "median_run_length": median(lengths),
        "longest_run": lengths[-1] if lengths else 0,
        "fewest_requests_per_event": sum(-(-n // BATCH_SIZE) for n in lengths) / events,
        "figures": figures,
        "runs_ratio": round(figures["runs"]["events_per_s"] / before, 3),
        "traced_ratio": round(figures["traced"]["events_per_s"] / before, 3),
        "not_delivered": events - statuses.get("delivered", 0),
        "drains": drains,
    }


def print_results(results: list[dict[str, Any]]) -> None:
    rows = []
    for r in results:
        f = r["figures"]
        rows.append(
            [
                r["db"],
                f"{r['events']:,}",
                fmt(r["median_run_length"], 1),
                fmt(f["before"]["events_per_s"], 0),
                fmt(f["runs"]["events_per_s"], 0),
                fmt(r["runs_ratio"], 3),
                fmt(f["traced"]["events_per_s"], 0),
                fmt(r["traced_ratio"], 3),
                f"{f['before']['requests_per_event']:.4f}",
                f"{f['runs']['requests_per_event']:.4f}",
                f"{1 / r['median_run_length']:.4f}",
                f"{r['fewest_requests_per_event']:.4f}",
                f"{f['traced']['requests_per_event']:.3f}",
            ]
        )
    print_table(
        "Inngest ids: a drain by one service relay, medians (ratios to before, same run)",
        [
            "db",
            "events",
            "median run",
            "before ev/s",
            "runs ev/s",
            "runs/before",
            "traced ev/s",
            "traced/before",
            "before req/ev",
            "runs req/ev",
            "1/median run",
            "fewest req/ev",
            "traced req/ev",
        ],
        rows,
    )


def requests_goal(result: dict[str, Any]) -> float:
    """The most requests per event the runs may cost: 1 / the median run length, or where the
    runs are longer than a batch, 2% over the fewest they can go in."""
    fewest = float(result["fewest_requests_per_event"])
    return max(1 / float(result["median_run_length"]), 1.02 * fewest)


async def bench(args: argparse.Namespace, procs: Processes) -> int:
    results = [await run_backend(procs, kind, args) for kind in await backends(args.db)]
    print_results(results)
    write_results(NAME, {"settings": vars(args), "results": results})
    for r in results:
        if r["runs_ratio"] < GOAL_DRAIN_RATIO:
            warn(f"{r['db']}: runs drain at {r['runs_ratio']} of before (goal {GOAL_DRAIN_RATIO})")
        if r["figures"]["runs"]["requests_per_event"] > requests_goal(r):
            warn(f"{r['db']}: more requests per event than {requests_goal(r):.4f}")
    lost = [r["db"] for r in results if r["not_delivered"]]
    if lost:
        warn(f"id_runs: events not delivered on {lost}")
    return 1 if lost else 0


if __name__ == "__main__":
    run_main(NAME, __doc__ or NAME, add_arguments, bench)

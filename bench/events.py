#!/usr/bin/env python3
"""bench/events.py: ``POST /e/{key}``, Inngest's Event API served by the service, as an app's
SDK calls it: every request a send of its own (a seed of its own), answered once committed.

Two tables. One event per request, in bench/ingest.py's setup (wrk, threads x connections, a
~1 KB event): requests/s against the bare aiohttp handler (``bench.bare``), the service on
SQLite (``SQLITE_SYNCHRONOUS=FULL``) and on PostgreSQL. Then ``--batch`` events per request
(100 by default, ~256 B each): events/s on each backend. After every service run the outbox
must hold exactly the events of the 200s wrk counted, give or take the requests still in
flight when wrk stopped: fewer rows is a lost event and fails the bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench.cli import add_wrk_arguments, run_main
from bench.databases import backends, fresh_database
from bench.ingest import check_rows, run_wrk_on, summarize
from bench.load import WrkResult, ensure_wrk
from bench.output import fmt, print_table, say, statuses_cell, warn
from bench.payloads import sample_document
from bench.processes import BenchError, Processes, clean_env, log_problems
from bench.results import workdir, write_results
from bench.servers import Server, start_http, start_service
from bench.stats import median

NAME = "events"
APP_KEY = "bench-app-event-key"
WARM_UP_REQUESTS = 50
# The goals of many events per request, in events/s (one event per request: 0.5 of bare).
BATCH_GOALS = {"sqlite": 30_000, "postgresql": 20_000}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_wrk_arguments(p)
    p.add_argument("--event-bytes", type=int, default=1024, help="size of the lone event")
    p.add_argument("--batch", type=int, default=100, help="events per request, second table")
    p.add_argument("--batch-event-bytes", type=int, default=256, help="size of each of those")


def write_events(count: int, size: int, directory: Path) -> Path:
    """A JSON array of ``count`` events of about ``size`` bytes each, as an SDK sends them."""
    events = [
        {"name": "bench/order.paid", "data": sample_document(size - 60), "ts": 1_800_000_000_000}
        for _ in range(count)
    ]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"events-{count}x{size}.json"
    path.write_text(json.dumps(events, separators=(",", ":")))
    return path


async def warm_up(url: str, body: bytes) -> None:
    """A few sends, which must all be 200s: the target is up and takes the key."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for _ in range(WARM_UP_REQUESTS):
            async with session.post(url, data=body) as response:
                if response.status != 200:
                    raise BenchError(f"POST {url}: {response.status} {await response.text()}")


async def load(wrk: str, server: Server, body: Path, args: argparse.Namespace) -> WrkResult:
    """ingest's wrk command on the Event API: a seed per request, as the SDKs send."""
    return await run_wrk_on(wrk, server, body, args, f"/e/{APP_KEY}", seeded=True)


async def run_target(
    procs: Processes,
    wrk: str,
    args: argparse.Namespace,
    plan: tuple[str, Path, int],
    target: str,
    repeat: int,
) -> dict[str, Any]:
    """One wrk run of ``plan`` (its name, body and events per request) against ``target``."""
    run, body, per_request = plan
    if target == "bare":
        server = await start_http(procs, f"bare-{run}-r{repeat}", "bench.bare", [], clean_env())
        try:
            await warm_up(f"{server.url}/e/{APP_KEY}", await asyncio.to_thread(body.read_bytes))
            result = await load(wrk, server, body, args)
        finally:
            procs.stop(server.process)
        return {"target": target, "repeat": repeat, **result.summary(), "check": "n/a"}
    async with fresh_database(target, workdir(NAME)) as db:
        server = await start_service(
            procs,
            f"service-{target}-{run}-r{repeat}",
            db.url,
            relay=False,
            SQLITE_SYNCHRONOUS="FULL",
            EVENT_API_KEYS=APP_KEY,
        )
        try:
            await warm_up(f"{server.url}/e/{APP_KEY}", await asyncio.to_thread(body.read_bytes))
            before = await db.count()
            result = await load(wrk, server, body, args)
            rows = await db.settled_count() - before
        finally:
            procs.stop(server.process)
    return {
        "target": target,
        "repeat": repeat,
        **result.summary(),
        "events_per_s": round(result.ok * per_request / result.duration_s, 1),
        **check_rows(result, rows, per_request),
        "log": log_problems(server.log),
    }


def print_tables(single: list[dict[str, Any]], batch: list[dict[str, Any]], args: Any) -> None:
    label = {"bare": "bare aiohttp", "sqlite": "service, SQLite FULL", "postgresql": "service, PG"}
    print_table(
        f"events: POST /e/{{key}}, 1 event (~{args.event_bytes} B) per request, wrk "
        f"{args.threads}x{args.connections}, {args.duration:g}s, median of {args.repeats}",
        ["target", "req/s", "p50 ms", "p99 ms", "vs bare", "non-2xx", "rows"],
        [
            [
                label[s["target"]],
                fmt(s["rps"], 0),
                fmt(s["p50_ms"], 2),
                fmt(s["p99_ms"], 2),
                fmt(s["ratio_to_bare"], 3),
                statuses_cell(s["non_2xx"]),
                ", ".join(s["checks"]),
            ]
            for s in single
        ],
    )
    print_table(
        f"events: POST /e/{{key}}, {args.batch} events (~{args.batch_event_bytes} B) per "
        f"request, same wrk, median of {args.repeats}",
        ["target", "req/s", "events/s", "goal", "p99 ms", "non-2xx", "rows"],
        [
            [
                label[s["target"]],
                fmt(s["rps"], 0),
                fmt(s["events_per_s"], 0),
                fmt(BATCH_GOALS.get(s["target"]), 0),
                fmt(s["p99_ms"], 2),
                statuses_cell(s["non_2xx"]),
                ", ".join(s["checks"]),
            ]
            for s in batch
        ],
    )


async def bench(args: argparse.Namespace, procs: Processes) -> int:
    wrk = await ensure_wrk()
    kinds = await backends(args.db)
    single_body = write_events(1, args.event_bytes, workdir(NAME))
    batch_body = write_events(args.batch, args.batch_event_bytes, workdir(NAME))
    runs: dict[str, list[dict[str, Any]]] = {"single": [], "batch": []}
    plans = [
        (("single", single_body, 1), ["bare", *kinds]),
        (("batch", batch_body, args.batch), kinds),
    ]
    for repeat in range(1, args.repeats + 1):
        for plan, targets in plans:
            run = plan[0]
            for target in targets:
                result = await run_target(procs, wrk, args, plan, target, repeat)
                runs[run].append(result)
                say(
                    f"{run} {target} #{repeat}: {result['rps']:,.0f} req/s, "
                    f"{result.get('events_per_s', 0):,.0f} events/s, p99 "
                    f"{result['latency_ms']['p99']} ms, non-2xx {result['non_2xx'] or 0}, "
                    f"rows {result['check']}"
                )
    single = summarize(runs["single"], ["bare", *kinds])
    batch = summarize(runs["batch"], kinds)
    for row in batch:
        mine = [r for r in runs["batch"] if r["target"] == row["target"]]
        row["events_per_s"] = median(r["events_per_s"] for r in mine)
    print_tables(single, batch, args)
    write_results(
        NAME,
        {"settings": vars(args) | {"procs": None}, "single": single, "batch": batch, "runs": runs},
    )
    service = [s for s in [*single, *batch] if s["target"] != "bare"]
    if failed := [s["target"] for s in service if s["checks"] != ["ok"] or s["non_2xx"]]:
        warn(f"events: lost events, extra rows or non-2xx answers: {sorted(set(failed))}")
    return 1 if any(s["lost"] for s in service) else 0


if __name__ == "__main__":
    run_main(NAME, __doc__ or NAME, add_arguments, bench)

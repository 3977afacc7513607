#!/usr/bin/env python3
"""bench/inline.py: the seed's design (call Inngest inline, ``bench.inline_app``) against this
service (outbox + in-process relay) when Inngest is (1) slow and (2) down.

slow: the receiver takes ``--slow-ms`` per request. down: nothing listens on its port while
the load runs; for the service the receiver then comes back healthy and the bench waits for
the relay to deliver everything. Both designs get the same open-loop load; the bench reports
latency and how many events each loses: failed answers, events that never reached the
receiver, and events acknowledged with 200 that never reached it (the outbox's promise).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cli import run_main
from bench.databases import Database, backends, fresh_database
from bench.load import run_load
from bench.output import fmt, print_table, say, warn
from bench.payloads import compact, sample_document
from bench.processes import HOST, BenchError, Processes, clean_env, free_port, log_problems
from bench.results import workdir, write_results
from bench.servers import (
    EVENT_KEY,
    Receiver,
    Server,
    post_api,
    start_http,
    start_receiver,
    start_service,
    wait_arrivals,
)

NAME = "inline"
INLINE, OUTBOX = "inline (seed)", "service (outbox)"
SLOW, DOWN = "slow", "down"
WARM_UP_REQUESTS = 10


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.set_defaults(db="sqlite")
    p.add_argument("--rate", type=float, default=200, help="requests per second")
    p.add_argument("--duration", type=float, default=5, help="seconds of load per case")
    p.add_argument("--slow-ms", type=float, default=100, help="receiver time per request")
    p.add_argument("--connections", type=int, default=256, help="client connections")
    p.add_argument("--body-bytes", type=int, default=1024, help="size of the JSON body")
    p.add_argument(
        "--recovery-timeout", type=float, default=90, help="seconds to wait for the relay"
    )


async def start_design(
    procs: Processes, design: str, tag: str, origin: str, db: Database | None
) -> Server:
    """The inline app or ``service serve`` (with its relay), sending to ``origin``."""
    if db is None:
        args = ["--inngest", origin, "--key", EVENT_KEY]
        return await start_http(procs, f"app-{tag}", "bench.inline_app", args, clean_env())
    return await start_service(procs, f"app-{tag}", db.url, relay=True, inngest_origin=origin)


async def run_case(
    procs: Processes, design: str, phase: str, kind: str, args: argparse.Namespace
) -> dict[str, Any]:
    tag = f"{'inline' if design == INLINE else 'service'}-{phase}"
    port = free_port()
    origin = f"http://{HOST}:{port}"
    body = compact(sample_document(args.body_bytes)).encode()
    receiver: Receiver | None = None
    app: Server | None = None
    async with contextlib.AsyncExitStack() as stack:
        db = None
        if design == OUTBOX:
            db = await stack.enter_async_context(fresh_database(kind, workdir(NAME)))
        try:
            if phase == SLOW:
                receiver = await start_receiver(
                    procs, f"receiver-{tag}", port=port, delay_ms=args.slow_ms, record=True
                )
            app = await start_design(procs, design, tag, origin, db)
            warm = []
            if receiver is not None:
                warm = await post_api(f"{app.url}/api", WARM_UP_REQUESTS, body)
            say(f"{design}, Inngest {phase}: {args.rate:g} req/s for {args.duration:g}s")
            load = await run_load(
                procs,
                f"load-{tag}",
                f"{app.url}/api",
                rate=args.rate,
                duration=args.duration,
                connections=args.connections,
                body_bytes=args.body_bytes,
            )
            if receiver is None and db is not None:
                say("service: the receiver is back; waiting for the relay")
                receiver = await start_receiver(
                    procs, f"receiver-{tag}-back", port=port, record=True
                )
            arrivals: dict[str, Any] = {}
            waited = 0.0
            if receiver is not None:
                timeout = args.recovery_timeout if db is not None else 10
                arrivals, waited = await wait_arrivals(receiver, load.ids, timeout)
            outbox = await db.status_counts() if db is not None else None
        finally:
            for server in (app, receiver):
                if server is not None:
                    procs.stop(server.process)
    received = arrivals.keys() - set(warm)
    return {
        "design": design,
        "phase": phase,
        "db": kind if db is not None else None,
        "load": load.summary(),
        "received": len(received),
        "never_received": max(0, load.requests - len(received)),
        "acked_but_lost": len(set(load.ids) - arrivals.keys()),
        "waited_after_load_s": round(waited, 2) if db is not None else None,
        "outbox_statuses": outbox,
        "log": log_problems(app.log) if app is not None else None,
    }


def print_results(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print_table(
        f"inline: {args.rate:g} req/s for {args.duration:g}s per case; slow = receiver takes "
        f"{args.slow_ms:g} ms, down = port closed (then back, for the service)",
        [
            "design",
            "Inngest",
            "requests",
            "2xx",
            "failed",
            "p50 ms",
            "p99 ms",
            "received",
            "never received",
            "acked but lost",
            "waited after load s",
        ],
        [
            [
                r["design"],
                r["phase"],
                fmt(r["load"]["requests"]),
                fmt(r["load"]["ok"]),
                fmt(r["load"]["failed"]),
                fmt(r["load"]["latency_ms"]["p50"], 1),
                fmt(r["load"]["latency_ms"]["p99"], 1),
                fmt(r["received"]),
                fmt(r["never_received"]),
                fmt(r["acked_but_lost"]),
                fmt(r["waited_after_load_s"], 1),
            ]
            for r in results
        ],
        labels=2,
    )


async def bench(args: argparse.Namespace, procs: Processes) -> int:
    kinds = await backends(args.db)
    if not kinds:
        raise BenchError("no usable backend for the service")
    results = [
        await run_case(procs, design, phase, kinds[0], args)
        for phase in (SLOW, DOWN)
        for design in (INLINE, OUTBOX)
    ]
    print_results(results, args)
    write_results(NAME, {"settings": vars(args), "results": results})
    lost = [r["phase"] for r in results if r["design"] == OUTBOX and r["acked_but_lost"]]
    if lost:
        warn(f"inline: the service lost acknowledged events (Inngest {lost})")
    return 1 if lost else 0


if __name__ == "__main__":
    run_main(NAME, __doc__ or NAME, add_arguments, bench)

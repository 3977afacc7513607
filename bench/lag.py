#!/usr/bin/env python3
"""bench/lag.py: delivery lag at a fixed request rate: from the moment the API accepted an
event (its ``ts``) to its arrival at the receiver standing in for Inngest.

An open-loop generator (``bench.loadgen``) sends ``--rate`` requests/s for ``--duration`` s
to (a) ``service serve`` with its in-process relay, on each backend, and (b) ``service serve
--no-relay`` plus a separate ``service relay`` on PostgreSQL (woken by LISTEN/NOTIFY). The
receiver stamps every event's arrival; lag = arrival - ts for every acknowledged event.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cli import run_main
from bench.databases import backends, fresh_database
from bench.load import run_load
from bench.output import fmt, print_table, say, warn
from bench.payloads import compact, sample_document
from bench.processes import BenchError, Processes, log_problems
from bench.results import workdir, write_results
from bench.servers import post_api, start_receiver, start_relay, start_service, wait_arrivals
from bench.stats import summarize

NAME = "lag"
IN_PROCESS, SEPARATE = "serve + in-process relay", "serve --no-relay + service relay"
WARM_UP_REQUESTS = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=float, default=1000, help="requests per second")
    p.add_argument("--duration", type=float, default=10, help="seconds of load")
    p.add_argument("--connections", type=int, default=256, help="client connections")
    p.add_argument("--body-bytes", type=int, default=1024, help="size of the JSON body")
    p.add_argument("--drain-timeout", type=float, default=60, help="seconds to wait for events")


def configurations(kinds: list[str]) -> list[tuple[str, str]]:
    """(mode, backend) pairs: the in-process relay on each backend, the separate relay on PG."""
    pairs = [(IN_PROCESS, kind) for kind in kinds]
    if "postgresql" in kinds:
        pairs.append((SEPARATE, "postgresql"))
    return pairs


async def run_configuration(
    procs: Processes, mode: str, kind: str, args: argparse.Namespace
) -> dict[str, Any]:
    tag = f"{kind}-{'separate' if mode == SEPARATE else 'inprocess'}"
    body = compact(sample_document(args.body_bytes)).encode()
    async with fresh_database(kind, workdir(NAME)) as db:
        receiver = await start_receiver(procs, f"receiver-{tag}", record=True)
        server = relay = None
        try:
            server = await start_service(
                procs,
                f"service-{tag}",
                db.url,
                relay=mode == IN_PROCESS,
                inngest_origin=receiver.url,
            )
            if mode == SEPARATE:
                relay = start_relay(procs, f"relay-{tag}", db.url, receiver.url)
            # Through the whole pipeline before measuring: the relay is up and delivering.
            warm = await post_api(f"{server.url}/api", WARM_UP_REQUESTS, body)
            _arrived, waited = await wait_arrivals(receiver, warm, 30)
            if waited >= 30:
                raise BenchError(f"{tag}: warm-up events not delivered in 30s")
            say(f"{mode} on {kind}: {args.rate:g} req/s for {args.duration:g}s")
            load = await run_load(
                procs,
                f"load-{tag}",
                f"{server.url}/api",
                rate=args.rate,
                duration=args.duration,
                connections=args.connections,
                body_bytes=args.body_bytes,
            )
            arrivals, waited = await wait_arrivals(receiver, load.ids, args.drain_timeout)
        finally:
            if relay is not None:
                procs.stop(relay)
            if server is not None:
                procs.stop(server.process)
            procs.stop(receiver.process)
        logs = [server.log] + ([procs.log_of(relay)] if relay else [])
    lags = [arrivals[i][1] - arrivals[i][0] for i in load.ids if i in arrivals]
    return {
        "mode": mode,
        "db": kind,
        "load": load.summary(),
        "lag_ms": summarize(lags),
        "acked": load.ok,
        "missing": len(set(load.ids) - arrivals.keys()),
        "waited_after_load_s": round(waited, 2),
        "log": [log_problems(log) for log in logs],
    }


def print_results(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print_table(
        f"lag: {args.rate:g} req/s for {args.duration:g}s (open loop), ts -> arrival at the "
        "receiver",
        [
            "setup",
            "db",
            "req/s",
            "API p50 ms",
            "API p99 ms",
            "lag p50 ms",
            "lag p99 ms",
            "lag max ms",
            "non-2xx",
            "missing",
        ],
        [
            [
                r["mode"],
                r["db"],
                fmt(r["load"]["achieved_rps"], 0),
                fmt(r["load"]["latency_ms"]["p50"], 1),
                fmt(r["load"]["latency_ms"]["p99"], 1),
                fmt(r["lag_ms"]["p50"], 1),
                fmt(r["lag_ms"]["p99"], 1),
                fmt(r["lag_ms"]["max"], 1),
                fmt(r["load"]["failed"]),
                fmt(r["missing"]),
            ]
            for r in results
        ],
        labels=2,
    )


async def bench(args: argparse.Namespace, procs: Processes) -> int:
    kinds = await backends(args.db)
    results = [
        await run_configuration(procs, mode, kind, args) for mode, kind in configurations(kinds)
    ]
    print_results(results, args)
    write_results(NAME, {"settings": vars(args), "results": results})
    lost = [f"{r['mode']} on {r['db']}" for r in results if r["missing"]]
    if lost:
        warn(f"lag: acknowledged events never arrived: {lost}")
    return 1 if lost else 0


if __name__ == "__main__":
    run_main(NAME, __doc__ or NAME, add_arguments, bench)

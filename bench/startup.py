#!/usr/bin/env python3
"""bench/startup.py: how fast the command line answers, and what memory the long-running
processes hold.

The command line: ``service --help`` and ``service outbox stats --help``, then, for each
backend, ``service outbox stats`` and ``service outbox list`` on an outbox of ``--rows``
pending events (filled as ``bench/relay.py`` fills it, then vacuumed on PostgreSQL as its
autovacuum would soon after): wall time from start to exit and CPU time (user + system, which
other work on the machine inflates far less), medians of ``--repeats`` runs. The interpreter's
own start (``python -c pass``), measured in the same run, is the floor every command stands on.

Memory: ``service relay`` drains a backlog of ``--drain-rows`` events to ``bench.receiver``
(``bench/relay.py``'s drain: VmRSS at start, end and peak); then ``service serve``, with its
in-process relay, is sampled once it answers and again after ``--requests`` events went through
it to the receiver (on SQLite the server's own process; its writer process is apart). What each
of the two is made of at start, the interpreter and each package it imported, is measured by
``bench/footprint.py`` from the modules a process of each loaded.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cli import run_main
from bench.databases import Database, backends, fresh_database
from bench.memory import rss_kib
from bench.output import fmt, print_table, say, warn
from bench.payloads import compact, sample_document
from bench.processes import PYTHON, BenchError, Processes, clean_env, free_port, run_command
from bench.relay import drain, fill
from bench.results import workdir, write_results
from bench.servers import (
    Receiver,
    answering,
    post_api,
    service_env,
    start_receiver,
    start_service,
    wait_arrivals,
)
from bench.stats import median

NAME = "startup"
SERVICE = str(Path(PYTHON).with_name("service"))  # the console script an operator runs
MIB = 1024
# The goals of the command line and of the relay's memory: seconds, MiB.
HELP_GOAL_S = 0.3
OUTBOX_GOAL_S = 1.0
RELAY_GOAL_MIB = 80.0
HELP_COMMANDS = (("--help",), ("outbox", "stats", "--help"))
OUTBOX_COMMANDS = (("outbox", "stats"), ("outbox", "list"))
FOOTPRINT_ROWS = 12  # packages shown one by one; the rest are summed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=int, default=5, help="runs of each command (medians)")
    p.add_argument("--rows", type=int, default=100_000, help="outbox rows for stats and list")
    p.add_argument("--drain-rows", type=int, default=1_000_000, help="backlog the relay drains")
    p.add_argument("--requests", type=int, default=1_000, help="events sent through serve")
    p.add_argument("--payload-bytes", type=int, default=1024, help="size of each event's data")
    p.add_argument(
        "--timeout", type=float, help="seconds allowed for a drain (default: 60 + rows/500)"
    )
    p.add_argument("--interval", type=float, default=0.2, help="seconds between RSS samples")


async def command_figures(
    label: str, argv: list[str], env: dict[str, str], repeats: int
) -> dict[str, Any]:
    """Run ``argv`` ``repeats`` times to its end: the median wall time, and the median CPU
    time (user + system) the command took, which other work on the machine inflates far less
    than the wall time; BenchError if a run fails."""
    runs, cpu = [], []
    for _ in range(repeats):
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        code, _out, err = await run_command(argv, 120, env)
        runs.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # this run's process alone
        cpu.append(after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime)
        if code != 0:
            raise BenchError(f"{label} exited with {code}: {err.strip()}")
    return {
        "command": label,
        "median_s": round(median(runs), 3),
        "cpu_s": round(median(cpu), 3),
        "runs_s": [round(seconds, 3) for seconds in runs],
    }


async def help_figures(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The interpreter's own start, then the help of the command line (no database needed)."""
    env = service_env("sqlite:///unused.db")
    rows = [await command_figures("python -c pass", [PYTHON, "-c", "pass"], env, args.repeats)]
    for words in HELP_COMMANDS:
        label = " ".join(("service", *words))
        rows.append(await command_figures(label, [SERVICE, *words], env, args.repeats))
    return rows


async def outbox_figures(db: Database, args: argparse.Namespace) -> list[dict[str, Any]]:
    env = service_env(db.url)
    return [
        {
            "db": db.kind,
            **await command_figures(
                " ".join(("service", *words)), [SERVICE, *words], env, args.repeats
            ),
        }
        for words in OUTBOX_COMMANDS
    ]


async def footprint(
    procs: Processes, name: str, db: Database, receiver: Receiver, args: list[str]
) -> dict[str, int]:
    """What a process of ``service ARGS`` is made of at start, in KiB by package: listed from
    one that answers on its port (``--port``, or the relay's metrics port), then measured."""
    port = free_port()
    env = service_env(db.url, receiver.url, RELAY_METRICS_PORT=str(port))
    listing = workdir(NAME) / f"{name}.modules"
    listing.parent.mkdir(parents=True, exist_ok=True)
    port_args = ["--port", str(port)] if args[0] == "serve" else []
    process = procs.python(name, "bench.footprint", ["list", str(listing), *args, *port_args], env)
    await answering(procs, name, process, port)
    procs.stop(process)
    measure = [PYTHON, "-m", "bench.footprint", "measure", str(listing)]
    code, out, err = await run_command(measure, 120, clean_env())
    if code != 0:
        raise BenchError(f"{name}: bench.footprint measure exited with {code}: {err.strip()}")
    growth: dict[str, int] = json.loads(out)
    return growth


async def serve_figures(procs: Processes, db: Database, args: argparse.Namespace) -> dict[str, Any]:
    """``service serve``'s VmRSS once it answers, and after ``--requests`` events went through
    it to the receiver; what it is made of at start."""
    receiver = await start_receiver(procs, f"receiver-serve-{db.kind}", record=True)
    server = None
    try:
        server = await start_service(
            procs, f"serve-{db.kind}", db.url, relay=True, inngest_origin=receiver.url
        )
        started = rss_kib(server.process.pid)
        body = compact(sample_document(args.payload_bytes)).encode()
        ids = await post_api(f"{server.url}/api", args.requests, body)
        arrived, _waited = await wait_arrivals(receiver, ids, 60)
        if not set(ids) <= arrived.keys():
            raise BenchError(f"serve on {db.kind}: events not delivered in 60 s")
        after = rss_kib(server.process.pid)
        procs.stop(server.process)
        made_of = await footprint(procs, f"footprint-serve-{db.kind}", db, receiver, ["serve"])
    finally:
        if server is not None:
            procs.stop(server.process)
        procs.stop(receiver.process)
    return {
        "rss_start_mib": round((started or 0) / MIB, 1),
        "rss_after_requests_mib": round((after or 0) / MIB, 1),
        "footprint_kib": made_of,
    }


async def run_backend(procs: Processes, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    async with fresh_database(kind, workdir(NAME)) as db:
        say(f"{kind}: filling {args.rows:,} events")
        await fill(db, args.rows, args.payload_bytes)
        await db.settle()
        outbox = await outbox_figures(db, args)
        backlog = max(0, args.drain_rows - args.rows)
        say(f"{kind}: filling up to {args.drain_rows:,} events, draining with service relay")
        await fill(db, backlog, args.payload_bytes)
        receiver = await start_receiver(procs, f"receiver-relay-{kind}")
        try:
            relay = await drain(procs, db, receiver, args.rows + backlog, args)
            relay["footprint_kib"] = await footprint(
                procs, f"footprint-relay-{kind}", db, receiver, ["relay"]
            )
        finally:
            procs.stop(receiver.process)
        say(f"{kind}: service serve, {args.requests:,} events through it")
        serve = await serve_figures(procs, db, args)
    return {"db": kind, "outbox": outbox, "relay": relay, "serve": serve}


def print_results(
    commands: list[dict[str, Any]], backends_: list[dict[str, Any]], args: argparse.Namespace
) -> None:
    floor = commands[0]["median_s"]
    rows = [(c, "-", HELP_GOAL_S if c is not commands[0] else None) for c in commands]
    rows += [(c, b["db"], OUTBOX_GOAL_S) for b in backends_ for c in b["outbox"]]
    print_table(
        f"startup: wall time of a command, median of {args.repeats} "
        f"(stats and list on {args.rows:,} rows)",
        ["command", "db", "median s", "minus python s", "CPU s", "goal s"],
        [
            [
                c["command"],
                db,
                fmt(c["median_s"], 3),
                fmt(c["median_s"] - floor, 3),
                fmt(c["cpu_s"], 3),
                "-" if goal is None else f"{goal:.1f} " + verdict(c["median_s"] <= goal),
            ]
            for c, db, goal in rows
        ],
        labels=2,
    )
    print_table(
        f"startup: VmRSS MiB of the long-running processes (relay: a {args.drain_rows:,}-row "
        f"drain; serve: {args.requests:,} events through it)",
        ["process", "db", "start", "end", "peak", "goal"],
        [
            row
            for b in backends_
            for row in (
                [
                    "service relay",
                    b["db"],
                    fmt(b["relay"]["rss_start_mib"]),
                    fmt(b["relay"]["rss_end_mib"]),
                    fmt(b["relay"]["rss_peak_mib"]),
                    f"{RELAY_GOAL_MIB:.0f} " + verdict(relay_within_goal(b)),
                ],
                [
                    "service serve",
                    b["db"],
                    fmt(b["serve"]["rss_start_mib"]),
                    fmt(b["serve"]["rss_after_requests_mib"]),
                    "-",
                    "-",
                ],
            )
        ],
        labels=2,
    )


def print_footprints(backends_: list[dict[str, Any]]) -> None:
    """The packages that weigh most in any column, one row each; the rest summed."""
    columns = [(f"{p} {b['db']}", b[p]) for p in ("relay", "serve") for b in backends_]
    made_of = [figures["footprint_kib"] for _label, figures in columns]
    packages = sorted(
        {p for kib in made_of for p in kib}, key=lambda p: -max(k.get(p, 0) for k in made_of)
    )
    shown = packages[:FOOTPRINT_ROWS]
    rows = [[package, *(fmt(kib.get(package, 0) / MIB) for kib in made_of)] for package in shown]
    rows.append(
        [
            "other packages",
            *(fmt(sum(v for p, v in kib.items() if p not in shown) / MIB) for kib in made_of),
        ]
    )
    rows.append(["sum of the imports", *(fmt(sum(kib.values()) / MIB) for kib in made_of)])
    rows.append(["VmRSS at start", *(fmt(figures["rss_start_mib"]) for _label, figures in columns)])
    print_table(
        "startup: what VmRSS at start is made of, MiB: the interpreter, then what importing each "
        "package brought (bench/footprint.py)",
        ["package", *(label for label, _figures in columns)],
        rows,
    )


def verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


def relay_within_goal(result: dict[str, Any]) -> bool:
    """The relay's RSS at start and at the end of its drain are within the goal."""
    figures = (result["relay"]["rss_start_mib"], result["relay"]["rss_end_mib"])
    return all(mib is not None and mib <= RELAY_GOAL_MIB for mib in figures)


def missed_goals(commands: list[dict[str, Any]], backends_: list[dict[str, Any]]) -> list[str]:
    missed = [c["command"] for c in commands[1:] if c["median_s"] > HELP_GOAL_S]
    for b in backends_:
        missed += [
            f"{c['command']} on {b['db']}" for c in b["outbox"] if c["median_s"] > OUTBOX_GOAL_S
        ]
        missed += [] if relay_within_goal(b) else [f"service relay's RSS on {b['db']}"]
    return missed


async def bench(args: argparse.Namespace, procs: Processes) -> int:
    say("the command line's help")
    commands = await help_figures(args)
    results = [await run_backend(procs, kind, args) for kind in await backends(args.db)]
    print_results(commands, results, args)
    print_footprints(results)
    write_results(NAME, {"settings": vars(args), "commands": commands, "results": results})
    missed = missed_goals(commands, results)
    if missed:
        warn(f"startup: goals missed: {missed}")
    lost = [r["db"] for r in results if r["relay"]["relay_exit_code"] not in (0, None)]
    if lost:
        warn(f"startup: the relay exited badly on {lost}")
    return 1 if lost else 0


if __name__ == "__main__":
    run_main(NAME, __doc__ or NAME, add_arguments, bench)

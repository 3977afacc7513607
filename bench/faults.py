#!/usr/bin/env python3
"""bench/faults.py: delivery through a failing Event API, with real processes.

Each scenario gets a fresh database (PostgreSQL unless ``--db`` says otherwise), a
``service serve --no-relay`` that takes the events on ``POST /api`` (an open-loop generator,
``bench.loadgen``), ``--relays`` (2) ``service relay`` processes and ``bench.receiver`` standing
in for Inngest's Event API. Every relay setting not named here is its default.

- storm: the receiver answers at random (seeded) 30% 500, 10% 429 with ``Retry-After: 1``,
  5% connection resets and 5% 2-second stalls before a 200, the rest 200; 600 events are
  posted over 5 s to relays with ``RELAY_BATCH_SIZE=5``. Seconds from the first accepted event
  until every event is delivered (its row ``delivered``, its id received at least once); not
  finished if rows are still pending after ``--storm-timeout`` (400 s). Once per seed of
  ``--seeds`` (five), and their median: a run's time hangs on its few unluckiest rows.
- recovery: the Event API is down, which here means connections refused (nothing listens on
  its port), for 60 s; 200 events are posted as it goes down; then the receiver comes up,
  healthy, on that port: seconds from its return until all are delivered.
- outage: the same with 50 events, 90 s down and ``RELAY_BACKOFF_BASE=200ms
  RELAY_BACKOFF_MAX=1s``: the rows left dead, and seconds to deliver the others after it.

Requests are counted twice: as the receiver saw them, and as the relays counted their attempts
(``relay_delivery_attempts`` of their ``/metrics``, refused connections included). The bench
fails when a row says ``delivered`` but its event never reached the receiver; a scenario not
settled in time and a missed goal (the figures the relay aims for) are warnings.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cli import run_main
from bench.databases import Database, backends, fresh_database
from bench.load import run_load
from bench.output import console, fmt, print_table, say, warn
from bench.processes import HOST, BenchError, Processes, free_port, log_problems
from bench.results import workdir, write_results
from bench.servers import (
    Receiver,
    Server,
    relay_attempts,
    start_receiver,
    start_service,
    start_watched_relay,
)
from bench.stats import median

NAME = "faults"
STORM, RECOVERY, OUTAGE = "storm", "recovery", "outage"
SCENARIOS = (STORM, RECOVERY, OUTAGE)
SETTLE_POLL = 0.25  # seconds between checks for pending rows
PROGRESS_EVERY = 20.0  # seconds between progress lines while a scenario settles
POST_CONNECTIONS = 16
STORM_FAULTS = (
    *("--fault-500", "0.3", "--fault-429", "0.1", "--retry-after", "1"),
    *("--fault-reset", "0.05", "--fault-stall", "0.05", "--stall-seconds", "2"),
)


@dataclass(frozen=True)
class Scenario:
    """One run: what the Event API does, what is posted, how the relays are set."""

    name: str
    api: str  # what the Event API does, for the table
    events: int
    post_seconds: float
    timeout: float  # seconds allowed to settle, from the first post or the API's return
    goal_seconds: float | None  # the goal for the delivery figure, if it has one
    down_seconds: float = 0.0  # connections refused this long from the first post
    faults: tuple[str, ...] = ()  # flags of bench.receiver
    relay_env: Mapping[str, str] = field(default_factory=dict)
    seed: int | None = None  # of the receiver's faults

    @property
    def label(self) -> str:
        return self.name if self.seed is None else f"{self.name}, seed {self.seed}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.set_defaults(db="postgresql")
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    p.add_argument("--relays", type=int, default=2, help="service relay processes")
    p.add_argument("--seeds", default="1,2,3,4,5", help="a storm for each of these seeds")
    p.add_argument("--storm-events", type=int, default=600, help="events posted in the storm")
    p.add_argument("--storm-timeout", type=float, default=400, help="seconds the storm may take")
    p.add_argument("--recovery-down", type=float, default=60, help="seconds the API is down")
    p.add_argument("--recovery-events", type=int, default=200, help="events waiting")
    p.add_argument("--outage-down", type=float, default=90, help="seconds of the long outage")
    p.add_argument("--outage-events", type=int, default=50, help="events of the long outage")
    p.add_argument(
        "--return-timeout", type=float, default=180, help="seconds allowed after the API's return"
    )


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    """The scenarios asked for by ``--only``, in their order."""
    every = {
        STORM: Scenario(
            STORM,
            "30% 500, 10% 429 (Retry-After 1), 5% reset, 5% 2 s stall",
            args.storm_events,
            post_seconds=5,
            timeout=args.storm_timeout,
            goal_seconds=60,
            faults=STORM_FAULTS,
            relay_env={"RELAY_BATCH_SIZE": "5"},
        ),
        RECOVERY: Scenario(
            RECOVERY,
            f"refuses connections for {args.recovery_down:g} s",
            args.recovery_events,
            post_seconds=2,
            timeout=args.return_timeout,
            goal_seconds=5,
            down_seconds=args.recovery_down,
        ),
        OUTAGE: Scenario(
            OUTAGE,
            f"refuses connections for {args.outage_down:g} s",
            args.outage_events,
            post_seconds=1,
            timeout=args.return_timeout,
            goal_seconds=None,
            down_seconds=args.outage_down,
            relay_env={"RELAY_BACKOFF_BASE": "200ms", "RELAY_BACKOFF_MAX": "1s"},
        ),
    }
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(wanted) - every.keys()
    if unknown:
        raise BenchError(f"unknown scenarios {sorted(unknown)}: choose from {list(SCENARIOS)}")
    chosen = [every[name] for name in SCENARIOS if name in wanted]
    return [run for scenario in chosen for run in seeded(scenario, args.seeds)]


def seeded(scenario: Scenario, seeds: str) -> list[Scenario]:
    """A scenario with faults once per seed; one without, as it is."""
    if not scenario.faults:
        return [scenario]
    return [
        dataclasses.replace(scenario, seed=seed, faults=(*scenario.faults, "--seed", str(seed)))
        for seed in (int(text) for text in seeds.split(",") if text.strip())
    ]


async def post_events(procs: Processes, tag: str, service: Server, scenario: Scenario) -> list[str]:
    """Post the scenario's events at an even pace; every one must be accepted."""
    load = await run_load(
        procs,
        f"load-{tag}",
        f"{service.url}/api",
        rate=scenario.events / scenario.post_seconds,
        duration=scenario.post_seconds,
        connections=POST_CONNECTIONS,
    )
    if load.ok != scenario.events:
        raise BenchError(f"{tag}: the API accepted {load.ok} of {scenario.events} events")
    return load.ids


async def settle(
    db: Database, receiver: Receiver, scenario: Scenario, since: float
) -> tuple[bool, float]:
    """Wait until no row is pending (each delivered or dead), at most ``scenario.timeout``
    seconds after ``since`` (epoch seconds); return whether it settled, and when."""
    report_at = time.monotonic() + PROGRESS_EVERY
    while await db.any_pending():
        if time.time() - since > scenario.timeout:
            return False, time.time() - since
        if time.monotonic() >= report_at:
            report_at += PROGRESS_EVERY
            seen = await receiver.stats()
            say(
                f"{scenario.name}: {await db.count('delivered')} of {scenario.events} delivered, "
                f"{await db.count('dead')} dead, {seen['requests']} requests received, "
                f"{time.time() - since:.0f}s"
            )
        await asyncio.sleep(SETTLE_POLL)
    return True, time.time() - since


async def run_scenario(
    outer: Processes, kind: str, scenario: Scenario, args: argparse.Namespace
) -> dict[str, Any]:
    tag = f"{scenario.name}{'' if scenario.seed is None else scenario.seed}-{kind}"
    port = free_port()
    origin = f"http://{HOST}:{port}"
    async with fresh_database(kind, workdir(NAME)) as db:
        with Processes(outer.logdir) as procs:  # this scenario's processes stop with it
            receiver: Receiver | None = None
            if not scenario.down_seconds:
                receiver = await start_receiver(
                    procs, f"receiver-{tag}", port=port, record=True, options=scenario.faults
                )
            service = await start_service(procs, f"service-{tag}", db.url, relay=False)
            relays = [
                await start_watched_relay(
                    procs, f"relay-{tag}-{n}", db.url, origin, **scenario.relay_env
                )
                for n in range(args.relays)
            ]
            say(f"{scenario.label} on {kind}: {scenario.events} events, Event API {scenario.api}")
            first_post = time.time()
            ids = await post_events(procs, tag, service, scenario)
            # From the moment the API accepted the first event (its row's created_at).
            since = await db.scalar("SELECT min(created_at) FROM outbox_events") / 1000
            if receiver is None:
                await asyncio.sleep(max(0.0, first_post + scenario.down_seconds - time.time()))
                receiver = await start_receiver(
                    procs, f"receiver-{tag}-back", port=port, record=True
                )
                since = (await receiver.stats())["up_ms"] / 1000
                say(f"{scenario.name}: the Event API is back after {since - first_post:.1f}s")
            settled, settled_s = await settle(db, receiver, scenario, since)
            arrivals = await receiver.arrivals()
            seen = await receiver.stats()
            attempts = await relay_attempts(relays)
            statuses = await db.status_counts()
            most_attempts = await db.scalar("SELECT max(attempts) FROM outbox_events")
            logs = [log_problems(relay.log) for relay in relays]
    received = [arrivals[i][1] for i in ids if i in arrivals]
    dead = statuses.get("dead", 0)
    last_s = (max(received) / 1000 - since) if received else None
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "label": scenario.label,
        "db": kind,
        "event_api": scenario.api,
        "events": scenario.events,
        "relays": args.relays,
        "relay_settings": dict(scenario.relay_env),
        "receiver_flags": list(scenario.faults),
        "down_s": scenario.down_seconds,
        "measured_from": "the API's return" if scenario.down_seconds else "the first post",
        "settled": settled,
        "settled_s": round(settled_s, 2),
        "all_delivered": len(received) == scenario.events,
        "delivered_s": round(last_s, 2) if last_s is not None else None,
        "outbox_statuses": statuses,
        "dead": dead,
        "max_attempts_on_a_row": most_attempts,
        "received_events": len(received),
        "delivered_not_received": max(0, statuses.get("delivered", 0) - len(received)),
        "duplicates": max(0, seen["events"] - len(set(arrivals) & set(ids))),
        "receiver": seen,
        "relay_attempts": attempts,
        "relay_logs": logs,
        "goal_seconds": scenario.goal_seconds,
        "goal_met": goal_met(scenario, settled, dead, last_s),
    }


def goal_met(scenario: Scenario, settled: bool, dead: int, delivered_s: float | None) -> bool:
    """Every event delivered, none dead, within the scenario's goal if it has one."""
    if not settled or dead or delivered_s is None:
        return False
    return scenario.goal_seconds is None or delivered_s <= scenario.goal_seconds


def seconds_cell(r: dict[str, Any]) -> str:
    if not r["settled"]:
        return f"not finished in {r['settled_s']:.0f}"
    if not r["all_delivered"]:
        return f"{fmt(r['delivered_s'])} (not all)" if r["delivered_s"] is not None else "-"
    return fmt(r["delivered_s"])


def goal_cell(r: dict[str, Any]) -> str:
    goal = "0 dead" + (f", <= {r['goal_seconds']:g} s" if r["goal_seconds"] else "")
    return f"{goal}: {'met' if r['goal_met'] else 'MISSED'}"


COLUMNS = (
    *("scenario", "db", "events", "delivered", "dead", "s to all delivered"),
    *("requests seen", "relay attempts", "most attempts", "goal"),
)


def table_row(r: dict[str, Any]) -> list[str]:
    """A result as a row of ``COLUMNS``."""
    counts = (r["events"], r["outbox_statuses"].get("delivered", 0), r["dead"])
    requests = (r["receiver"]["requests"], sum(r["relay_attempts"].values()))
    return [
        r["label"],
        r["db"],
        *(fmt(n) for n in counts),
        seconds_cell(r),
        *(fmt(n) for n in (*requests, r["max_attempts_on_a_row"])),
        goal_cell(r),
    ]


def print_results(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    title = (
        f"faults: {args.relays} `service relay` processes and `service serve --no-relay`; "
        "seconds from the first accepted event (storm) or the Event API's return"
    )
    print_table(title, COLUMNS, [table_row(r) for r in results], labels=2)
    out = console()
    for r in {r["scenario"]: r for r in results}.values():
        settings = " ".join(f"{k}={v}" for k, v in r["relay_settings"].items()) or "defaults"
        out.print(f"  {r['scenario']}: Event API {r['event_api']}; relays: {settings}")


def storm_summary(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The median and range of the storms' times (one not finished counts as infinite)."""
    storms = [r for r in results if r["scenario"] == STORM]
    if not storms:
        return None
    times = [r["delivered_s"] if r["settled"] and r["all_delivered"] else math.inf for r in storms]
    finite = [t for t in times if math.isfinite(t)]
    middle = median(times)
    text = f"median {fmt(middle)} s" if math.isfinite(middle) else "median: not finished"
    if finite:
        text += f", finished ones {fmt(min(finite))}-{fmt(max(finite))} s"
    text += f", {len(times) - len(finite)} of {len(times)} not finished"
    return {
        "runs": len(times),
        "median_s": middle if math.isfinite(middle) else None,
        "finished_s": finite,
        "not_finished": len(times) - len(finite),
        "text": text,
    }


async def bench(args: argparse.Namespace, procs: Processes) -> int:
    chosen = scenarios(args)
    kinds = await backends(args.db)
    if not kinds:
        raise BenchError("no usable backend")
    results = [await run_scenario(procs, kind, s, args) for kind in kinds for s in chosen]
    summary = storm_summary(results)
    print_results(results, args)
    if summary:
        console().print(f"  storm over {summary['runs']} seeds: {summary['text']}")
    write_results(NAME, {"settings": vars(args), "storm_summary": summary, "results": results})
    for r in results:
        if not r["goal_met"]:
            warn(f"faults: {r['label']} on {r['db']} missed its goal ({goal_cell(r)})")
    lost = [f"{r['label']} on {r['db']}" for r in results if r["delivered_not_received"]]
    if lost:
        warn(f"faults: rows marked delivered whose events never arrived: {lost}")
    return 1 if lost else 0


if __name__ == "__main__":
    run_main(NAME, __doc__ or NAME, add_arguments, bench)

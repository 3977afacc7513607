#!/usr/bin/env python3
"""bench/hosted.py: what TLS and a transaction pooler cost, as a hosted PostgreSQL is reached.

One private PostgreSQL cluster (started here from the machine's ``initdb`` and ``pg_ctl``, with
TLS and SCRAM passwords, taking plain connections too) and PgBouncer in transaction mode in
front of it (TLS to its clients when they ask; plain to the cluster, as on one host). Each
repeat runs every target on a fresh database of that one cluster, migrated through the direct
URL:

- ``direct``: ``sslmode=disable``, the baseline;
- ``tls``: ``sslmode=require``, straight to the cluster;
- ``pgbouncer``: through PgBouncer with ``pgbouncer=true``, plain, ``DATABASE_DIRECT_URL`` the
  direct one (the relays' ``LISTEN``);
- ``pgbouncer+tls``: the same with ``sslmode=require`` to PgBouncer, a hosted pooler's URL.

On each: ``POST /api`` of ``service serve --no-relay`` under ingest's wrk load (the outbox
must hold what wrk saw acknowledged), then a backlog of ``--rows`` pending events drained by
one ``service relay`` into the receiver (events/s). Medians over ``--repeats``, and each
target's ratio to ``direct`` in the same run; goals: TLS 0.85, through PgBouncer 0.7.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cli import add_wrk_arguments, run_main
from bench.databases import Database
from bench.ingest import WARM_UP_REQUESTS, check_rows, prepared_load, run_wrk_on
from bench.output import fmt, print_table, say, warn
from bench.processes import PYTHON, BenchError, Processes, log_problems, run_command
from bench.relay import drain, fill
from bench.results import write_results
from bench.servers import post_api, service_env, start_receiver, start_service
from bench.stats import median

NAME = "hosted"
TARGETS = ("direct", "tls", "pgbouncer", "pgbouncer+tls")
GOALS = {"tls": 0.85, "pgbouncer": 0.7, "pgbouncer+tls": 0.7}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_wrk_arguments(p)
    p.add_argument("--body-bytes", type=int, default=1024, help="size of the JSON body")
    p.add_argument("--rows", type=int, default=30_000, help="backlog each relay drains")
    p.add_argument("--payload-bytes", type=int, default=1024, help="size of each event's data")
    p.add_argument("--timeout", type=float, help="seconds allowed for a drain")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between samples")


class Servers:
    """The cluster and the pooler, and each target's URLs of a database on them."""

    def __init__(self, cluster: Any, pooler_port: int) -> None:
        self.cluster = cluster
        self.pooler_port = pooler_port

    def urls(self, target: str, database: str) -> dict[str, str]:
        """DATABASE_URL (and DATABASE_DIRECT_URL behind the pooler) of ``target``."""
        direct = self.cluster.url(database=database, sslmode="disable")
        if target == "direct":
            return {"DATABASE_URL": direct}
        if target == "tls":
            return {"DATABASE_URL": self.cluster.url(database=database, sslmode="require")}
        mode = "require" if target.endswith("+tls") else "disable"
        pooled = self.cluster.url(database=database, sslmode=mode, pgbouncer="true")
        pooled = pooled.replace(f":{self.cluster.port}/", f":{self.pooler_port}/")
        return {"DATABASE_URL": pooled, "DATABASE_DIRECT_URL": direct}


@contextlib.contextmanager
def running_servers() -> Iterator[Servers]:
    from tests.hosted_servers import (
        issued_certificates,
        missing_programs,
        running_cluster,
        running_pgbouncer,
    )

    reason = missing_programs()
    if reason:
        raise BenchError(reason)
    with (
        issued_certificates() as certificates,
        running_cluster(certificates, plain_too=True) as cluster,
        running_pgbouncer(
            certificates,
            databases=f"* = host=127.0.0.1 port={cluster.port}",
            passwords=True,
            server_tls="server_tls_sslmode = disable",
            client_tls="allow",
        ) as (port, _log),
    ):
        yield Servers(cluster, port)


@contextlib.asynccontextmanager
async def fresh_database(
    servers: Servers, target: str
) -> AsyncIterator[tuple[Database, dict[str, str]]]:
    """A new database on the cluster, migrated through the direct URL: the database, queried
    as the target reaches it, and the target's other settings (DATABASE_DIRECT_URL)."""
    from tests.hosted_servers import APP_USER

    name = f"bench_{uuid.uuid4().hex[:10]}"
    await servers.cluster.execute(f'CREATE DATABASE "{name}" OWNER {APP_USER}', database="postgres")
    urls = servers.urls(target, name)
    database = Database("postgresql", urls["DATABASE_URL"])
    try:
        direct = servers.urls("direct", name)["DATABASE_URL"]
        code, out, err = await run_command(
            [PYTHON, "-m", "service", "db", "upgrade"], 120, service_env(direct)
        )
        if code != 0:
            raise BenchError(f"service db upgrade failed ({code}): {err or out}")
        yield database, {k: v for k, v in urls.items() if k != "DATABASE_URL"}
    finally:
        await database.dispose()
        await servers.cluster.execute(f'DROP DATABASE "{name}" WITH (FORCE)', database="postgres")


async def ingest_run(
    procs: Processes, servers: Servers, wrk: str, body: Path, args: argparse.Namespace, target: str
) -> dict[str, Any]:
    async with fresh_database(servers, target) as (db, extra):
        server = await start_service(procs, f"api-{target}", db.url, relay=False, **extra)
        try:
            await post_api(f"{server.url}/api", WARM_UP_REQUESTS, args.body)
            before = await db.count()
            result = await run_wrk_on(wrk, server, body, args)
            rows = await db.settled_count() - before
        finally:
            procs.stop(server.process)
        return {**result.summary(), **check_rows(result, rows), "log": log_problems(server.log)}


async def drain_run(
    procs: Processes, servers: Servers, args: argparse.Namespace, target: str
) -> dict[str, Any]:
    async with fresh_database(servers, target) as (db, extra):
        await fill(db, args.rows, args.payload_bytes)
        receiver = await start_receiver(procs, f"receiver-{target}")
        try:
            result = await drain(procs, db, receiver, args.rows, args, **extra)
            received = (await receiver.stats())["events"]
        finally:
            procs.stop(receiver.process)
        statuses = await db.status_counts()
    return {
        "events_per_s": result["events_per_s"],
        "drain_s": result["drain_s"],
        "duplicates": max(0, received - args.rows),
        "not_delivered": args.rows - statuses.get("delivered", 0),
        "relay_log": result["log"],
    }


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per target, and ratios to ``direct``'s medians."""
    medians = {}
    for target in TARGETS:
        mine = [r for r in runs if r["target"] == target]
        medians[target] = {
            "rps": median(r["ingest"]["rps"] for r in mine),
            "p99_ms": median(r["ingest"]["latency_ms"]["p99"] for r in mine),
            "drain_eps": median(r["drain"]["events_per_s"] or 0 for r in mine),
            "lost": sum(r["ingest"]["lost"] + r["drain"]["not_delivered"] for r in mine),
            "checks": sorted({r["ingest"]["check"] for r in mine}),
        }
    base = medians["direct"]
    return [
        {
            "target": target,
            **figures,
            "rps_ratio": round(figures["rps"] / base["rps"], 3) if base["rps"] else None,
            "drain_ratio": (
                round(figures["drain_eps"] / base["drain_eps"], 3) if base["drain_eps"] else None
            ),
            "goal": GOALS.get(target),
        }
        for target, figures in medians.items()
    ]


def print_summary(summary: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print_table(
        f"hosted: POST /api (wrk {args.threads}x{args.connections}, {args.duration:g}s) and a "
        f"drain of {args.rows:,} events, median of {args.repeats}, ratios to direct",
        ["target", "req/s", "p99 ms", "vs direct", "drain ev/s", "vs direct", "goal", "rows"],
        [
            [
                s["target"],
                fmt(s["rps"], 0),
                fmt(s["p99_ms"], 2),
                fmt(s["rps_ratio"], 3),
                fmt(s["drain_eps"], 0),
                fmt(s["drain_ratio"], 3),
                fmt(s["goal"], 2) if s["goal"] else "",
                ", ".join(s["checks"]),
            ]
            for s in summary
        ],
    )


async def bench(args: argparse.Namespace, procs: Processes) -> int:
    wrk, body = await prepared_load(args, NAME)
    runs: list[dict[str, Any]] = []
    with running_servers() as servers:
        for repeat in range(1, args.repeats + 1):
            for target in TARGETS:
                ingest = await ingest_run(procs, servers, wrk, body, args, target)
                drained = await drain_run(procs, servers, args, target)
                runs.append(
                    {"target": target, "repeat": repeat, "ingest": ingest, "drain": drained}
                )
                say(
                    f"{target} #{repeat}: {ingest['rps']:,.0f} req/s, rows {ingest['check']};"
                    f" drain {drained['events_per_s'] or 0:,.0f} events/s"
                )
    summary = summarize(runs)
    print_summary(summary, args)
    settings = {k: v for k, v in vars(args).items() if k != "body"}
    write_results(NAME, {"settings": settings, "summary": summary, "runs": runs})
    for s in summary:
        if s["goal"] and min(s["rps_ratio"] or 0, s["drain_ratio"] or 0) < s["goal"]:
            warn(f"hosted: {s['target']} below its goal of {s['goal']} of direct")
    return 1 if any(s["lost"] for s in summary) else 0


if __name__ == "__main__":
    run_main(NAME, __doc__ or NAME, add_arguments, bench)

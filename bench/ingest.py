#!/usr/bin/env python3
"""bench/ingest.py: throughput and latency of ``POST /api`` against a bare aiohttp handler.

Each repeat runs, in turn, the bare handler (``bench.bare``) and ``service serve --no-relay``
on a fresh migrated database of each backend, all loaded by the same wrk command (threads x
connections, a ~1 KB JSON body, a bearer token); then the service again on each backend with
a next-auth v5 session cookie (minted once by next-auth's own code) as the only credential,
and on PostgreSQL with a next-auth database session's cookie, looked up in an app's database
of Prisma's tables on the same server.
After each service run the outbox must hold exactly the events wrk saw acknowledged, give or
take the requests still in flight when wrk stopped: fewer rows than 2xx answers is a lost
event and fails the bench. The same run prints what decoding a session cookie and looking up
a database session cost.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.app_sessions import app_database, lookup_cost
from bench.cli import add_wrk_arguments, run_main
from bench.databases import backends, fresh_database
from bench.load import WrkResult, ensure_wrk, run_wrk
from bench.output import fmt, print_table, say, statuses_cell, warn
from bench.payloads import write_body
from bench.processes import Processes, clean_env, log_problems
from bench.results import workdir, write_results
from bench.servers import Server, post_api, start_http, start_service
from bench.sessions import APP_SECRET, PROFILE, decode_table, js_reason, mint
from bench.stats import median

NAME = "ingest"
WARM_UP_REQUESTS = 50
COOKIE = "+nextauth"  # the suffix of a target whose credential is a next-auth v5 cookie
DB_SESSION = "+dbsession"  # ... a next-auth database session's cookie


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_wrk_arguments(p)
    p.add_argument("--body-bytes", type=int, default=1024, help="size of the JSON body")


async def run_wrk_on(
    wrk: str,
    server: Server,
    body: Path,
    args: argparse.Namespace,
    path: str = "/api",
    *,
    credential: tuple[str, str] | None = None,
    seeded: bool = False,
) -> WrkResult:
    """The one wrk command of every target (of bench/events.py's too, on its path; the bench
    token unless another ``credential``)."""
    return await run_wrk(
        wrk,
        f"{server.url}{path}",
        body,
        threads=args.threads,
        connections=args.connections,
        duration=args.duration,
        credential=credential,
        seeded=seeded,
    )


async def run_bare(
    procs: Processes, wrk: str, body: Path, args: argparse.Namespace, repeat: int
) -> dict[str, Any]:
    server = await start_http(procs, f"bare-r{repeat}", "bench.bare", [], clean_env())
    try:
        await post_api(f"{server.url}/api", WARM_UP_REQUESTS, args.body)
        result = await run_wrk_on(wrk, server, body, args)
    finally:
        procs.stop(server.process)
    return {"target": "bare", "repeat": repeat, **result.summary(), "check": "n/a"}


def check_rows(result: WrkResult, rows: int, per_request: int = 1) -> dict[str, Any]:
    """Compare the rows written with the 2xx answers wrk counted (``per_request`` rows each)."""
    lost = max(0, result.ok * per_request - rows)
    extra = max(0, rows - result.ok * per_request)
    if lost:
        verdict = f"LOST {lost}"
    elif extra > result.unanswered * per_request:
        verdict = f"{extra - result.unanswered * per_request} rows too many"
    else:
        verdict = "ok"
    return {
        "rows": rows,
        "lost": lost,
        "rows_of_unanswered": extra,
        "unanswered": result.unanswered,
        "check": verdict,
    }


async def run_service(
    procs: Processes,
    wrk: str,
    body: Path,
    args: argparse.Namespace,
    repeat: int,
    target: str,
) -> dict[str, Any]:
    kind = target.removesuffix(COOKIE).removesuffix(DB_SESSION)
    credential, extra = None, {}
    if target.endswith(COOKIE):
        credential = ("Cookie", args.cookie)
    elif target.endswith(DB_SESSION):
        credential = ("Cookie", args.app_database.cookie)
        extra = {"NEXTAUTH_DATABASE_URL": args.app_database.url}
    async with fresh_database(kind, workdir(NAME)) as db:
        server = await start_service(
            procs,
            f"service-{target}-r{repeat}",
            db.url,
            relay=False,
            SQLITE_SYNCHRONOUS="FULL",
            AUTH_SECRET=APP_SECRET,
            **extra,
        )
        try:
            await post_api(f"{server.url}/api", WARM_UP_REQUESTS, args.body, credential)
            before = await db.count()
            result = await run_wrk_on(wrk, server, body, args, credential=credential)
            rows = await db.settled_count() - before
        finally:
            procs.stop(server.process)
        return {
            "target": target,
            "repeat": repeat,
            **result.summary(),
            **check_rows(result, rows),
            "log": log_problems(server.log),
        }


def summarize(runs: list[dict[str, Any]], targets: list[str]) -> list[dict[str, Any]]:
    """Medians per target and the ratio of requests/s to the bare handler's."""
    rows = []
    bare_rps = median(r["rps"] for r in runs if r["target"] == "bare")
    for target in targets:
        mine = [r for r in runs if r["target"] == target]
        rps = median(r["rps"] for r in mine)
        non_2xx: dict[str, int] = {}
        for r in mine:
            for status, n in r["non_2xx"].items():
                non_2xx[status] = non_2xx.get(status, 0) + n
        rows.append(
            {
                "target": target,
                "runs": len(mine),
                "rps": round(rps, 1),
                "p50_ms": median(r["latency_ms"]["p50"] for r in mine),
                "p99_ms": median(r["latency_ms"]["p99"] for r in mine),
                "ratio_to_bare": round(rps / bare_rps, 3) if bare_rps else None,
                "non_2xx": non_2xx,
                "socket_errors": sum(sum(r["socket_errors"].values()) for r in mine),
                "lost": sum(r.get("lost", 0) for r in mine),
                "checks": sorted({r["check"] for r in mine}),
                "log_errors": sum(r.get("log", {}).get("errors", 0) for r in mine),
            }
        )
    return rows


def print_summary(summary: list[dict[str, Any]], args: argparse.Namespace) -> None:
    label = {
        "bare": "bare aiohttp",
        "sqlite": "service, SQLite FULL",
        "postgresql": "service, PG",
        f"sqlite{COOKIE}": "service, SQLite, v5 cookie",
        f"postgresql{COOKIE}": "service, PG, v5 cookie",
        f"postgresql{DB_SESSION}": "service, PG, database session",
    }
    print_table(
        f"ingest: POST /api, wrk {args.threads}x{args.connections}, {args.duration:g}s, "
        f"~{args.body_bytes} B body, median of {args.repeats}",
        ["target", "req/s", "p50 ms", "p99 ms", "vs bare", "non-2xx", "sock err", "rows"],
        [
            [
                label.get(s["target"], s["target"]),
                fmt(s["rps"], 0),
                fmt(s["p50_ms"], 2),
                fmt(s["p99_ms"], 2),
                fmt(s["ratio_to_bare"], 3),
                statuses_cell(s["non_2xx"]),
                fmt(s["socket_errors"]),
                ", ".join(s["checks"]),
            ]
            for s in summary
        ],
    )


async def prepared_load(args: argparse.Namespace, name: str) -> tuple[str, Path]:
    """wrk, and the file of a ``--body-bytes`` body in bench ``name``'s scratch directory
    (its bytes also in ``args.body``, for the warm-ups)."""
    wrk = await ensure_wrk()
    body = write_body(args.body_bytes, workdir(name))
    args.body = body.read_bytes()
    return wrk, body


async def bench(args: argparse.Namespace, procs: Processes) -> int:
    wrk, body = await prepared_load(args, NAME)
    kinds = await backends(args.db)
    targets = ["bare", *kinds]
    if reason := js_reason():
        warn(f"skipping the next-auth cookie targets and decode table: {reason}")
    else:
        [session] = await mint({"kind": "v5", "claims": PROFILE})
        args.cookie = session.header
        targets += [f"{kind}{COOKIE}" for kind in kinds]
    async with contextlib.AsyncExitStack() as stack:
        if "postgresql" in kinds:
            args.app_database = await stack.enter_async_context(app_database())
            targets.append(f"postgresql{DB_SESSION}")
        runs = await run_targets(procs, wrk, body, args, targets)
        summary = summarize(runs, targets)
        print_summary(summary, args)
        lookups = await lookup_cost(args.app_database) if "postgresql" in kinds else []
    decoding = [] if js_reason() else await decode_table()
    settings = {k: v for k, v in vars(args).items() if k not in ("body", "cookie", "app_database")}
    settings["sqlite_synchronous"] = "FULL"
    write_results(
        NAME,
        {
            "settings": settings,
            "summary": summary,
            "nextauth_decode": decoding,
            "database_session_lookup": lookups,
            "runs": runs,
        },
    )
    service = [s for s in summary if s["target"] != "bare"]
    failed = [s["target"] for s in service if s["checks"] != ["ok"] or s["non_2xx"]]
    if failed:
        warn(f"ingest: lost events, extra rows or non-2xx answers: {sorted(set(failed))}")
    return 1 if any(s["lost"] for s in summary) else 0


async def run_targets(
    procs: Processes, wrk: str, body: Path, args: argparse.Namespace, targets: list[str]
) -> list[dict[str, Any]]:
    """Every target once per repeat, in turn."""
    runs: list[dict[str, Any]] = []
    for repeat in range(1, args.repeats + 1):
        for target in targets:
            if target == "bare":
                run = await run_bare(procs, wrk, body, args, repeat)
            else:
                run = await run_service(procs, wrk, body, args, repeat, target)
            runs.append(run)
            say(
                f"{target} #{repeat}: {run['rps']:,.0f} req/s, p99 {run['latency_ms']['p99']} "
                f"ms, non-2xx {run['non_2xx'] or 0}, rows {run['check']}"
            )
    return runs


if __name__ == "__main__":
    run_main(NAME, __doc__ or NAME, add_arguments, bench)

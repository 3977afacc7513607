#!/usr/bin/env python3
"""bench/relay.py: how fast ``service relay`` drains a backlog, and what memory it holds.

For each backend: a fresh migrated database is filled with ``--rows`` pending events (bulk
SQL; payloads built by the service's own ``payload.new_event``), the plan of the relay's claim
statement is shown (it must use ``ix_outbox_events_due``), then one ``service relay`` process
delivers everything to ``bench.receiver``. The bench polls the count of pending rows and the
relay's VmRSS until nothing is pending, and reports events/s and memory (start, end, peak).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cli import run_main
from bench.databases import Database, backends, fresh_database
from bench.memory import rss_kib
from bench.output import console, fmt, print_table, say, warn
from bench.payloads import sample_document
from bench.processes import BenchError, Processes, log_problems, log_tail
from bench.results import workdir, write_results
from bench.servers import Receiver, start_receiver, start_relay
from bench.stats import median

NAME = "relay"
INDEX = "ix_outbox_events_due"
FILL_CHUNK = 50_000
PLACEHOLDER = "@@EVENT_ID@@"
DB_CHECK_INTERVAL = 3.0
USER = {"id": "42", "email": "ada@example.com", "name": "Ada"}
FILL_SQL = {
    "sqlite": """
        WITH RECURSIVE n(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM n WHERE i < :hi)
        INSERT INTO outbox_events
            (id, name, payload, status, attempts, created_at, next_attempt_at)
        SELECT e.id, :name, replace(:template, :placeholder, e.id), 'pending', 0, :ts, :ts
        FROM (SELECT printf('%s-%012x', :prefix, i) AS id FROM n) AS e
    """,
    "postgresql": """
        INSERT INTO outbox_events
            (id, name, payload, status, attempts, created_at, next_attempt_at)
        SELECT e.id, :name, replace(CAST(:template AS text), CAST(:placeholder AS text), e.id),
               'pending', 0, :ts, :ts
        FROM (
            SELECT CAST(:prefix AS text) || '-' || lpad(to_hex(i), 12, '0') AS id
            FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i
        ) AS e
    """,
}
EXPLAIN = {"sqlite": "EXPLAIN QUERY PLAN ", "postgresql": "EXPLAIN "}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", type=int, default=100_000, help="backlog to drain")
    p.add_argument("--payload-bytes", type=int, default=1024, help="size of each event's data")
    p.add_argument(
        "--timeout", type=float, help="seconds allowed for a drain (default: 60 + rows/500)"
    )
    p.add_argument("--interval", type=float, default=0.2, help="seconds between samples")


async def fill(db: Database, rows: int, payload_bytes: int) -> float:
    """Insert ``rows`` pending events shaped like real ones; return the seconds it took."""
    from service.events.ids import now_ms
    from service.events.payload import EVENT_NAME, new_event

    ts = now_ms()
    template = new_event(sample_document(payload_bytes), USER, ts, event_id=PLACEHOLDER)
    params = {
        "name": EVENT_NAME,
        "template": template.payload,
        "placeholder": PLACEHOLDER,
        "ts": ts,
        "prefix": str(uuid.uuid4())[:23],  # with "-%012x" of the row number: a UUID's layout
    }
    start = time.monotonic()
    for lo in range(1, rows + 1, FILL_CHUNK):
        hi = min(rows, lo + FILL_CHUNK - 1)
        await db.execute(FILL_SQL[db.kind], lo=lo, hi=hi, **params)
    return time.monotonic() - start


class Captured(Exception):
    """Raised from a cursor hook to stop the claim before it runs, once its SQL is known."""


async def capture_claim(engine: Any) -> tuple[str, Any]:
    """The SQL and parameters that ``outbox.claim`` really sends, captured from the driver
    and aborted before they run (nothing is claimed)."""
    from sqlalchemy import event

    from service.events.ids import now_ms
    from service.store import deliveries

    captured: dict[str, Any] = {}

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        if "outbox_events" in statement and not captured:
            captured.update(sql=statement, params=parameters)
            raise Captured

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        await deliveries.claim(engine, "bench-explain", 500, 60_000, now_ms())
    except Captured:
        pass
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    if not captured:
        raise BenchError("deliveries.claim sent no statement on outbox_events")
    return captured["sql"], captured["params"]


def sql_literal(value: Any) -> str:
    """A parameter of the claim (an int or a string of ours) as an SQL literal."""
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def claim_plan(db: Database) -> dict[str, Any]:
    """The plan of the relay's claim as the database explains it with its parameters, and on
    PostgreSQL also the generic plan that a prepared statement may switch to after five
    executions (where ``status = $n`` is not known to match the partial index)."""
    from service.store.engine import reading

    sql, params = await capture_claim(db.engine)
    generic: list[str] | None = None
    async with reading(db.engine) as conn:
        rows: list[Any] = list((await conn.exec_driver_sql(EXPLAIN[db.kind] + sql, params)).all())
        if db.kind == "postgresql":
            await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.exec_driver_sql(f"PREPARE bench_claim AS {sql}")
            values = ", ".join(sql_literal(v) for v in params)
            result = await conn.exec_driver_sql(f"EXPLAIN EXECUTE bench_claim({values})")
            generic = [str(row[0]) for row in result.all()]
            await conn.exec_driver_sql("DEALLOCATE bench_claim")
    if db.kind == "sqlite":  # (id, parent, notused, detail): indent by depth
        depth: dict[int, int] = {}
        lines = []
        for row in rows:
            node, parent, detail = int(row[0]), int(row[1]), str(row[3])
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + detail)
    else:
        lines = [str(row[0]) for row in rows]
    return {
        "statement": " ".join(sql.split()),
        "plan": lines,
        "uses_index": uses_index(lines),
        "generic_plan": generic,
        "generic_uses_index": None if generic is None else uses_index(generic),
    }


def uses_index(plan: list[str]) -> bool:
    return any(INDEX in line for line in plan)


async def drain(
    procs: Processes,
    db: Database,
    receiver: Receiver,
    rows: int,
    args: argparse.Namespace,
    **extra: str,
) -> dict[str, Any]:
    """Run ``service relay`` (with the settings of ``extra``) until nothing is pending,
    sampling its progress and VmRSS.

    Progress comes from the receiver's count (free); the database is asked only whether any
    row is still pending, once the receiver has seen them all or every few seconds: counting
    pending rows costs the database a scan of the backlog, which would slow the relay down.
    """
    timeout = args.timeout or 60 + rows / 500
    relay = start_relay(procs, f"relay-{db.kind}", db.url, receiver.url, **extra)
    started = time.monotonic()
    samples: list[dict[str, Any]] = []
    query_ms: list[float] = []
    last_query = started
    try:
        while True:
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                raise BenchError(f"{db.kind}: backlog not drained in {timeout:.0f}s")
            if relay.poll() is not None:
                raise BenchError(
                    f"{db.kind}: relay exited with {relay.returncode}\n"
                    + log_tail(procs.log_of(relay))
                )
            rss = rss_kib(relay.pid)
            received = (await receiver.stats())["events"]
            samples.append({"t": round(elapsed, 3), "rss_kib": rss, "received": received})
            if received >= rows or time.monotonic() - last_query > DB_CHECK_INTERVAL:
                last_query = time.monotonic()
                if not await db.any_pending():
                    samples[-1]["t"] = round(time.monotonic() - started, 3)
                    break
                query_ms.append((time.monotonic() - last_query) * 1000)
            await asyncio.sleep(args.interval)
    finally:
        exit_code = procs.stop(relay)
    return {
        **drain_figures(samples, rows),
        "relay_exit_code": exit_code,
        "pending_query_ms_p50": round(median(query_ms), 2),
        "log": log_problems(procs.log_of(relay)),
        "samples": samples[:: max(1, len(samples) // 200)],
    }


def drain_figures(samples: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    """Rates and memory from the samples: the rate is measured from the first sample that
    shows progress (the relay is up) to the one where nothing is pending."""
    working = [s for s in samples if s["received"] > 0 and s["rss_kib"]]
    first, last = (working[0], samples[-1]) if working else (samples[-1], samples[-1])
    window = last["t"] - first["t"]
    rss = [s["rss_kib"] for s in samples if s["rss_kib"]]
    middle = min(working or samples, key=lambda s: abs(s["received"] - rows / 2))
    mib = 1024
    return {
        "drain_s": round(last["t"], 2),
        "startup_s": round(first["t"], 2),
        "events_per_s": round((rows - first["received"]) / window, 1) if window > 0 else None,
        "events_per_s_overall": round(rows / last["t"], 1) if last["t"] else None,
        "rss_start_mib": round(first["rss_kib"] / mib, 1) if first["rss_kib"] else None,
        "rss_mid_mib": round(middle["rss_kib"] / mib, 1) if middle["rss_kib"] else None,
        "rss_end_mib": round(last_rss(samples) / mib, 1),
        "rss_peak_mib": round(max(rss) / mib, 1) if rss else None,
    }


def last_rss(samples: list[dict[str, Any]]) -> int:
    return next((s["rss_kib"] for s in reversed(samples) if s["rss_kib"]), 0)


async def run_backend(procs: Processes, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    async with fresh_database(kind, workdir(NAME)) as db:
        say(f"{kind}: filling {args.rows:,} events")
        fill_s = await fill(db, args.rows, args.payload_bytes)
        plan = await claim_plan(db)
        receiver = await start_receiver(procs, f"receiver-{kind}")
        try:
            say(f"{kind}: draining with service relay")
            result = await drain(procs, db, receiver, args.rows, args)
            received = await receiver.stats()
        finally:
            procs.stop(receiver.process)
        statuses = await db.status_counts()
    missing = args.rows - statuses.get("delivered", 0)
    return {
        "db": kind,
        "rows": args.rows,
        "fill_s": round(fill_s, 2),
        "fill_rows_per_s": round(args.rows / fill_s, 1),
        **result,
        "outbox_statuses": statuses,
        "received": received,
        "duplicates": max(0, received["events"] - args.rows),
        "not_delivered": missing,
        "claim": plan,
    }


def mib_trend(r: dict[str, Any]) -> str:
    if r["rss_start_mib"] is None:
        return "-"
    return f"{r['rss_end_mib'] - r['rss_start_mib']:+.1f}"


def print_results(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print_table(
        f"relay: drain of {args.rows:,} pending events (~{args.payload_bytes} B data) by one "
        "`service relay` to a local receiver",
        [
            "db",
            "fill s",
            "drain s",
            "events/s",
            "RSS start MiB",
            "mid",
            "end",
            "peak",
            "end-start",
            "delivered",
            "dead",
            "claim uses index",
        ],
        [
            [
                r["db"],
                fmt(r["fill_s"], 1),
                fmt(r["drain_s"], 1),
                fmt(r["events_per_s"], 0),
                fmt(r["rss_start_mib"]),
                fmt(r["rss_mid_mib"]),
                fmt(r["rss_end_mib"]),
                fmt(r["rss_peak_mib"]),
                mib_trend(r),
                fmt(r["outbox_statuses"].get("delivered", 0)),
                fmt(r["outbox_statuses"].get("dead", 0)),
                index_verdict(r["claim"]),
            ]
            for r in results
        ],
    )
    out = console()
    for r in results:
        plans = [(EXPLAIN[r["db"]].strip(), r["claim"]["plan"])]
        if r["claim"]["generic_plan"] is not None:
            plans.append(("generic plan, EXPLAIN EXECUTE", r["claim"]["generic_plan"]))
        for how, plan in plans:
            out.print(f"[bold]claim plan on {r['db']}[/bold] ({how}):")
            for line in plan:
                out.print(f"  {line}", markup=False)


def index_verdict(claim: dict[str, Any]) -> str:
    verdict = "yes" if claim["uses_index"] else "NO"
    if claim["generic_uses_index"] is not None:
        verdict += ", generic: " + ("yes" if claim["generic_uses_index"] else "NO")
    return verdict


async def bench(args: argparse.Namespace, procs: Processes) -> int:
    results = [await run_backend(procs, kind, args) for kind in await backends(args.db)]
    print_results(results, args)
    write_results(NAME, {"settings": vars(args), "results": results})
    slow = [r["db"] for r in results if "NO" in index_verdict(r["claim"])]
    if slow:
        warn(f"relay: the claim does not use {INDEX} on {slow}")
    lost = [r["db"] for r in results if r["not_delivered"]]
    if lost:
        warn(f"relay: events not delivered on {lost}")
    return 1 if lost else 0


if __name__ == "__main__":
    run_main(NAME, __doc__ or NAME, add_arguments, bench)

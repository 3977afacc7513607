#!/usr/bin/env python3
"""bench/console_pages.py: how long a page of the console's event list takes with a large
outbox, for each filter it offers, on each backend.

A fresh database is filled with ``--rows`` (1,000,000) events over a week: 97% delivered, 2%
pending (half of them retrying after an error), 1% dead with an error; 20 names; payloads of
``--payload-bytes``. The console (``create_app``, its own server in this process) answers an
operator signed in with a token; each filter's first page, and its page ``--deep`` pages on
(followed by its cursor), is fetched ``--repeats`` times: the median is reported, with the
ratio to ``GET /health`` on the same server (what any request costs here). Goal: every page in
<= 100 ms; a warning names each page that is not. The overview is fetched twice in a row, each
time after its figures are forgotten: the first fetch reads them (as a console does every few
seconds, however many are open), the second is served by them while they are fresh.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cli import run_main
from bench.databases import Database, backends, fresh_database
from bench.output import fmt, print_table, say, warn
from bench.processes import Processes
from bench.results import workdir, write_results
from bench.stats import median

NAME = "console_pages"
GOAL_MS = 100.0
TOKEN = "bench-operator-token-0123456789abcdef"
NAMES = 20
DAY_MS = 86_400_000
NEXT_PAGE = re.compile(r'href="/console/events\?([^"]+)" rel="next"')


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", type=int, default=1_000_000, help="events in the outbox")
    p.add_argument("--payload-bytes", type=int, default=300, help="size of each payload")
    p.add_argument("--repeats", type=int, default=7, help="fetches of each page")
    p.add_argument("--deep", type=int, default=20, help="the deep page: this many pages on")


def fill_sql(kind: str, rows: int, payload_bytes: int, now: int) -> str:
    """One INSERT of ``rows`` events, made by the database itself (a series of numbers)."""
    span = 7 * DAY_MS
    # n = 1..rows, oldest first; every 100th of them dead, every 50th (not dead) pending.
    status = "CASE WHEN n % 100 = 0 THEN 'dead' WHEN n % 50 = 1 THEN 'pending' ELSE 'delivered' END"
    error = (
        "CASE WHEN n % 100 = 0 THEN 'HTTP 400: data.plan must be a string (' || n || ')'"
        " WHEN n % 100 = 1 THEN 'HTTP 503: unavailable' END"
    )
    attempts = "CASE WHEN n % 100 IN (0, 1) THEN 3 WHEN n % 50 = 1 THEN 0 ELSE 1 END"
    created = f"{now - span} + n * {span // rows}"
    completed = f"CASE WHEN n % 50 = 1 AND n % 100 <> 0 THEN NULL ELSE {created} + 500 END"
    filler = f"repeat('x', {max(0, payload_bytes - 60)})"
    if kind == "sqlite":
        series = f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {rows})"
        filler = f"substr(printf('%.{max(1, payload_bytes - 60)}c', 'x'), 1)"
        source = "s"
    else:
        series = ""
        source = f"generate_series(1, {rows}) AS n"
    return f"""{series}
INSERT INTO outbox_events (id, name, payload, status, attempts, created_at, next_attempt_at,
    last_error, completed_at, inngest_id)
SELECT 'evt-' || n, 'app/event.' || (n % {NAMES}),
    '{{"id":"evt-' || n || '","name":"app/event.' || (n % {NAMES}) || '","data":{{"n":' || n
        || ',"pad":"' || {filler} || '"}}}}',
    {status}, {attempts}, {created}, {created}, {error}, {completed}, 'ing-' || n
FROM {source}"""


def pages(rows: int, now: int) -> list[tuple[str, str]]:
    """(label, query) of each filter the console offers."""
    from service.timefmt import iso

    middle = rows // 2
    three_days_ago = now - 3 * DAY_MS
    return [
        ("everything", ""),
        ("state: pending", "state=pending"),
        ("state: retrying", "state=retrying"),
        ("state: in flight", "state=in_flight"),
        ("state: delivered", "state=delivered"),
        ("state: dead", "state=dead"),
        ("name", "name=app/event.7"),
        (
            "an hour 3 days ago",
            f"since={iso(three_days_ago - 3_600_000)}&until={iso(three_days_ago)}",
        ),
        ("id", f"id=evt-{middle}"),
        ("Inngest id", f"id=ing-{middle}"),
        ("error text", "error=data.plan"),
        ("dead, name, error", "state=dead&name=app/event.0&error=must+be"),
    ]


async def fetch_ms(session: Any, url: str) -> tuple[float, str]:
    started = time.perf_counter()
    async with session.get(url) as answer:
        text = await answer.text()
        if answer.status != 200:
            raise RuntimeError(f"{url}: {answer.status}")
    return (time.perf_counter() - started) * 1000, text


async def measure(database: Database, args: argparse.Namespace) -> list[dict[str, Any]]:
    import aiohttp
    from aiohttp.test_utils import TestServer

    from service.config import ConsoleSettings, Settings, normalise_database_url, token_digest
    from service.http.app import create_app
    from service.http.console.keys import FIGURES

    settings = Settings(
        database_url=normalise_database_url(database.url),
        session_secret="bench-session-secret-0123456789abcdefghijkl",
        log_level="WARNING",
        console=ConsoleSettings(token_digests=(f"bench={token_digest(TOKEN)}",)),
    )
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    base = f"http://127.0.0.1:{server.port}"
    results = []
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.post(f"{base}/console/sign-in", data={"token": TOKEN}) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"sign-in: {answer.status}")
            health = [(await fetch_ms(session, f"{base}/health"))[0] for _ in range(args.repeats)]
            baseline = median(health)
            for label, query in pages(args.rows, int(time.time() * 1000)):
                url = f"{base}/console/events?{query}"
                first = [(await fetch_ms(session, url))[0] for _ in range(args.repeats)]
                deep_url, depth = url, 0
                for _ in range(args.deep):
                    _ms, text = await fetch_ms(session, deep_url)
                    found = NEXT_PAGE.search(text)
                    if found is None:
                        break
                    deep_url = f"{base}/console/events?" + found.group(1).replace("&amp;", "&")
                    depth += 1
                deep = [(await fetch_ms(session, deep_url))[0] for _ in range(args.repeats)]
                results.append(
                    {
                        "page": label,
                        "query": query,
                        "first_ms": median(first),
                        "deep_ms": median(deep),
                        "deep_pages": depth,
                        "first_vs_health": median(first) / baseline,
                    }
                )
            figures = server.app[FIGURES]
            overview_url = f"{base}/console"
            read, shared = [], []
            for _ in range(args.repeats):
                figures.forget()  # as after an action, or once the figures have aged
                read.append((await fetch_ms(session, overview_url))[0])
                shared.append((await fetch_ms(session, overview_url))[0])
            for label, times in (("overview, read", read), ("overview, while fresh", shared)):
                results.append(
                    {
                        "page": label,
                        "query": "",
                        "first_ms": median(times),
                        "deep_ms": None,
                        "deep_pages": 0,
                        "first_vs_health": median(times) / baseline,
                    }
                )
            for row in results:
                row["health_ms"] = baseline
    finally:
        await server.close()
    return results


async def run_backend(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    async with fresh_database(kind, workdir(NAME)) as database:
        say(f"{kind}: filling {args.rows:,} events")
        started = time.perf_counter()
        await database.execute(
            fill_sql(kind, args.rows, args.payload_bytes, int(time.time() * 1000))
        )
        filled = time.perf_counter() - started
        await database.settle()
        if kind == "sqlite":
            await database.execute("ANALYZE")
        say(f"{kind}: filled in {filled:.0f}s; fetching pages")
        return {
            "db": kind,
            "fill_seconds": round(filled, 1),
            "pages": await measure(database, args),
        }


def print_results(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print_table(
        f"console pages: {args.rows:,} events, medians of {args.repeats} (goal <= {GOAL_MS:g} ms)",
        ["db", "page", "first ms", f"deep ms (page {args.deep + 1})", "first / GET /health"],
        [
            [
                r["db"],
                p["page"],
                fmt(p["first_ms"], 1),
                fmt(p["deep_ms"], 1) if p["deep_pages"] else "-",
                fmt(p["first_vs_health"], 1),
            ]
            for r in results
            for p in r["pages"]
        ],
        labels=2,
    )


async def bench(args: argparse.Namespace, _procs: Processes) -> int:
    results = [await run_backend(kind, args) for kind in await backends(args.db)]
    print_results(results, args)
    write_results(NAME, {"settings": vars(args), "results": results})
    slow = [
        f"{r['db']} {p['page']} ({max(p['first_ms'], p['deep_ms'] or 0):.0f} ms)"
        for r in results
        for p in r["pages"]
        if not p["page"].startswith("overview") and max(p["first_ms"], p["deep_ms"] or 0) > GOAL_MS
    ]
    if slow:
        warn(f"console pages over {GOAL_MS:g} ms: {', '.join(slow)}")
    return 0


if __name__ == "__main__":
    run_main(NAME, __doc__ or NAME, add_arguments, bench)

"""A fast stand-in for Inngest's Event API (``python -m bench.receiver --port P``).

``POST /e/{key}`` takes a JSON array of events and answers 200 ``{"ids": [...], "status": 200}``
(401 for another key), after ``--delay-ms`` if set. It stamps each request's arrival (epoch ms)
when its body has been read. ``GET /stats`` counts requests and events; with ``--record``,
``GET /records`` lists ``[id, ts, arrival_ms]`` of every event received (duplicates included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from aiohttp import web

from bench.servers import serve_app

STATS = web.AppKey("stats", dict)
RECORDS = web.AppKey("records", list)
OPTIONS = web.AppKey("options", argparse.Namespace)


async def events(request: web.Request) -> web.Response:
    """Accept a batch: count it, record it if asked, answer one id per event."""
    options = request.app[OPTIONS]
    if request.match_info["key"] != options.key:
        return web.json_response({"error": "Event key not found", "status": 401}, status=401)
    body = await request.read()
    arrival = time.time() * 1000
    try:
        batch: Any = json.loads(body)
    except ValueError:
        return web.json_response({"ids": [""], "status": 400, "error": "bad JSON"}, status=400)
    if isinstance(batch, dict):
        batch = [batch]
    stats = request.app[STATS]
    stats["requests"] += 1
    stats["events"] += len(batch)
    if options.record:
        request.app[RECORDS].extend((e.get("id"), e.get("ts"), arrival) for e in batch)
    if options.delay_ms > 0:
        await asyncio.sleep(options.delay_ms / 1000)
    first = stats["events"] - len(batch)
    ids = [f"bench{n:012d}" for n in range(first, first + len(batch))]
    return web.json_response({"ids": ids, "status": 200})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS])


async def records(request: web.Request) -> web.Response:
    return web.json_response({"records": request.app[RECORDS]})


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    """Serve the receiver on 127.0.0.1:PORT until SIGTERM."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True, help="the only event key accepted")
    p.add_argument("--delay-ms", type=float, default=0.0, help="time taken per request")
    p.add_argument("--record", action="store_true", help="keep (id, ts, arrival) of events")
    options = p.parse_args()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[OPTIONS] = options
    app[STATS] = {"requests": 0, "events": 0}
    app[RECORDS] = []
    app.router.add_post("/e/{key}", events)
    app.router.add_get("/stats", stats)
    app.router.add_get("/records", records)
    app.router.add_get("/health", health)
    serve_app(app, options.port)


if __name__ == "__main__":
    main()

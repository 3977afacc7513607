"""A fast stand-in for Inngest's Event API (``python -m bench.receiver --port P``).

``POST /e/{key}`` takes a JSON array of events and answers 200 ``{"ids": [...], "status": 200}``
(401 for another key), after ``--delay-ms`` if set. It stamps each request's arrival (epoch ms)
when its body has been read. ``GET /stats`` counts requests, accepted events and faults, and
says since when it listens (``up_ms``); with ``--record``, ``GET /records`` lists
``[id, ts, arrival_ms]`` of every event accepted (duplicates included).

Faults, off by default: each request draws its fate from a generator seeded by ``--seed``, so a
run meets the same sequence of answers: ``--fault-500`` (share of 500s), ``--fault-429`` (429
with ``Retry-After: --retry-after``), ``--fault-reset`` (the connection is reset without an
answer), ``--fault-stall`` (a 200 after ``--stall-seconds``), the rest 200. Only the events of a
200 count as received: a 500, a 429 or a reset stores nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import struct
import time
from typing import Any

from aiohttp import web

from bench.servers import serve_app

STATS = web.AppKey("stats", dict)
RECORDS = web.AppKey("records", list)
OPTIONS = web.AppKey("options", argparse.Namespace)
FATES = web.AppKey("fates", random.Random)
FAULTS = ("500", "429", "reset", "stall")


def fate(options: argparse.Namespace, rng: random.Random) -> str:
    """What this request gets: one of ``FAULTS`` at its rate, else "200"."""
    draw = rng.random()
    for fault in FAULTS:
        rate = float(getattr(options, f"fault_{fault}"))
        if draw < rate:
            return fault
        draw -= rate
    return "200"


def refuse(fault: str, options: argparse.Namespace) -> web.Response:
    """The answer of a 500 or a 429, shaped like Inngest's."""
    status = int(fault)
    error = "rate limited" if status == 429 else "internal error"
    headers = {"Retry-After": options.retry_after} if status == 429 else None
    return web.json_response({"error": error, "status": status}, status=status, headers=headers)


def reset(request: web.Request) -> None:
    """Abort the connection with an RST (SO_LINGER 0): the client gets no answer at all."""
    assert request.transport is not None
    sock = request.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.transport.abort()


async def events(request: web.Request) -> web.Response:
    """Accept a batch (or fail it, as the faults say): count it, record it, answer its ids."""
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
    answer = fate(options, request.app[FATES])
    if answer != "200":
        stats[f"fault_{answer}"] += 1
    if answer == "reset":
        reset(request)
        raise asyncio.CancelledError  # the connection is gone: write nothing
    if answer in ("500", "429"):
        return refuse(answer, options)
    stats["events"] += len(batch)
    if options.record:
        request.app[RECORDS].extend((e.get("id"), e.get("ts"), arrival) for e in batch)
    delay = options.stall_seconds if answer == "stall" else options.delay_ms / 1000
    if delay > 0:
        await asyncio.sleep(delay)
    first = stats["events"] - len(batch)
    ids = [f"bench{n:012d}" for n in range(first, first + len(batch))]
    return web.json_response({"ids": ids, "status": 200})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS])


async def records(request: web.Request) -> web.Response:
    return web.json_response({"records": request.app[RECORDS]})


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def listening(app: web.Application) -> None:
    """Stamp the moment the receiver starts taking connections (just before it binds)."""
    app[STATS]["up_ms"] = int(time.time() * 1000)


def share(text: str) -> float:
    """A fault rate: a number from 0 to 1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: not between 0 and 1")
    return value


def main() -> None:
    """Serve the receiver on 127.0.0.1:PORT until SIGTERM."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True, help="the only event key accepted")
    p.add_argument("--delay-ms", type=float, default=0.0, help="time taken per request")
    p.add_argument("--record", action="store_true", help="keep (id, ts, arrival) of events")
    for fault, what in zip(FAULTS, ("500s", "429s", "connection resets", "stalls"), strict=True):
        p.add_argument(f"--fault-{fault}", type=share, default=0.0, help=f"share of {what}")
    p.add_argument("--retry-after", default="1", help="the Retry-After header of a 429")
    p.add_argument("--stall-seconds", type=float, default=2.0, help="how long a stall lasts")
    p.add_argument("--seed", type=int, default=1, help="seed of the faults' generator")
    options = p.parse_args()
    if sum(getattr(options, f"fault_{fault}") for fault in FAULTS) > 1:
        p.error("the fault rates add up to more than 1")
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[OPTIONS] = options
    app[STATS] = {"requests": 0, "events": 0, **{f"fault_{fault}": 0 for fault in FAULTS}}
    app[RECORDS] = []
    app[FATES] = random.Random(options.seed)
    app.on_startup.append(listening)
    app.router.add_post("/e/{key}", events)
    app.router.add_get("/stats", stats)
    app.router.add_get("/records", records)
    app.router.add_get("/health", health)
    serve_app(app, options.port)


if __name__ == "__main__":
    main()

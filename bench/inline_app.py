"""The seed's design, for bench/inline.py: ``POST /api`` sends the event to Inngest inline and
answers after Inngest did (``python -m bench.inline_app --port P --inngest ORIGIN --key K``).

As in the original there is no outbox and no error handling: when the Event API is slow the
caller waits, when it fails the caller gets a 500 and the event is gone.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bench.servers import TOKEN, serve_app
from service.events.ids import now_ms
from service.events.payload import new_event

SESSION = web.AppKey("session", aiohttp.ClientSession)
ENDPOINT = web.AppKey("endpoint", str)


async def post_api(request: web.Request) -> web.Response:
    """Check the token, POST the event to Inngest, answer once Inngest answered 200."""
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        return web.json_response({"error": "unauthorized"}, status=401)
    await request.read()
    event = new_event({}, None, now_ms())
    async with request.app[SESSION].post(
        request.app[ENDPOINT],
        data=f"[{event.payload}]",
        headers={"content-type": "application/json"},
    ) as response:
        await response.read()
        response.raise_for_status()  # unhandled, as in the seed: the caller sees a 500
    return web.json_response({"success": "true", "id": event.id})


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def client_session(app: web.Application) -> AsyncIterator[None]:
    # No connection limit: like fetch() in the seed, every request gets its own round trip.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        app[SESSION] = session
        yield


def main() -> None:
    """Serve the inline handler on 127.0.0.1:PORT until SIGTERM."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--inngest", required=True, help="origin of the Event API")
    p.add_argument("--key", required=True, help="event key")
    args = p.parse_args()
    app = web.Application()
    app[ENDPOINT] = f"{args.inngest.rstrip('/')}/e/{args.key}"
    app.cleanup_ctx.append(client_session)
    app.router.add_post("/api", post_api)
    app.router.add_get("/health", health)
    serve_app(app, args.port)


if __name__ == "__main__":
    main()

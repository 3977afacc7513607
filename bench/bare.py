"""The baseline of bench/ingest.py and bench/events.py: bare aiohttp handlers that read the body
and answer ``{"success": "true"}`` (``POST /api``) or the Event API's ``{"ids": [...],
"status": 200}`` (``POST /e/{key}``), run like ``service serve`` (``python -m bench.bare
--port P``)."""

from __future__ import annotations

import argparse

from aiohttp import web

from bench.servers import serve_app


async def post_api(request: web.Request) -> web.Response:
    """Read the request body and answer the service's success body, touching nothing else."""
    await request.read()
    return web.json_response({"success": "true"})


async def post_events(request: web.Request) -> web.Response:
    """Read the request body and answer an Event API success, touching nothing else."""
    await request.read()
    return web.json_response({"ids": ["01KB0000000000000000000000"], "status": 200})


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    """Serve ``POST /api``, ``POST /e/{key}`` and ``GET /health`` on 127.0.0.1:PORT until
    SIGTERM."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/api", post_api)
    app.router.add_post("/e/{key}", post_events)
    app.router.add_get("/health", health)
    serve_app(app, args.port)


if __name__ == "__main__":
    main()

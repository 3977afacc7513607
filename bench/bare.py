"""The baseline of bench/ingest.py: a bare aiohttp handler that reads the body and answers
``{"success": "true"}``, run like ``service serve`` (``python -m bench.bare --port P``)."""

from __future__ import annotations

import argparse

from aiohttp import web

from bench.servers import serve_app


async def post_api(request: web.Request) -> web.Response:
    """Read the request body and answer the service's success body, touching nothing else."""
    await request.read()
    return web.json_response({"success": "true"})


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    """Serve ``POST /api`` and ``GET /health`` on 127.0.0.1:PORT until SIGTERM."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    app = web.Application()
    app.router.add_post("/api", post_api)
    app.router.add_get("/health", health)
    serve_app(app, args.port)


if __name__ == "__main__":
    main()

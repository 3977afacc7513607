"""A real little HTTP proxy that loses answers: it forwards each request to the service, and for
the first ``lose`` requests it throws the service's answer away and resets the client's
connection instead, as a network or a crash does after the service committed. Before the reset
it may run ``before_reset`` (a test kills and restarts the service there), so the client's
retry meets whatever that left behind. ``lost`` keeps the bodies of the answers thrown away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from tests.fake_inngest import reset_connection

HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}


class LossyProxy:
    """Forwards ``POST /e/{key}`` to ``upstream``; see the module's docstring."""

    def __init__(
        self,
        upstream: str,
        lose: int = 1,
        before_reset: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.upstream = upstream
        self.lose = lose
        self.before_reset = before_reset
        self.lost: list[bytes] = []
        self.forwarded = 0
        self.origin = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.post(
            f"{self.upstream}{request.path_qs}", data=await request.read(), headers=headers
        ) as upstream:
            body = await upstream.read()
            status, content_type = upstream.status, upstream.content_type
        self.forwarded += 1
        if len(self.lost) < self.lose:
            self.lost.append(body)
            if self.before_reset is not None:
                await self.before_reset()
            reset_connection(request)
            # The connection is gone; stop the handler without writing anything.
            raise asyncio.CancelledError
        return web.Response(status=status, body=body, content_type=content_type)

    async def start(self) -> str:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/e/{key}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.origin = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.origin

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


@asynccontextmanager
async def lossy_proxy(
    upstream: str, lose: int = 1, before_reset: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[LossyProxy]:
    proxy = LossyProxy(upstream, lose, before_reset)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()

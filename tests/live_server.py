"""The app of ``create_app`` on a real socket, served by an event loop of its own in a thread.

Blocking HTTP clients (schemathesis calls through ``requests``) can then talk to it from the
test's thread: serving from the test's own loop would deadlock on the first blocking call.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from service.config import Settings
from service.http.server import ServiceRunner

START_TIMEOUT = 10.0


class LiveServer:
    """``with LiveServer(settings) as server:`` serves the app at ``server.url`` until the end."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1") -> None:
        self.settings = settings
        self.host = host
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)

    @property
    def url(self) -> str:
        """The origin the app answers on, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise TimeoutError(f"the app did not start within {START_TIMEOUT}s")
        if self._error is not None:
            raise RuntimeError("the app failed to start") from self._error
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test's thread by __enter__
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        from service.http.app import create_app

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # The HTTP server of `service serve`, so the answers are the deployed ones.
        app = create_app(self.settings)
        runner = ServiceRunner(app, self.settings.max_header_bytes, access_log=None)
        await runner.setup()
        try:
            # Port 0: the kernel picks a free port, so parallel runs never collide.
            site = web.TCPSite(runner, self.host, 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()


class ServiceTestServer(TestServer):
    """aiohttp's test server with the runner of ``service serve`` (its header limit and its
    problem answers to what the parser refuses): ``aiohttp_client(ServiceTestServer(...))``."""

    def __init__(self, app: web.Application, settings: Settings) -> None:
        super().__init__(app)
        self.max_header_bytes = settings.max_header_bytes

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return ServiceRunner(self.app, self.max_header_bytes, **kwargs)

"""The HTTP server of ``service serve``: aiohttp's, with the request headers bounded as the
Next.js app bounds them (``MAX_HEADER_BYTES``, Node's 16 KiB by default, the request line
included) and every request it refuses before the application answered with a problem
document: ``431`` for headers over the limit, ``400`` for what is not HTTP.

aiohttp's parser answers such requests itself with a plain-text 400 ("Got more than 8190 bytes
when reading"), before any middleware runs: its request handler's ``handle_error`` is the one
place where that answer is made, so the server makes its connections with a handler that
overrides it (``ServiceRunner``).
"""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from service.errors import CannotListen
from service.http.problems import PROBLEM_TYPE, problem, problem_text

__all__ = ["ServiceRunner", "header_limit", "run_server", "too_large"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# What the request line adds to its headers' bytes: the spaces, "HTTP/1.1" and the line ends.
REQUEST_LINE_EXTRA = len("  HTTP/1.1\r\n\r\n")


def too_large(limit: int) -> tuple[int, str, str]:
    """The 431 problem's status, title and detail, naming the limit."""
    return (
        431,
        "Request Header Fields Too Large",
        f"The request line and headers are larger than MAX_HEADER_BYTES ({limit} bytes).",
    )


def header_limit(limit: int) -> Any:
    """A middleware refusing requests whose line and headers together exceed ``limit`` bytes
    (the parser bounds each line on its own)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        size = len(request.method) + len(request.raw_path) + REQUEST_LINE_EXTRA
        size += sum(len(name) + len(value) + 4 for name, value in request.raw_headers)
        if size > limit:
            raise problem(*too_large(limit))
        return await handler(request)

    return middleware


class _ProblemRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering the parser's refusals with problem documents."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        self.log_exception("Error handling request", exc_info=exc)  # service.logs rewrites it
        if isinstance(exc, LineTooLong) or (
            isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc)
        ):
            answer = too_large(self.max_field_size)
        else:
            answer = (400, "Bad Request", "The request is not valid HTTP/1.1.")
        response = web.Response(
            status=answer[0], text=problem_text(*answer), content_type=PROBLEM_TYPE
        )
        response.force_close()  # the parser's state is lost: so is the connection
        return response


class _ProblemServer(web.Server):
    """aiohttp's server, making its connections with ``_ProblemRequestHandler``."""

    def __call__(self) -> RequestHandler:
        return _ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ServiceRunner(web.AppRunner):
    """An ``AppRunner`` whose parser takes lines of up to ``max_header_bytes`` and whose
    refusals are problem documents."""

    def __init__(self, app: web.Application, max_header_bytes: int, **kwargs: Any) -> None:
        super().__init__(
            app, max_line_size=max_header_bytes, max_field_size=max_header_bytes, **kwargs
        )

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _ProblemServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


async def _serve(runner: ServiceRunner, host: str, port: int) -> None:
    # SIGTERM and SIGINT end the wait, and the runner's cleanup runs before anything else is
    # cancelled: the relay and the writer stop as their cleanup contexts say.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            raise _cannot_listen(error, host, port) from error
        await stop.wait()
    finally:
        await runner.cleanup()


def ensure_can_listen(host: str, port: int) -> None:
    """Raise ``CannotListen`` now, before anything starts, if ``host``:``port`` cannot be
    listened on (the server binds it again when it starts: a race there is reported too)."""
    try:
        with socket.create_server((host, port), reuse_port=False):
            pass
    except OSError as error:
        raise _cannot_listen(error, host, port) from error


def _cannot_listen(error: OSError, host: str, port: int) -> CannotListen:
    """Why ``host``:``port`` cannot be listened on, naming the setting to change."""
    # getaddrinfo's errors (socket.gaierror, or its errno re-raised by create_server) are
    # negative numbers.
    if isinstance(error, socket.gaierror) or (error.errno or 0) < 0:
        return CannotListen(f"HOST {host}: no such host name or address", misconfigured=True)
    if error.errno == errno.EADDRINUSE:
        return CannotListen(f"port {port} on {host} is in use (PORT, or serve --port)")
    if error.errno == errno.EADDRNOTAVAIL:
        return CannotListen(f"HOST {host} is not an address of this machine", misconfigured=True)
    if error.errno == errno.EACCES:
        return CannotListen(
            f"port {port} needs privileges this process has not (PORT: use one above 1023)",
            misconfigured=True,
        )
    return CannotListen(f"cannot listen on {host}:{port}: {error.strerror or error}")


def run_server(
    app: web.Application, host: str, port: int, max_header_bytes: int, shutdown_timeout: float
) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then shut down gracefully (connections get
    ``shutdown_timeout`` seconds), as ``web.run_app`` does, with the service's runner."""
    runner = ServiceRunner(
        app, max_header_bytes, access_log=None, shutdown_timeout=shutdown_timeout
    )
    asyncio.run(_serve(runner, host, port))

"""The web process's side of the SQLite group commit: it talks to the writer process
(``python -m service.store.backends.sqlite_writer``) over a socket pair, as it would to a
database server, and starts it again after it died or failed a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import Iterator, Sequence

from service.config import Settings
from service.errors import DatabaseUnavailable
from service.events.payload import EventShell, NewEvent
from service.store.backends.rows import new_complete_events
from service.store.backends.sqlite_sql import insert_argument
from service.store.backends.sqlite_wire import frame, read_frame
from service.store.batch_writes import Claim, Written, claims_json, held_by_others, unclaimed

__all__ = ["WRITER_MODULE", "SqliteBatchStore"]

# The module the writer process runs (``python -m``); it appears in ``ps`` beside the server.
WRITER_MODULE = "service.store.backends.sqlite_writer"
# A writer that answers nothing for this long beyond SQLite's own lock wait is stuck.
STUCK_AFTER_S = 30.0


class SqliteBatchStore:
    """The web process's side: starts the writer process when opened (or by the first batch),
    and again after it died or failed a batch; one batch at a time (the group commit's writer
    task sends them in turn)."""

    concurrency = 1  # the writer process is SQLite's one writer

    def __init__(self, settings: Settings, path: str) -> None:
        self._settings = settings
        self._path = path
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Start the writer now: it takes a moment to start, which the first batch would wait."""
        with contextlib.suppress(OSError):
            await self._connection()

    async def write(
        self, claims: Sequence[Claim], shells: Sequence[EventShell], events: Sequence[NewEvent]
    ) -> Written:
        header = claims_json(claims).encode()
        rows = insert_argument(shells, events)["rows"].encode()
        timeout = self._settings.sqlite_busy_timeout_ms / 1000 + STUCK_AFTER_S
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await self._connection()
                writer.write(frame(header) + frame(rows))
                answer = json.loads(await read_frame(reader))
        except (OSError, EOFError, ValueError, TimeoutError) as error:
            # Whatever the writer did with this batch, its answer is lost: start afresh.
            await self._stop(kill=True)
            raise DatabaseUnavailable(
                f"the SQLite writer failed: {type(error).__name__}"
            ) from error
        if "error" in answer:
            # As a failed connection is dropped: the next batch starts with a new writer.
            await self._stop(kill=False)
            raise DatabaseUnavailable(str(answer["error"]))
        held = held_by_others(claims, answer["held"])
        return Written(held, new_complete_events(unclaimed(shells, held), answer["inserted"]))

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = self._reader, self._writer
        if reader is None or writer is None or writer.is_closing() or reader.at_eof():
            # Never started, or gone since the last batch (its end of the socket closed).
            await self._stop(kill=True)
            reader, writer = self._reader, self._writer = await self._start()
        return reader, writer

    async def _start(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ours, theirs = socket.socketpair()
        with theirs, _closed_on_error(ours):
            s = self._settings
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                WRITER_MODULE,
                str(theirs.fileno()),
                self._path,
                str(s.sqlite_busy_timeout_ms),
                s.sqlite_synchronous,
                pass_fds=[theirs.fileno()],
                stdin=asyncio.subprocess.DEVNULL,
            )
            return await asyncio.open_unix_connection(sock=ours)

    async def _stop(self, *, kill: bool) -> None:
        writer, process = self._writer, self._process
        self._reader = self._writer = self._process = None
        if writer is not None:
            writer.close()
        if process is not None:
            if kill:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await process.wait()

    async def close(self) -> None:
        """Close the socket; the writer finishes the batch it holds, if any, and exits."""
        await self._stop(kill=False)


@contextlib.contextmanager
def _closed_on_error(sock: socket.socket) -> Iterator[None]:
    try:
        yield
    except BaseException:
        sock.close()
        raise

"""The SQLite group commit, written by a process of its own (``python -m service.sqlite_store``).

SQLite runs inside the process that calls it, and from a thread of the web process it had to
win the GIL back from the busy event loop around every call: measured, that made a batch take
~3 ms where its statement took 0.8, and p99 went to 40-60 ms. A writer process shares no GIL.
The web process talks to it over a socket pair, as it would to a database server: it sends a
batch and reads back, once the transaction has committed, which idempotency keys were held.

Frames are a 4-byte big-endian length and JSON. A request is two frames: the claims, then the
events as ``[[id, head, tail, created_at], ...]``, which the insert takes as they are. The
answer is one frame: ``{"held": [[caller, key, response], ...]}`` or ``{"error": text}``.

The writer exits when its socket closes, so it ends with the web process however that ends
(SIGKILL included) and ignores the signals a terminal sends to the whole process group. A
batch whose answer never came back is a failure (503): the client retries, and nothing that
was acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import socket
import sqlite3
import struct
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from service.batch_store import COLUMNS, SETTINGS_DOCUMENT, Held
from service.config import Settings
from service.db import apply_sqlite_pragmas, sqlite_file_identity, sqlite_path
from service.errors import DatabaseUnavailable
from service.idempotency import Claim, claim_sqlite
from service.outbox import EVENT_NAME, EventShell

_LENGTH = struct.Struct("!I")
# A writer that answers nothing for this long beyond SQLite's own lock wait is stuck.
STUCK_AFTER_S = 30.0
# How soon the writer tries again for SQLite's write lock while another connection holds it.
RETRY_BUSY_S = 0.0005

# The batch comes as one JSON array of [id, head, tail, created_at] rows: a single parameter.
SQLITE_INSERT = (
    f"INSERT INTO outbox_events ({COLUMNS})"
    " SELECT json_extract(e.value, '$[0]'), ?,"
    " json_extract(e.value, '$[1]') || document.data || json_extract(e.value, '$[2]'),"
    " 'pending', 0, json_extract(e.value, '$[3]'), json_extract(e.value, '$[3]')"
    f" FROM {SETTINGS_DOCUMENT}, json_each(?) AS e ORDER BY e.key"
)


def frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


class SqliteBatchStore:
    """The web process's side: starts the writer process when opened (or by the first batch),
    and again after it died or failed a batch; one batch at a time (the group commit's writer
    task sends them in turn)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Start the writer now: it takes ~0.5 s to import, which the first batch would wait."""
        with contextlib.suppress(OSError):
            await self._connection()

    async def write(self, claims: Sequence[Claim], events: Sequence[EventShell]) -> Held:
        header = json.dumps([dataclasses.astuple(c) for c in claims]).encode()
        rows = json.dumps([(e.id, e.head, e.tail, e.created_at) for e in events]).encode()
        timeout = self._settings.sqlite_busy_timeout_ms / 1000 + STUCK_AFTER_S
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await self._connection()
                writer.write(frame(header) + frame(rows))
                answer = json.loads(await _read_frame(reader))
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
        by_key = {(c.caller, c.key): c for c in claims}
        return {by_key[caller, key]: response for caller, key, response in answer["held"]}

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
                __name__,
                str(theirs.fileno()),
                sqlite_path(s),
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


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    try:
        (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as error:
        raise EOFError("the SQLite writer closed its socket") from error


# -- the writer process ----------------------------------------------------------------------


class Writer:
    """One sqlite3 connection writing the batches: claims and insert in one transaction."""

    def __init__(self, path: str, busy_timeout_ms: int, synchronous: str) -> None:
        self._path = path
        self._busy_timeout = busy_timeout_ms / 1000
        # mode=rw: a missing file is an error, not a new empty database.
        self._conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
        self._file = sqlite_file_identity(path)
        apply_sqlite_pragmas(self._conn.cursor(), busy_timeout_ms, synchronous)
        # SQLite's own wait for a busy lock sleeps 1, 2, 5, 10, 15, 20, 25... ms in turn: the
        # requests of a batch that met a relay's transaction waited ~180 ms for a lock held for
        # a few. ``write`` retries at once instead, every RETRY_BUSY_S, as long as that allowed.
        self._conn.execute("PRAGMA busy_timeout=0")

    def write(self, claims: list[list[Any]], rows: bytes) -> list[list[Any]]:
        """Write one batch; return ``[caller, key, response]`` of the keys already held."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                return self._write(claims, rows)
            except sqlite3.OperationalError as error:
                # Busy means the lock was not taken: nothing of the batch was written.
                busy = error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # extended codes too
                if not busy or time.monotonic() > deadline:
                    raise
            time.sleep(RETRY_BUSY_S)

    def _write(self, claims: list[list[Any]], rows: bytes) -> list[list[Any]]:
        if sqlite_file_identity(self._path) != self._file:
            # An open connection writes on into a deleted or replaced file: the events would be
            # acknowledged and then gone. Refuse; the next batch starts a writer that reopens it.
            raise sqlite3.OperationalError("the database file was removed or replaced")
        conn = self._conn
        if not claims:
            # A lone statement is its own transaction; it takes the write lock as it starts.
            conn.execute(SQLITE_INSERT, (EVENT_NAME, rows))
            return []
        conn.execute("BEGIN IMMEDIATE")
        try:
            held = claim_sqlite(conn, [Claim(*row) for row in claims])
            if held:
                answered = {claim.event_id for claim in held}
                rows = json.dumps([r for r in json.loads(rows) if r[0] not in answered]).encode()
            conn.execute(SQLITE_INSERT, (EVENT_NAME, rows))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return [[claim.caller, claim.key, response] for claim, response in held.items()]

    def close(self) -> None:
        self._conn.close()


def serve(sock: socket.socket, path: str, busy_timeout_ms: int, synchronous: str) -> None:
    """Answer batches until the web process closes the socket. The file is opened on the first
    batch, so that a missing one is that batch's answer. After an error answer the web process
    closes the socket and starts a new writer."""
    stream = sock.makefile("rb")
    writer: Writer | None = None
    try:
        while (header := _read_frame_blocking(stream)) is not None:
            rows = _read_frame_blocking(stream)
            if rows is None:
                return
            try:
                writer = writer or Writer(path, busy_timeout_ms, synchronous)
                answer: dict[str, Any] = {"held": writer.write(json.loads(header), rows)}
            except sqlite3.Error as error:
                answer = {"error": f"{type(error).__name__}: {error}"}
            sock.sendall(frame(json.dumps(answer).encode()))
    finally:
        if writer is not None:
            writer.close()


def _read_frame_blocking(stream: Any) -> bytes | None:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    payload: bytes = stream.read(length)
    return payload if len(payload) == length else None


def main(argv: Sequence[str]) -> None:
    """``python -m service.sqlite_store FD PATH BUSY_TIMEOUT_MS SYNCHRONOUS``."""
    # A terminal's Ctrl-C reaches the whole process group: the web process decides when this
    # one ends (by closing the socket), after its last batch has been answered.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd, path, busy_timeout_ms, synchronous = argv
    with socket.socket(fileno=int(fd)) as sock:
        serve(sock, path, int(busy_timeout_ms), synchronous)


if __name__ == "__main__":
    main(sys.argv[1:])

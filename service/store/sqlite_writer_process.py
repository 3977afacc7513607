"""The SQLite writer process (``python -m service.store.sqlite_writer_process``): one
sqlite3 connection that writes the group commit's batches for the web process.

SQLite runs inside the process that calls it, and from a thread of the web process it had to
win the GIL back from the busy event loop around every call: measured, that made a batch take
~3 ms where its statement took 0.8, and p99 went to 40-60 ms. A writer process shares no GIL.
The web process (``service.store.batch_sqlite``) sends a batch over a socket pair and reads
back, once the transaction has committed, which idempotency keys were held; the frames are in
``service.store.sqlite_wire``.

The writer exits when its socket closes, so it ends with the web process however that ends
(SIGKILL included) and ignores the signals a terminal sends to the whole process group. A
batch whose answer never came back is a failure (503): the client retries, and nothing that
was acknowledged is lost.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.store.batch_sql import COLUMNS, EVENT_COLUMNS, ON_REPEAT, SETTINGS_DOCUMENT
from service.store.engine import apply_sqlite_pragmas, sqlite_file_identity
from service.store.idempotency import Claim, claim_sqlite
from service.store.outbox import EVENT_NAME
from service.store.sqlite_wire import frame, read_frame_blocking

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
# Complete events come as one JSON array of [id, name, payload, created_at, env] rows. The
# WHERE is SQLite's way to tell an upsert's ON CONFLICT from a join's ON.
SQLITE_INSERT_EVENTS = (
    f"INSERT INTO outbox_events ({EVENT_COLUMNS})"
    " SELECT json_extract(e.value, '$[0]'), json_extract(e.value, '$[1]'),"
    " json_extract(e.value, '$[2]'), 'pending', 0, json_extract(e.value, '$[3]'),"
    " json_extract(e.value, '$[3]'), json_extract(e.value, '$[4]')"
    f" FROM json_each(?) AS e WHERE true ORDER BY e.key {ON_REPEAT}"
)
EMPTY = b"[]"


@dataclass(frozen=True, slots=True)
class Batch:
    """One group commit as the web process sent it: claims, and the JSON arrays of the shells
    and of the complete events."""

    claims: list[list[Any]]
    shells: bytes
    events: bytes


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

    def write(self, batch: Batch) -> dict[str, Any]:
        """Write one batch; answer ``[caller, key, response]`` of the keys already held, and
        how many complete events were new."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                return self._write(batch)
            except sqlite3.OperationalError as error:
                # Busy means the lock was not taken: nothing of the batch was written.
                busy = error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # extended codes too
                if not busy or time.monotonic() > deadline:
                    raise
            time.sleep(RETRY_BUSY_S)

    def _write(self, batch: Batch) -> dict[str, Any]:
        if sqlite_file_identity(self._path) != self._file:
            # An open connection writes on into a deleted or replaced file: the events would be
            # acknowledged and then gone. Refuse; the next batch starts a writer that reopens it.
            raise sqlite3.OperationalError("the database file was removed or replaced")
        conn = self._conn
        shells, events = batch.shells != EMPTY, batch.events != EMPTY
        if not batch.claims and not (shells and events):
            # A lone statement is its own transaction; it takes the write lock as it starts.
            if events:
                return {"held": [], "new_events": self._insert_events(batch.events)}
            conn.execute(SQLITE_INSERT, (EVENT_NAME, batch.shells))
            return {"held": [], "new_events": 0}
        conn.execute("BEGIN IMMEDIATE")
        try:
            held = claim_sqlite(conn, [Claim(*row) for row in batch.claims])
            rows = batch.shells
            if held:
                answered = {claim.event_id for claim in held}
                rows = json.dumps([r for r in json.loads(rows) if r[0] not in answered]).encode()
            if shells:
                conn.execute(SQLITE_INSERT, (EVENT_NAME, rows))
            new_events = self._insert_events(batch.events) if events else 0
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        held_keys = [[claim.caller, claim.key, response] for claim, response in held.items()]
        return {"held": held_keys, "new_events": new_events}

    def _insert_events(self, events: bytes) -> int:
        return self._conn.execute(SQLITE_INSERT_EVENTS, (events,)).rowcount

    def close(self) -> None:
        self._conn.close()


def serve(sock: socket.socket, path: str, busy_timeout_ms: int, synchronous: str) -> None:
    """Answer batches until the web process closes the socket. The file is opened on the first
    batch, so that a missing one is that batch's answer. After an error answer the web process
    closes the socket and starts a new writer."""
    stream = sock.makefile("rb")
    writer: Writer | None = None
    try:
        while (header := read_frame_blocking(stream)) is not None:
            shells = read_frame_blocking(stream)
            events = read_frame_blocking(stream)
            if shells is None or events is None:
                return
            try:
                writer = writer or Writer(path, busy_timeout_ms, synchronous)
                answer = writer.write(Batch(json.loads(header), shells, events))
            except sqlite3.Error as error:
                answer = {"error": f"{type(error).__name__}: {error}"}
            sock.sendall(frame(json.dumps(answer).encode()))
    finally:
        if writer is not None:
            writer.close()


def main(argv: Sequence[str]) -> None:
    """``python -m service.store.sqlite_writer_process FD PATH BUSY_TIMEOUT_MS SYNCHRONOUS``."""
    # A terminal's Ctrl-C reaches the whole process group: the web process decides when this
    # one ends (by closing the socket), after its last batch has been answered.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd, path, busy_timeout_ms, synchronous = argv
    with socket.socket(fileno=int(fd)) as sock:
        serve(sock, path, int(busy_timeout_ms), synchronous)


if __name__ == "__main__":
    main(sys.argv[1:])

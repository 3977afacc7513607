"""The SQLite writer process (``python -m service.store.backends.sqlite_writer``): one sqlite3
connection that writes the group commit's batches for the web process.

SQLite runs inside the process that calls it, and from a thread of the web process it had to
win the GIL back from the busy event loop around every call: measured, that made a batch take
~3 ms where its statement took 0.8, and p99 went to 40-60 ms. A writer process shares no GIL.
The web process (``sqlite_batch``) sends a batch over a socket pair and reads back, once the
transaction has committed, which idempotency keys were held and which rows were stored; the
frames are in ``sqlite_wire``. The process imports neither SQLAlchemy nor aiohttp.

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
from typing import Any

from service.store.backends.rows import ID_POSITION
from service.store.backends.sqlite_sql import SQL, apply_pragmas, file_identity
from service.store.backends.sqlite_wire import frame, read_frame_blocking

__all__ = ["Writer", "main", "serve"]

# The claims frame of a batch without idempotency keys.
NO_CLAIMS = "[]"
# How soon the writer tries again for SQLite's write lock while another connection holds it.
RETRY_BUSY_S = 0.0005


class Writer:
    """One sqlite3 connection writing the batches: claims and insert in one transaction."""

    def __init__(self, path: str, busy_timeout_ms: int, synchronous: str) -> None:
        self._path = path
        self._busy_timeout = busy_timeout_ms / 1000
        # mode=rw: a missing file is an error, not a new empty database.
        self._conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
        self._file = file_identity(path)
        apply_pragmas(self._conn.cursor(), busy_timeout_ms, synchronous)
        # SQLite's own wait for a busy lock sleeps 1, 2, 5, 10, 15, 20, 25... ms in turn: the
        # requests of a batch that met a relay's transaction waited ~180 ms for a lock held for
        # a few. ``write`` retries at once instead, every RETRY_BUSY_S, as long as that allowed.
        self._conn.execute("PRAGMA busy_timeout=0")

    def write(self, claims: str, rows: str) -> dict[str, Any]:
        """Write one batch (the claims and the rows as JSON, as the statements take them);
        answer ``[caller, key, response]`` of the keys already held, and the ids stored."""
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

    def _write(self, claims: str, rows: str) -> dict[str, Any]:
        if file_identity(self._path) != self._file:
            # An open connection writes on into a deleted or replaced file: the events would be
            # acknowledged and then gone. Refuse; the next batch starts a writer that reopens it.
            raise sqlite3.OperationalError("the database file was removed or replaced")
        if claims == NO_CLAIMS:
            # A lone statement is its own transaction; it takes the write lock as it starts.
            return {"held": [], "inserted": self._insert(rows)}
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            held = self._claim(claims)
            if held:
                answered = {claim["event_id"] for claim, _ in held}
                rows = json.dumps(
                    [row for row in json.loads(rows) if row[ID_POSITION] not in answered]
                )
            inserted = self._insert(rows)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        held_keys = [[claim["caller"], claim["key"], response] for claim, response in held]
        return {"held": held_keys, "inserted": inserted}

    def _insert(self, rows: str) -> list[str]:
        return [
            event_id for (event_id,) in self._conn.execute(SQL["insert_events"], {"rows": rows})
        ]

    def _claim(self, claims: str) -> list[tuple[dict[str, Any], str]]:
        """Claim the keys in the open transaction; the claims whose key an earlier request
        holds, each with its stored answer."""
        ours = {
            (caller, key)
            for caller, key in self._conn.execute(SQL["claim_keys"], {"claims": claims})
        }
        others = [c for c in json.loads(claims) if (c["caller"], c["key"]) not in ours]
        if not others:
            return []
        by_key = {(c["caller"], c["key"]): c for c in others}
        answers = self._conn.execute(SQL["stored_answers"], {"claims": json.dumps(others)})
        return [(by_key[caller, key], response) for caller, key, response in answers]

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
            rows = read_frame_blocking(stream)
            if rows is None:
                return
            try:
                writer = writer or Writer(path, busy_timeout_ms, synchronous)
                answer = writer.write(header.decode(), rows.decode())
            except sqlite3.Error as error:
                answer = {"error": f"{type(error).__name__}: {error}"}
            sock.sendall(frame(json.dumps(answer).encode()))
    finally:
        if writer is not None:
            writer.close()


def main(argv: Sequence[str]) -> None:
    """``python -m service.store.backends.sqlite_writer FD PATH BUSY_TIMEOUT_MS SYNCHRONOUS``."""
    # A terminal's Ctrl-C reaches the whole process group: the web process decides when this
    # one ends (by closing the socket), after its last batch has been answered.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd, path, busy_timeout_ms, synchronous = argv
    with socket.socket(fileno=int(fd)) as sock:
        serve(sock, path, int(busy_timeout_ms), synchronous)


if __name__ == "__main__":
    main(sys.argv[1:])

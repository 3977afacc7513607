"""The frames between the web process and the SQLite writer process.

A frame is a 4-byte big-endian length and that many bytes of JSON. A request is two frames:
the idempotency claims and the rows of the outbox INSERT, each as its statement takes it
(``batch_writes.claims_json``, ``sqlite_sql.insert_argument``): the writer passes them on.
The answer is one frame: ``{"held": [[caller, key, response], ...], "inserted": [id, ...]}``
or ``{"error": text}``.
"""

from __future__ import annotations

import asyncio
import struct
from typing import BinaryIO

__all__ = [
    "frame",
    "read_frame",
    "read_frame_blocking",
]

_LENGTH = struct.Struct("!I")


def frame(payload: bytes) -> bytes:
    """``payload`` with its length in front."""
    return _LENGTH.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """The next frame's payload; ``EOFError`` when the other side closed the socket."""
    try:
        (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as error:
        raise EOFError("the SQLite writer closed its socket") from error


def read_frame_blocking(stream: BinaryIO) -> bytes | None:
    """The next frame's payload, or None once the stream ended (also mid-frame)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    payload = stream.read(length)
    return payload if len(payload) == length else None

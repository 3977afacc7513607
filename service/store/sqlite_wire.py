"""The frames between the web process and the SQLite writer process.

A frame is a 4-byte big-endian length and that many bytes of JSON. A request is three frames:
the claims, the shells as ``[[id, head, tail, created_at], ...]`` and the complete events as
``[[id, name, payload, created_at, env], ...]``, which the inserts take as they are. The answer
is one frame: ``{"held": [[caller, key, response], ...], "new_events": n}`` or
``{"error": text}``.
"""

from __future__ import annotations

import asyncio
import struct
from typing import BinaryIO

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

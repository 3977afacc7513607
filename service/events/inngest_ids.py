"""Inngest's own event ids, decided when an event is written, so that the id the service
answers is the one Inngest files the event and its runs under.

Inngest's server gives each event of a request a ULID. A request may carry a seed,
``x-inngest-event-id-seed: <unix ms>,<base64 of 10 bytes>``; the event at 1-based position
``n`` then gets the ULID of the seed's milliseconds and its 10 bytes of entropy with ``n``
added (wrapping) to the big-endian unsigned 32-bit number in bytes 6 to 10. Without a seed, or
with one the server would not take, it makes a random ULID.

So the service writes events in *runs*: the ids of a run are those a seed gives positions
1, 2, 3, ... (an SDK's own seed for ``POST /e/{key}``; for the service's own writes, a writer's
``RunningIds``, one seed for up to ``RUN_MS`` of its writes). Any stretch of a run can go to
Inngest as one request: its seed is the first event's id moved back by one (``seed_for``), and
the next events are the ones whose ids follow (``follows``). Retries, splits and partial
acceptances never change an event's id.

A ULID is 48 bits of milliseconds and 80 bits of entropy in 26 characters of Crockford's
base32; they sort by time, so they also land at the right edge of the outbox's unique index.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

__all__ = [
    "MAX_MS",
    "RUN_MS",
    "SEED_HEADER",
    "RunningIds",
    "event_ids",
    "follows",
    "new_run",
    "parse_seed",
    "seed_for",
    "seeded_ids",
    "ulid",
    "ulid_parts",
]

SEED_HEADER = "x-inngest-event-id-seed"
ENTROPY_BYTES = 10
MAX_MS = 2**48 - 1  # the most a ULID's time can hold
_TAIL = 2**32  # the positions are added to the entropy's last 32 bits, modulo this
# How long a writer's run lasts: the time in its ids is the run's start, at most this old, and
# the longer the runs, the fewer requests carry them (one request holds one run at most).
RUN_MS = 1000

# Go's strconv.ParseInt, as Inngest's server reads the milliseconds: an optional sign, digits
# (leading zeros taken: the significant digits are bounded, not the string).
_MILLIS = re.compile(r"[+-]?0*([0-9]{1,19})")
_RFC4648 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CROCKFORD = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = bytes.maketrans(_RFC4648, _CROCKFORD)
_FROM_CROCKFORD = bytes.maketrans(_CROCKFORD, _RFC4648)
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def ulid(ms: int, entropy: bytes) -> str:
    """The ULID of ``ms`` (0 to 2**48 - 1) and 10 bytes of ``entropy``."""
    value = (ms << 80) | int.from_bytes(entropy, "big")
    # 26 characters of 5 bits are 130 bits, the first two zero: shifted up by 6 into 17 bytes,
    # the number's 130 top bits are the first 26 characters of the standard base32 encoding.
    encoded = base64.b32encode((value << 6).to_bytes(17, "big"))[:26]
    return encoded.translate(_TO_CROCKFORD).decode("ascii")


def ulid_parts(text: str) -> tuple[int, int] | None:
    """A ULID's milliseconds and entropy (as an 80-bit number), or None if ``text`` is not
    one in the canonical upper-case spelling the service and Inngest write."""
    if not _ULID.fullmatch(text):
        return None
    # Padded to 32 characters (160 bits), the 130 bits of the ULID are the top ones.
    raw = base64.b32decode(text.encode("ascii").translate(_FROM_CROCKFORD) + b"AAAAAA")
    value = int.from_bytes(raw, "big") >> 30
    return value >> 80, value & (2**80 - 1)


def parse_seed(header: str | None) -> tuple[int, bytes] | None:
    """The milliseconds and entropy of a seed header, or None where Inngest's server would
    not use it (missing, not ``ms,base64``, ms not above 0 or beyond a ULID's, not 10 bytes)."""
    if not header:
        return None
    millis, comma, encoded = header.partition(",")
    digits = _MILLIS.fullmatch(millis)
    if not comma or "," in encoded or digits is None:
        return None
    ms = -int(digits.group(1)) if millis.startswith("-") else int(digits.group(1))
    if not 0 < ms <= MAX_MS:
        return None
    try:
        entropy = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return (ms, entropy) if len(entropy) == ENTROPY_BYTES else None


def seeded_ids(ms: int, entropy: bytes, count: int, after: int = 0) -> list[str]:
    """The ids Inngest's server gives the ``count`` events of a request seeded with ``ms``
    and ``entropy``: the event at 1-based position ``n`` gets the entropy with ``n`` added to
    its last four bytes, modulo 2**32. ``after``: start at position ``after + 1``."""
    head, tail = entropy[:6], int.from_bytes(entropy[6:], "big")
    return [
        ulid(ms, head + ((tail + n) % _TAIL).to_bytes(4, "big"))
        for n in range(after + 1, after + count + 1)
    ]


def new_run(count: int, at: int) -> list[str]:
    """The ids of a new run of ``count`` events written at ``at`` (epoch ms): a fresh seed of
    random entropy, positions 1 to ``count``."""
    return seeded_ids(at, os.urandom(ENTROPY_BYTES), count)


class RunningIds:
    """The ids of one writer's events: consecutive positions of one seed for ``RUN_MS`` of
    writes, then of a new seed (also when the clock went back, or a run would wrap)."""

    __slots__ = ("_entropy", "_ms", "_taken")

    def __init__(self) -> None:
        self._ms, self._entropy, self._taken = -RUN_MS, b"", 0

    def take(self, count: int, at: int) -> list[str]:
        """The next ``count`` ids, for events written at ``at`` (epoch ms)."""
        if not self._ms <= at < self._ms + RUN_MS or self._taken + count >= _TAIL:
            self._ms, self._entropy, self._taken = at, os.urandom(ENTROPY_BYTES), 0
        ids = seeded_ids(self._ms, self._entropy, count, self._taken)
        self._taken += count
        return ids


def event_ids(
    seed_header: str | None, count: int, received_at: int, runs: RunningIds | None = None
) -> list[str]:
    """The ids of a request's ``count`` events: those its seed gives, as Inngest's server
    would; without a usable seed, the next of ``runs`` (or a new run) at ``received_at``."""
    seed = parse_seed(seed_header)
    if seed is not None:
        return seeded_ids(*seed, count)
    if runs is not None:
        return runs.take(count, received_at)
    return new_run(count, received_at)


def seed_for(first_id: str) -> str | None:
    """The seed header under which the event with id ``first_id`` is the first of a request
    (and the ids that ``follows`` it the next ones), or None if Inngest cannot be made to give
    that id (not a ULID, or a time of 0, which its server refuses in a seed)."""
    parts = ulid_parts(first_id)
    if parts is None or parts[0] == 0:
        return None
    ms, entropy = parts
    head, tail = entropy >> 32, entropy % _TAIL
    moved_back = ((head << 32) | ((tail - 1) % _TAIL)).to_bytes(ENTROPY_BYTES, "big")
    return f"{ms},{base64.b64encode(moved_back).decode('ascii')}"


def follows(previous: tuple[int, int], parts: tuple[int, int]) -> bool:
    """Whether the id of ``parts`` comes right after ``previous`` in a run: the same time and
    the same first six bytes of entropy, the last four one higher (modulo 2**32)."""
    (ms, entropy), (previous_ms, previous_entropy) = parts, previous
    return (
        ms == previous_ms
        and entropy >> 32 == previous_entropy >> 32
        and entropy % _TAIL == (previous_entropy + 1) % _TAIL
    )

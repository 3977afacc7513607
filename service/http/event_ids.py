"""The ids of the events an app sends through the Event API, as Inngest's own server makes them.

An SDK sends ``x-inngest-event-id-seed: <unix ms>,<base64 of 10 bytes>`` once per send, the
same on every retry of it. Inngest's server turns the seed into one ULID per event: the seed's
milliseconds, then its 10 bytes of entropy with the event's 1-based position added (wrapping)
to the big-endian unsigned 32-bit number in bytes 6 to 10. A retry of a send whose answer was
lost therefore gets the same ids, which is what lets the outbox store it once. Without a seed,
or with one that Inngest's server would not take either, the ids are random ULIDs.

A ULID is 48 bits of milliseconds and 80 bits of entropy in 26 characters of Crockford's
base32; they sort by time, so they also land at the right edge of the outbox's unique index.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

SEED_HEADER = "x-inngest-event-id-seed"
ENTROPY_BYTES = 10
MAX_MS = 2**48 - 1  # the most a ULID's time can hold

# Go's strconv.ParseInt, as Inngest's server reads the milliseconds: an optional sign, digits.
_MILLIS = re.compile(r"[+-]?[0-9]{1,19}")
_RFC4648 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CROCKFORD = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = bytes.maketrans(_RFC4648, _CROCKFORD)


def ulid(ms: int, entropy: bytes) -> str:
    """The ULID of ``ms`` (0 to 2**48 - 1) and 10 bytes of ``entropy``."""
    value = (ms << 80) | int.from_bytes(entropy, "big")
    # 26 characters of 5 bits are 130 bits, the first two zero: shifted up by 6 into 17 bytes,
    # the number's 130 top bits are the first 26 characters of the standard base32 encoding.
    encoded = base64.b32encode((value << 6).to_bytes(17, "big"))[:26]
    return encoded.translate(_TO_CROCKFORD).decode("ascii")


def parse_seed(header: str | None) -> tuple[int, bytes] | None:
    """The milliseconds and entropy of a seed header, or None where Inngest's server would
    not use it (missing, not ``ms,base64``, ms not above 0, not 10 bytes)."""
    if not header:
        return None
    millis, comma, encoded = header.partition(",")
    if not comma or "," in encoded or not _MILLIS.fullmatch(millis):
        return None
    ms = int(millis)
    if not 0 < ms <= MAX_MS:
        return None
    try:
        entropy = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return (ms, entropy) if len(entropy) == ENTROPY_BYTES else None


def seeded_ids(ms: int, entropy: bytes, count: int) -> list[str]:
    """The ids Inngest's server gives the ``count`` events of a send seeded with ``ms`` and
    ``entropy``: the event at 1-based position ``n`` gets the entropy with ``n`` added to its
    last four bytes, modulo 2**32."""
    head, tail = entropy[:6], int.from_bytes(entropy[6:], "big")
    return [
        ulid(ms, head + ((tail + n) & 0xFFFFFFFF).to_bytes(4, "big")) for n in range(1, count + 1)
    ]


def random_ids(ms: int, count: int) -> list[str]:
    """``count`` ULIDs of ``ms`` with random entropy, from one read of the OS's random source."""
    entropy = os.urandom(ENTROPY_BYTES * count)
    return [ulid(ms, entropy[i : i + ENTROPY_BYTES]) for i in range(0, len(entropy), 10)]


def event_ids(seed_header: str | None, count: int, received_at: int) -> list[str]:
    """The ids of a send's ``count`` events: from its seed, else random ULIDs of
    ``received_at``."""
    seed = parse_seed(seed_header)
    if seed is None:
        return random_ids(received_at, count)
    return seeded_ids(*seed, count)

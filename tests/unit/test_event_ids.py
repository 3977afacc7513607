"""The Event API's ids: ULIDs, and Inngest's derivation from the SDK's seed."""

from __future__ import annotations

import base64

import pytest

from service.http.event_ids import MAX_MS, event_ids, parse_seed, random_ids, seeded_ids, ulid

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def decode(text: str) -> tuple[int, bytes]:
    """A ULID's milliseconds and entropy, decoded character by character."""
    value = 0
    for char in text:
        value = value * 32 + CROCKFORD.index(char)
    return value >> 80, (value & (2**80 - 1)).to_bytes(10, "big")


def test_ulids_of_known_values() -> None:
    # The time part of the ULID specification's example, and the largest ULID there is.
    assert ulid(1469918176385, bytes(10)) == "01ARYZ6S41" + "0" * 16
    assert ulid(MAX_MS, b"\xff" * 10) == "7" + "Z" * 25
    entropy = bytes(range(10))
    assert decode(ulid(1_796_157_941_316, entropy)) == (1_796_157_941_316, entropy)


def test_seeded_ids_add_the_position_to_the_last_four_bytes_wrapping() -> None:
    entropy = bytes([1, 2, 3, 4, 5, 6, 0xFF, 0xFF, 0xFF, 0xFE])
    ids = seeded_ids(1_700_000_000_000, entropy, 3)
    tails = [decode(i)[1][6:] for i in ids]
    assert tails == [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x00\x00\x00\x01"]
    assert all(decode(i)[1][:6] == entropy[:6] for i in ids)
    assert all(decode(i)[0] == 1_700_000_000_000 for i in ids)


def test_a_seed_header_gives_the_same_ids_every_time() -> None:
    header = "1796157941316," + base64.b64encode(b"0123456789").decode()
    assert event_ids(header, 5, 1) == event_ids(header, 5, 2)
    assert len(set(event_ids(header, 5000, 1))) == 5000
    # As the JS SDK's ulid package encodes them (checked once against it).
    seed = "1796157941316,Vgwc55+HoVdJwA=="
    assert event_ids(seed, 1, 0) == ["01M8SNP9J4AR61SSWZGYGNEJE1"]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "1796157941316",
        "1796157941316,Vgwc55+HoVdJwA==,x",
        "0,Vgwc55+HoVdJwA==",
        "-5,Vgwc55+HoVdJwA==",
        "1_000,Vgwc55+HoVdJwA==",
        " 17,Vgwc55+HoVdJwA==",
        f"{MAX_MS + 1},Vgwc55+HoVdJwA==",
        "1796157941316,Vgwc55+HoVdJwA",  # no padding
        "1796157941316,Vgwc55+HoVdJ",  # 8 bytes
        "1796157941316,AAAAAAAAAAAAAAAA",  # 12 bytes
        "1796157941316,Vgwc55*HoVdJwA==",
    ],
)
def test_seeds_inngest_would_not_use_give_random_ids(header: str | None) -> None:
    assert parse_seed(header) is None
    first, second = event_ids(header, 2, 1_700_000_000_000), event_ids(header, 2, 1)
    assert first != second and len(set(first)) == 2
    assert decode(first[0])[0] == 1_700_000_000_000


def test_random_ids_are_time_ordered() -> None:
    assert max(random_ids(1000, 50)) < min(random_ids(1001, 50))
    assert parse_seed("+17,Vgwc55+HoVdJwA==") == (17, base64.b64decode("Vgwc55+HoVdJwA=="))

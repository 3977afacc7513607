"""Inngest's ids: ULIDs, Inngest's derivation from a seed, runs and the seeds that resend any
stretch of a run, held to Inngest's rules on known inputs and to the stand-in's own
implementation of them."""

from __future__ import annotations

import base64
import itertools
import os

import pytest

from service.events.inngest_ids import (
    MAX_MS,
    RUN_MS,
    RunningIds,
    event_ids,
    follows,
    new_run,
    parse_seed,
    seed_for,
    seeded_ids,
    ulid,
    ulid_parts,
)
from tests.fake_inngest import internal_id

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
    # Inngest's server makes random ids for them too.
    assert internal_id(header, 1) != internal_id(header, 1)


def test_new_runs_are_time_ordered_and_a_signed_seed_is_read_as_go_reads_it() -> None:
    assert max(new_run(50, 1000)) < min(new_run(50, 1001))
    assert parse_seed("+17,Vgwc55+HoVdJwA==") == (17, base64.b64decode("Vgwc55+HoVdJwA=="))


# Inngest's own example of a seed, and the ids its rules give it: the ms and entropy as a ULID,
# the position added to the last four bytes (computed with a ULID library, not this code).
KNOWN = [
    ("1743130137367,eii2YKXRVTJPuA==", 1, "01JQDAE4RQF8MBCR55T5AK4KXS"),
    ("1743130137367,eii2YKXRVTJPuA==", 2, "01JQDAE4RQF8MBCR55T5AK4KXT"),
    ("1743130137367,eii2YKXRVTJPuA==", 5000, "01JQDAE4RQF8MBCR55T5AK4RT0"),
    # The last four bytes wrap without carrying into the others.
    ("1700000000000,AQIDBAUG/////w==", 1, "01HF7YAT00041061050R000000"),
    ("1700000000000,AQIDBAUG/////w==", 2, "01HF7YAT00041061050R000001"),
    (f"{MAX_MS},/////////////w==", 1, "7ZZZZZZZZZZZZZZZZZZW000000"),
]


@pytest.mark.parametrize(("header", "position", "expected"), KNOWN)
def test_seeded_ids_are_inngests_on_known_inputs(header: str, position: int, expected: str) -> None:
    assert event_ids(header, position, 0)[-1] == expected
    assert internal_id(header, position) == expected


def test_the_service_and_the_stand_in_derive_the_same_ids_from_any_seed() -> None:
    for _ in range(200):
        ms = int.from_bytes(os.urandom(6), "big") or 1
        header = f"{ms},{base64.b64encode(os.urandom(10)).decode()}"
        ids = event_ids(header, 20, 0)
        assert ids == [internal_id(header, n) for n in range(1, 21)]


def test_any_stretch_of_a_run_is_sent_under_the_seed_of_its_first_id() -> None:
    # A run whose last four bytes wrap in the middle, as a random seed may.
    run = seeded_ids(1_800_000_000_000, bytes(range(6)) + b"\xff\xff\xff\xfa", 12)
    parts = [ulid_parts(i) for i in run]
    assert all(p is not None for p in parts)
    assert all(follows(a, b) for a, b in itertools.pairwise(parts))  # type: ignore[arg-type]
    for start in range(len(run)):
        seed = seed_for(run[start])
        assert seed is not None
        assert event_ids(seed, len(run) - start, 0) == run[start:]
        assert [internal_id(seed, n) for n in range(1, len(run) - start + 1)] == run[start:]


def test_ids_of_other_runs_or_other_shapes_do_not_follow() -> None:
    a, b = new_run(2, 1_800_000_000_000), new_run(2, 1_800_000_000_000)
    pa, pb = ulid_parts(a[0]), ulid_parts(b[1])
    assert pa is not None and pb is not None
    assert not follows(pa, pb)
    assert ulid_parts("01hf7yat00041061050r000000") is None  # lower case is not how ids are written
    assert ulid_parts("8" + "0" * 25) is None  # beyond 128 bits
    assert ulid_parts("6f1c0d9e-0000-7000-8000-000000000000") is None
    assert seed_for("0" * 26) is None  # time 0: Inngest's server refuses such a seed


def test_a_writers_ids_make_one_run_for_a_while_then_a_new_one() -> None:
    runs = RunningIds()
    first = runs.take(3, 1_800_000_000_000)
    later = runs.take(2, 1_800_000_000_000 + RUN_MS - 1)
    assert event_ids(seed_for(first[0]), 5, 0) == first + later  # one run, one seed
    assert {ulid_parts(i)[0] for i in first + later} == {1_800_000_000_000}  # type: ignore[index]
    renewed = runs.take(1, 1_800_000_000_000 + RUN_MS)
    assert ulid_parts(renewed[0])[0] == 1_800_000_000_000 + RUN_MS  # type: ignore[index]
    assert not follows(ulid_parts(later[-1]), ulid_parts(renewed[0]))  # type: ignore[arg-type]
    went_back = runs.take(1, 1_700_000_000_000)  # the clock went back: a run of its own
    assert ulid_parts(went_back[0])[0] == 1_700_000_000_000  # type: ignore[index]


def test_leading_zeros_in_a_seeds_milliseconds_are_read_as_go_reads_them() -> None:
    padded = "0" * 30 + "1796157941316,Vgwc55+HoVdJwA=="
    assert parse_seed(padded) == parse_seed("1796157941316,Vgwc55+HoVdJwA==")
    assert event_ids(padded, 1, 0) == [internal_id(padded, 1)]
    assert parse_seed("-" + "0" * 20 + "5,Vgwc55+HoVdJwA==") is None  # still negative

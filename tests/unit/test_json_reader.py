"""The one JSON reader: what it refuses, and that it reads every JSON document within the
depth limit exactly as ``json.loads`` does."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.json_reader import MAX_DEPTH, MalformedJson, nests_deeper_than, parse_json


def nested(depth: int, inner: str = "1") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"[" * 5000, f"nested deeper than {MAX_DEPTH} levels"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested deeper"),
        (nested(MAX_DEPTH + 1), "nested deeper"),
        (b"\xef\xbb\xbf{}", "byte order mark"),
        (b'{"a": "\xff"}', "not UTF-8 (byte 7)"),
        ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
        (b'{"a": ', "not valid JSON: Expecting value at line 1 column 7"),
        (b"{} {}", "Extra data"),
        (b"9" * (sys.get_int_max_str_digits() + 1), "integer of more than"),
        (b'{"a": NaN}', "NaN, which is not JSON"),
        (b"[-Infinity]", "-Infinity, which is not JSON"),
        (b"1e999", "too large for a double"),
        (b'{"a": "\\ud800"}', "lone UTF-16 surrogate"),
        (b'["\\udc00\\ud800"]', "lone UTF-16 surrogate"),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "one-too-deep",
        "bom",
        "latin-1",
        "utf-16",
        "truncated",
        "two-documents",
        "huge-integer",
        "nan",
        "infinity",
        "huge-float",
        "lone-high-surrogate",
        "reversed-pair",
    ],
)
def test_refused_with_a_sentence_that_says_why(raw: bytes, says: str) -> None:
    with pytest.raises(MalformedJson) as refused:
        parse_json(raw)
    assert says in str(refused.value)
    assert str(refused.value).startswith("The body ")


def test_the_sentence_names_what_was_read() -> None:
    with pytest.raises(MalformedJson, match=r"^settings\.json is not valid JSON"):
        parse_json(b"{", "settings.json")


@pytest.mark.parametrize(
    "raw",
    [
        nested(MAX_DEPTH),
        b'"\\ud83d\\ude00"',  # a surrogate pair is one character
        b'"\\\\ud800"',  # an escaped backslash, then text
        b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',
        b'[{"a": "\\"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"}]',
        b" \t\n[1.5e300, -0.0, 12345678901234567890]\n",
    ],
    ids=["at-the-limit", "pair", "escaped-backslash", "brackets-in-string", "escaped-quote", "ws"],
)
def test_accepted_as_json_loads_reads_it(raw: bytes) -> None:
    assert parse_json(raw) == json.loads(raw)


def test_brackets_inside_strings_do_not_hide_depth() -> None:
    closers_in_a_string = b"[" * (MAX_DEPTH + 1) + b'"]]]]"' + b"]" * (MAX_DEPTH + 1)
    assert nests_deeper_than(closers_in_a_string, MAX_DEPTH)


def depth_of(document: Any) -> int:
    if isinstance(document, dict):
        return 1 + max(map(depth_of, document.values()), default=0)
    if isinstance(document, list):
        return 1 + max(map(depth_of, document), default=0)
    return 0


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.none() | st.booleans() | st.integers() | FLOATS | TEXT
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=40,
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(document=DOCUMENTS, ascii_only=st.booleans(), wrap=st.integers(0, 2 * MAX_DEPTH))
def test_any_document_is_read_back_or_refused_for_its_depth(
    document: Any, ascii_only: bool, wrap: int
) -> None:
    for _ in range(wrap):
        document = [document]
    raw = json.dumps(document, ensure_ascii=ascii_only).encode()
    if depth_of(document) > MAX_DEPTH:
        with pytest.raises(MalformedJson, match="nested deeper"):
            parse_json(raw)
    else:
        assert parse_json(raw) == json.loads(raw)

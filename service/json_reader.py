"""The one JSON reader of every text from outside: request bodies, Inngest's answers, files.

``parse_json`` takes the bytes and gives the document, or raises ``MalformedJson`` with a
sentence that says what was wrong: not UTF-8, a byte order mark, nested deeper than
``MAX_DEPTH``, not JSON (with the position), a number beyond Python's integer digit limit or
beyond a double, ``NaN``/``Infinity`` (not JSON, and not storable), or a lone UTF-16 surrogate
(which no UTF-8 text can hold, so the row could not be written or sent). Each route turns it
into its own 400 answer; the relay treats such an answer from Inngest as garbage.

The depth is checked before parsing, not around it: the scan is linear in the body's size and
needs no stack, while the parser's own limit is the interpreter's recursion limit, which
depends on how deep the caller already is, builds the nested objects first and fails with a
``RecursionError`` that is not a ``ValueError``. Bodies with few brackets (most of them) skip
the scan: a document with at most ``MAX_DEPTH`` opening brackets cannot be nested deeper. The
scan of a 160 KB array of 1,000 events takes about as long as parsing it (~1 ms).
"""

from __future__ import annotations

import json
import re
import sys
from itertools import accumulate
from typing import Any

from service.errors import InvalidInput

# Far above any real settings document or event (Inngest's own events nest a handful of
# levels), far below what would trouble the parser.
MAX_DEPTH = 64

_BOM = b"\xef\xbb\xbf"
# Everything but brackets goes; brackets become steps of +1 (openers) and -1 (closers).
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
# A \u escape of a UTF-16 surrogate, the only way a JSON text can carry a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class MalformedJson(InvalidInput):
    """A text that is not a JSON document the service can store."""


def parse_json(raw: bytes, what: str = "The body") -> Any:
    """The JSON document in ``raw``; ``MalformedJson`` saying what is wrong otherwise, as a
    sentence about ``what`` (``"The body"``, a file's name)."""
    if raw.startswith(_BOM):
        raise MalformedJson(f"{what} starts with a byte order mark; send UTF-8 without one.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"{what} is not UTF-8 (byte {exc.start}).") from exc
    if nests_deeper_than(raw, MAX_DEPTH):
        raise MalformedJson(f"{what} is nested deeper than {MAX_DEPTH} levels.")
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _Unrepresentable as exc:
        raise MalformedJson(f"{what} holds {exc}.") from exc
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"{what} is not valid JSON: {exc.msg} at {_where(exc)}.") from exc
    except ValueError as exc:
        # The only other ValueError json.loads raises: an integer beyond the digit limit.
        limit = sys.get_int_max_str_digits()
        raise MalformedJson(f"{what} holds an integer of more than {limit} digits.") from exc
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(document):
        raise MalformedJson(f"{what} holds a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape).")
    return document


def nests_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether the arrays and objects of ``raw`` nest deeper than ``limit`` (brackets inside
    strings do not count; a text that is not JSON gets some answer, and the parser refuses it)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    # Outside the strings: with the escaped backslashes, then the escaped quotes, taken out
    # (left to right, as a parser pairs them), every other piece between quotes. Splitting
    # took a third less time than a regular expression that matches the strings.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(unescaped.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEPS.__getitem__, brackets)), default=0) > limit


class _Unrepresentable(Exception):
    """A value the parser met that JSON or a double cannot hold (raised from its hooks)."""


def _refuse_constant(name: str) -> Any:
    raise _Unrepresentable(f"{name}, which is not JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise _Unrepresentable(f"a number too large for a double ({literal[:20]})")
    return value


def _where(exc: json.JSONDecodeError) -> str:
    return f"line {exc.lineno} column {exc.colno}"


def _has_lone_surrogate(document: Any) -> bool:
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False

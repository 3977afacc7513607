"""The caller's W3C trace context (``traceparent``, ``tracestate``), kept with its events and
sent along with them to Inngest, which links the function runs to the caller's trace.

A ``traceparent`` that the W3C Trace Context rules do not accept is ignored, never refused: the
events are stored without a trace context, as a tracing system would start a new trace. A
``tracestate`` is kept only beside a valid ``traceparent``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from multidict import MultiMapping

__all__ = ["TRACEPARENT", "TRACESTATE", "TraceContext", "trace_context"]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

# version-traceid-parentid-flags, lower-case hex; a later version may add fields after a dash.
_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?",
    re.DOTALL,
)
# Printable ASCII; what a tracing system must pass on is at least 512 characters of it, and
# what it drops to stay within that: members longer than 128 characters, then from the end.
_TRACESTATE = re.compile(r"[ -~]+")
TRACESTATE_MAX = 512
_LONG_MEMBER = 128


@dataclass(frozen=True, slots=True)
class TraceContext:
    """A valid ``traceparent`` (version 00) and the ``tracestate`` beside it, if any."""

    traceparent: str
    tracestate: str | None = None

    def headers(self) -> dict[str, str]:
        """The context as request headers."""
        if self.tracestate is None:
            return {TRACEPARENT: self.traceparent}
        return {TRACEPARENT: self.traceparent, TRACESTATE: self.tracestate}


def parse_traceparent(value: str) -> str | None:
    """``value`` as a version-00 ``traceparent``, or None where the W3C rules ignore it: not
    the format, version ``ff``, an all-zero trace or parent id, or version 00 with more."""
    match = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if match is None:
        return None
    version, trace, parent, flags, rest = match.group("version", "trace", "parent", "flags", "rest")
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace == "0" * 32 or parent == "0" * 16:
        return None
    # A later version is read as far as version 00 goes, and passed on as version 00.
    return f"00-{trace}-{parent}-{flags}"


def trace_context(headers: MultiMapping[str]) -> TraceContext | None:
    """The trace context of a request's ``headers``, or None when it has none that is valid
    (none, or more than one ``traceparent``, is no context)."""
    carried = headers.getall(TRACEPARENT, [])
    if len(carried) != 1:
        return None
    traceparent = parse_traceparent(carried[0])
    if traceparent is None:
        return None
    return TraceContext(traceparent, _tracestate(headers.getall(TRACESTATE, [])))


def _tracestate(values: list[str]) -> str | None:
    """The request's ``tracestate`` headers as one (several are one list, joined by commas),
    cut to ``TRACESTATE_MAX`` characters as the W3C rules say; None if none or not ASCII."""
    members = [m.strip(" \t") for value in values for m in value.split(",")]
    members = [m for m in members if m]
    if not members or not all(_TRACESTATE.fullmatch(m) for m in members):
        return None
    if len(",".join(members)) > TRACESTATE_MAX:
        members = [m for m in members if len(m) <= _LONG_MEMBER]
    while members and len(",".join(members)) > TRACESTATE_MAX:
        members.pop()
    return ",".join(members) or None

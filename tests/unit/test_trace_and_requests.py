"""The caller's trace context as the W3C rules read it, and the requests a claim is cut into."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from service.events.inngest_ids import seed_for, seeded_ids
from service.events.trace import TRACESTATE_MAX, TraceContext, trace_context
from service.relay.requests import request_headers, requests_of
from service.store.deliveries import ClaimedRow

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def context(*pairs: tuple[str, str]) -> TraceContext | None:
    return trace_context(CIMultiDict(pairs))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        PARENT.upper(),  # hex is lower-case
        PARENT.replace("00-", "ff-", 1),  # version ff is invalid
        PARENT + "-more",  # version 00 has four fields exactly
        "00-" + "0" * 32 + "-b7ad6b7169203331-01",  # all-zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-01",  # all-zero parent id
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
        PARENT.replace("00-", "01-", 1) + "x",  # a later version: more only after a dash
    ],
)
def test_a_traceparent_the_w3c_rules_refuse_is_ignored(value: str) -> None:
    assert context(("traceparent", value), ("tracestate", "a=1")) is None


def test_a_valid_traceparent_and_its_tracestate() -> None:
    assert context(("traceparent", PARENT)) == TraceContext(PARENT)
    later = PARENT.replace("00-", "cc-", 1) + "-what-comes-later"
    assert context(("traceparent", later)) == TraceContext(PARENT)  # passed on as version 00
    assert context(("traceparent", PARENT), ("traceparent", PARENT)) is None  # two: invalid
    # Several tracestate headers are one list.
    both = context(("traceparent", PARENT), ("tracestate", "a=1, b=2"), ("tracestate", "c=3"))
    assert both == TraceContext(PARENT, "a=1,b=2,c=3")
    assert context(("traceparent", PARENT), ("tracestate", "a=\x01")) == TraceContext(PARENT)


def test_a_long_tracestate_loses_long_members_then_the_last_ones() -> None:
    long_member = "big=" + "x" * 200
    members = [f"k{n}=" + "v" * 40 for n in range(20)]
    state = ",".join([members[0], long_member, *members[1:]])
    kept = context(("traceparent", PARENT), ("tracestate", state))
    assert kept is not None and kept.tracestate is not None
    assert len(kept.tracestate) <= TRACESTATE_MAX
    assert "big=" not in kept.tracestate
    assert kept.tracestate == ",".join(members[: len(kept.tracestate.split(","))])


def row(seq: int, inngest_id: str | None, **more: str) -> ClaimedRow:
    return ClaimedRow(seq, f"e{seq}", b'{"name":"x"}', 0, 0, inngest_id=inngest_id, **more)


def test_a_run_that_wraps_its_last_four_bytes_is_still_one_request() -> None:
    run = seeded_ids(1_800_000_000_000, bytes(6) + b"\xff\xff\xff\xfc", 8)  # wraps after 3
    rows = [row(n, inngest_id) for n, inngest_id in enumerate(run)]
    [request] = list(requests_of(rows, 500, 2**20))
    assert [r.inngest_id for r in request] == run
    assert request_headers(request)["x-inngest-event-id-seed"] == seed_for(run[0])


def test_requests_keep_to_one_run_environment_and_trace_context() -> None:
    first, second = seeded_ids(1, bytes(10), 4), seeded_ids(2, bytes(10), 2)
    rows = [
        row(1, first[0]),
        row(2, second[0]),
        row(3, first[1]),
        row(4, first[2], traceparent=PARENT),
        row(5, second[1]),
        row(6, None),
        row(7, first[3]),
        row(8, None, env="branch"),
        row(9, None),
    ]
    requests = [[r.seq for r in request] for request in requests_of(rows, 500, 2**20)]
    # first[3] does not follow first[1] (first[2] went in another trace context).
    assert requests == [[1, 3], [7], [2, 5], [4], [6, 9], [8]]

"""What one request to Inngest may carry, and the headers it goes with.

A request goes to one Inngest environment (``x-inngest-env``) in one trace context (the
caller's ``traceparent`` and ``tracestate``, which Inngest links the function runs to), and
carries a stretch of one run of Inngest ids: the seed header (``inngest_ids.seed_for`` of its
first event) makes Inngest give every event of it the id the service answered. Rows written
before the service decided Inngest's ids (``inngest_id`` NULL) go together without a seed, as
they always went. Within those limits a request holds as many events as the batch limits let
it: a claim of many runs, or of many trace contexts, costs as many requests.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from service.events.inngest_ids import SEED_HEADER, follows, seed_for, ulid_parts
from service.events.trace import TRACEPARENT, TRACESTATE
from service.relay.inngest_client import ENV_HEADER
from service.store.deliveries import ClaimedRow

__all__ = ["request_headers", "requests_of", "split_by_size"]

# Rows of one environment and trace context; then, for rows with an Inngest id, its time and
# the first six bytes of its entropy (which every id of a run shares).
_Group = tuple[str | None, str | None, str | None, int | None, int | None]


def requests_of(
    rows: Sequence[ClaimedRow], max_count: int, max_bytes: int
) -> Iterator[list[ClaimedRow]]:
    """``rows`` cut into requests: each of one environment, one trace context and one
    stretch of a run (ids that follow each other), at most ``max_count`` events and
    ``max_bytes`` bytes; the groups in the order their first rows came."""
    for group in _runs(rows):
        yield from split_by_size(group, max_count, max_bytes)


def _runs(rows: Sequence[ClaimedRow]) -> list[list[ClaimedRow]]:
    groups: dict[_Group, list[tuple[int, ClaimedRow]]] = {}
    for row in rows:
        parts = None if row.inngest_id is None else ulid_parts(row.inngest_id)
        context = (row.env, row.traceparent, row.tracestate)
        if parts is None:
            groups.setdefault((*context, None, None), []).append((0, row))
        else:
            ms, entropy = parts
            groups.setdefault((*context, ms, entropy >> 32), []).append((entropy, row))
    runs: list[list[ClaimedRow]] = []
    for (*_context, run_ms, _head), members in groups.items():
        if run_ms is None:
            runs.append([row for _, row in members])
            continue
        # A claim may hold a run's rows in another order than the run's (concurrent writers);
        # in the run's order, any gap (a row delivered, buried or not claimed) ends a stretch.
        members.sort(key=lambda member: member[0])
        stretches = [[members[0]]]
        for previous, member in itertools.pairwise(members):
            if follows((run_ms, previous[0]), (run_ms, member[0])):
                stretches[-1].append(member)
            else:
                stretches.append([member])
        # A run whose last four bytes wrapped sorts its end first: the two make one stretch.
        if len(stretches) > 1 and follows((run_ms, stretches[-1][-1][0]), (run_ms, members[0][0])):
            stretches[0] = stretches.pop() + stretches[0]
        runs.extend([row for _, row in stretch] for stretch in stretches)
    return runs


def split_by_size(
    rows: Sequence[ClaimedRow], max_count: int, max_bytes: int
) -> Iterator[list[ClaimedRow]]:
    """Consecutive requests of at most ``max_count`` events and ``max_bytes`` bytes (an event
    larger than ``max_bytes`` travels alone: Inngest decides whether it is too large)."""
    chunk: list[ClaimedRow] = []
    size = 2  # the array's brackets
    for row in rows:
        row_size = len(row.payload) + 1
        if chunk and (len(chunk) >= max_count or size + row_size > max_bytes):
            yield chunk
            chunk, size = [], 2
        chunk.append(row)
        size += row_size
    if chunk:
        yield chunk


def request_headers(chunk: Sequence[ClaimedRow]) -> dict[str, str]:
    """The headers of the request that carries ``chunk`` (rows of one ``requests_of``
    request, or a part of one that starts anywhere in it): its environment, its trace context
    and the seed under which its first row gets its Inngest id and the others theirs."""
    first = chunk[0]
    headers: dict[str, str] = {}
    if first.env is not None:
        headers[ENV_HEADER] = first.env
    if first.traceparent is not None:
        headers[TRACEPARENT] = first.traceparent
        if first.tracestate is not None:
            headers[TRACESTATE] = first.tracestate
    seed = None if first.inngest_id is None else seed_for(first.inngest_id)
    if seed is not None:
        headers[SEED_HEADER] = seed
    return headers

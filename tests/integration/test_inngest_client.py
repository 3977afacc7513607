"""The Event API client against a real fake Inngest server, and the backoff policy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest

from service.config import InngestSettings
from service.relay.inngest_client import (
    InngestClient,
    SendResult,
    SendStatus,
    user_agent,
)
from tests.fake_inngest import Answer, FakeInngest, running_fake
from tests.processes import free_port

KEY = "test-key-Zq8xV3mK7pLw2NbR"  # distinctive, so a leak into an error text is unmistakable


def event(n: int, **data: object) -> bytes:
    return json.dumps(
        {
            "id": f"evt-{n}",
            "name": "openapi/app.sync",
            "v": "1",
            "ts": 1763900000000 + n,
            "data": {"n": n, **data},
        },
        separators=(",", ":"),
    ).encode()


BATCH = [event(i) for i in range(5)]


@pytest.fixture
async def fake() -> AsyncIterator[FakeInngest]:
    async with running_fake(event_key=KEY) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def client_for(origin: str, session: aiohttp.ClientSession, key: str = KEY) -> InngestClient:
    settings = InngestSettings(origin=origin, event_key=key, dev_mode=False, request_timeout=1.0)
    return InngestClient(settings, session)


@pytest.fixture
def inngest(fake: FakeInngest, session: aiohttp.ClientSession) -> InngestClient:
    return client_for(fake.origin, session)


def assert_no_key(result: SendResult) -> None:
    assert KEY not in result.error
    assert KEY[:12] not in result.error


# -- success ---------------------------------------------------------------------------------


async def test_200_accepts_the_whole_batch(inngest: InngestClient, fake: FakeInngest) -> None:
    result = await inngest.send(BATCH)
    assert result == SendResult(SendStatus.OK, 5, None, "", None, 200)
    assert fake.received_ids == [f"evt-{i}" for i in range(5)]


async def test_body_is_the_events_exactly_as_given(
    inngest: InngestClient, fake: FakeInngest
) -> None:
    odd = b'{ "id":"evt-x" , "name":"openapi/app.sync","data":{"k":"\\u00e9"} }'
    await inngest.send([BATCH[0], odd])
    request = fake.requests[0]
    assert request.body == b"[" + BATCH[0] + b"," + odd + b"]"
    assert request.path == f"/e/{KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == user_agent()
    assert user_agent().startswith("service/") and "aiohttp/" in user_agent()


async def test_200_served_as_text_plain_is_ok(inngest: InngestClient, fake: FakeInngest) -> None:
    fake.enqueue(Answer.ok(content_type="text/plain; charset=utf-8"))
    assert (await inngest.send(BATCH)).status is SendStatus.OK


async def test_200_with_a_garbage_body_is_still_ok(
    inngest: InngestClient, fake: FakeInngest
) -> None:
    fake.enqueue(Answer.raw(200, b"<html>fine</html>", content_type="text/html"))
    result = await inngest.send(BATCH)
    assert (result.status, result.accepted) == (SendStatus.OK, 5)


async def test_empty_batch_sends_nothing(inngest: InngestClient, fake: FakeInngest) -> None:
    assert (await inngest.send([])).status is SendStatus.OK
    assert fake.requests == []


# -- 400 ---------------------------------------------------------------------------------------


async def test_partial_400_reports_the_accepted_prefix(
    inngest: InngestClient, fake: FakeInngest
) -> None:
    fake.enqueue(Answer.partial(2, "timestamp is after Jan 1, 2100"))
    result = await inngest.send(BATCH)
    assert result.status is SendStatus.PARTIAL
    assert (result.accepted, result.failed_index, result.http_status) == (2, 2, 400)
    assert "timestamp is after Jan 1, 2100" in result.error
    assert fake.received_ids == ["evt-0", "evt-1"]
    assert_no_key(result)


async def test_400_with_empty_id_means_none_accepted(
    inngest: InngestClient, fake: FakeInngest
) -> None:
    fake.enqueue(Answer.none_accepted("event name is reserved for internal use: inngest/x"))
    result = await inngest.send(BATCH)
    assert (result.status, result.accepted, result.failed_index) == (SendStatus.PARTIAL, 0, 0)
    assert "reserved" in result.error


async def test_poison_event_is_refused_like_the_real_server(
    session: aiohttp.ClientSession,
) -> None:
    async with running_fake(event_key=KEY, poison_marker="POISON") as fake:
        batch = [event(0), event(1), event(2, bad="POISON"), event(3)]
        result = await client_for(fake.origin, session).send(batch)
        assert (result.status, result.accepted, result.failed_index) == (SendStatus.PARTIAL, 2, 2)
        # The open-source server labels its JSON text/plain; the client parses it regardless.
        assert fake.requests[0].status == 400
        assert fake.received_ids == ["evt-0", "evt-1"]


async def test_400_size_error_is_too_large_with_prefix(
    inngest: InngestClient, fake: FakeInngest
) -> None:
    fake.enqueue(Answer.too_large(index=3))
    result = await inngest.send(BATCH)
    assert (result.status, result.accepted, result.failed_index) == (SendStatus.TOO_LARGE, 3, None)
    assert "max size" in result.error


async def test_400_event_count_error_is_too_large(
    inngest: InngestClient, fake: FakeInngest
) -> None:
    fake.enqueue(Answer.partial(4, "Cannot have more than 5000 events in a batch"))
    result = await inngest.send(BATCH)
    assert (result.status, result.accepted) == (SendStatus.TOO_LARGE, 4)


@pytest.mark.parametrize(
    "body",
    [
        b"Bad Request",
        b"",
        b'{"error":"no ids here"}',
        b'{"ids":"nope"}',
        b"\xff\xfe",
        b'{"ids": ' + b"[" * 50_000,  # garbage nested past any parser's recursion
        b'{"ids": [' + b"9" * 10_000 + b"]}",
    ],
)
async def test_400_not_in_inngest_shape_is_transient(
    inngest: InngestClient, fake: FakeInngest, body: bytes
) -> None:
    for batch in (BATCH, BATCH[:1]):
        fake.enqueue(Answer.raw(400, body, content_type="text/plain"))
        result = await inngest.send(batch)
        assert (result.status, result.accepted, result.failed_index) == (
            SendStatus.TRANSIENT,
            0,
            None,
        )
        assert result.http_status == 400


async def test_400_plain_text_size_error_from_a_proxy_is_too_large(
    inngest: InngestClient, fake: FakeInngest
) -> None:
    fake.enqueue(Answer.raw(400, b"Request body too large", content_type="text/plain"))
    result = await inngest.send(BATCH)
    assert (result.status, result.accepted) == (SendStatus.TOO_LARGE, 0)


# -- other statuses ---------------------------------------------------------------------------


async def test_413_is_too_large(inngest: InngestClient, fake: FakeInngest) -> None:
    fake.enqueue(Answer.payload_too_large())
    result = await inngest.send(BATCH)
    assert (result.status, result.accepted, result.http_status) == (SendStatus.TOO_LARGE, 0, 413)


async def test_wrong_key_is_unauthorized(fake: FakeInngest, session: aiohttp.ClientSession) -> None:
    result = await client_for(fake.origin, session, key="wrong-key-0123456789").send(BATCH)
    assert (result.status, result.accepted, result.http_status) == (
        SendStatus.UNAUTHORIZED,
        0,
        401,
    )
    assert "wrong-key-0123456789" not in result.error
    assert fake.received == []


async def test_403_is_unauthorized(inngest: InngestClient, fake: FakeInngest) -> None:
    fake.enqueue(Answer.forbidden())
    assert (await inngest.send(BATCH)).status is SendStatus.UNAUTHORIZED


async def test_429_with_retry_after_seconds(inngest: InngestClient, fake: FakeInngest) -> None:
    fake.enqueue(Answer.rate_limited("7"))
    result = await inngest.send(BATCH)
    assert (result.status, result.retry_after, result.http_status) == (
        SendStatus.RATE_LIMITED,
        7.0,
        429,
    )
    assert fake.received == []


async def test_429_with_retry_after_http_date(inngest: InngestClient, fake: FakeInngest) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    fake.enqueue(Answer.rate_limited(format_datetime(when, usegmt=True)))
    result = await inngest.send(BATCH)
    assert result.status is SendStatus.RATE_LIMITED
    assert result.retry_after is not None and 115 <= result.retry_after <= 120


async def test_429_without_retry_after(inngest: InngestClient, fake: FakeInngest) -> None:
    fake.enqueue(Answer.rate_limited(None))
    result = await inngest.send(BATCH)
    assert (result.status, result.retry_after) == (SendStatus.RATE_LIMITED, None)


@pytest.mark.parametrize("status", [500, 502, 503, 404, 302])
async def test_server_errors_and_unknown_statuses_are_transient(
    inngest: InngestClient, fake: FakeInngest, status: int
) -> None:
    headers = {"Location": "http://127.0.0.1:1/elsewhere"} if status == 302 else {}
    fake.enqueue(Answer.raw(status, b'{"error":"boom"}', headers=headers))
    result = await inngest.send(BATCH)
    assert (result.status, result.accepted, result.http_status) == (
        SendStatus.TRANSIENT,
        0,
        status,
    )
    assert_no_key(result)
    assert len(fake.requests) == 1  # a redirect is not followed


# -- no answer ------------------------------------------------------------------------------


async def test_slow_answer_beyond_the_timeout_is_transient(
    inngest: InngestClient, fake: FakeInngest
) -> None:
    fake.enqueue(Answer.slow(30.0))
    result = await inngest.send(BATCH)
    assert (result.status, result.accepted, result.http_status) == (
        SendStatus.TRANSIENT,
        0,
        None,
    )
    assert "1s" in result.error
    assert_no_key(result)
    # Inngest may still have stored the batch: that is why the relay resends under the same ids.
    assert fake.received_ids == [f"evt-{i}" for i in range(5)]


async def test_connection_reset_is_transient(inngest: InngestClient, fake: FakeInngest) -> None:
    fake.enqueue(Answer.connection_reset())
    result = await inngest.send(BATCH)
    assert (result.status, result.http_status) == (SendStatus.TRANSIENT, None)
    assert result.error
    assert_no_key(result)
    assert fake.statuses == [None]
    # The next request gets through on a fresh connection.
    assert (await inngest.send(BATCH)).status is SendStatus.OK


async def test_connection_refused_is_transient(session: aiohttp.ClientSession) -> None:
    port = free_port()  # nobody listens on it
    result = await client_for(f"http://127.0.0.1:{port}", session).send(BATCH)
    assert (result.status, result.http_status) == (SendStatus.TRANSIENT, None)
    assert "Cannot connect" in result.error or "Connect" in result.error
    assert_no_key(result)


async def test_invalid_url_error_does_not_leak_the_key(session: aiohttp.ClientSession) -> None:
    result = await client_for("http://[::1", session).send(BATCH)
    assert result.status is SendStatus.TRANSIENT
    assert_no_key(result)


async def test_the_key_never_appears_in_any_error(
    inngest: InngestClient, fake: FakeInngest
) -> None:
    echo = f"key {KEY} at http://x/e/{KEY} refused".encode()
    answers = [
        Answer.partial(1, f"bad event sent with {KEY}"),
        Answer.none_accepted(),
        Answer.too_large(),
        Answer.raw(400, echo),
        Answer.unauthorized(),
        Answer.forbidden(),
        Answer.payload_too_large(),
        Answer.rate_limited("3"),
        Answer.server_error(),
        Answer.raw(503, echo, content_type="text/plain"),
        Answer.slow(30.0),
        Answer.connection_reset(),
    ]
    fake.enqueue(*answers)
    for _ in answers:
        result = await inngest.send(BATCH)
        assert result.status is not SendStatus.OK
        assert result.error
        assert_no_key(result)


# -- Retry-After parsing --------------------------------------------------------------------


# -- the fake itself ------------------------------------------------------------------------


async def test_fake_wait_for_and_policy(session: aiohttp.ClientSession) -> None:
    def every_other_fails(index: int, events: list[dict[str, object]]) -> Answer | None:
        return Answer.server_error(503) if index % 2 == 0 else None

    async with running_fake(event_key=KEY, policy=every_other_fails) as fake:
        inngest = client_for(fake.origin, session)
        assert (await inngest.send(BATCH[:2])).status is SendStatus.TRANSIENT
        assert (await inngest.send(BATCH[:2])).status is SendStatus.OK
        await fake.wait_for(2, timeout=1.0)
        with pytest.raises(TimeoutError, match="stored 2 events, expected 3"):
            await fake.wait_for(3, timeout=0.05)
        assert fake.statuses == [503, 200]
        assert [len(r.events) for r in fake.requests] == [2, 2]

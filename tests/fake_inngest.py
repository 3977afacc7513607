"""A real little aiohttp server that stands in for Inngest's Event API in tests (no mocks).

It listens on 127.0.0.1 with an ephemeral port, takes ``POST /e/{key}`` like the open-source
server, records every request, and answers from a script, a policy, or its default::

    async with running_fake(event_key="test-key") as fake:
        fake.enqueue(Answer.server_error(), Answer.ok())
        settings = InngestSettings(origin=fake.origin, event_key="test-key", dev_mode=False)
        ...
        await fake.wait_for(3)
        assert fake.received_ids == [...]

Which answer a request gets, in order: 401 if the key is not the configured one; the next
scripted answer (``script``/``enqueue``); the ``policy`` callable, if it returns an answer;
the poison rule (a batch holding an event whose ``data`` contains ``poison_marker`` is refused
with a partial 400, the events before it accepted, as the real server does); ``default``.

``received`` holds the events Inngest would have *stored*: all of a 2xx batch, the accepted
prefix of a 400, nothing of other answers, except that an answer built with ``stored=True``
(a slow answer, or a reset after the events went in) stores the batch even though the client
may never learn it. Duplicates are kept, as Inngest keeps them (it deduplicates by id only when
scheduling functions), so compare ``set(fake.received_ids)`` when retries are in play.

Each stored event gets an internal id as Inngest's server makes them (``internal_ids``, beside
``received``): from the request's ``x-inngest-event-id-seed`` and the event's 1-based position,
else at random; an event without an ``id`` is stored with its internal id as its ``id``. The
answers' ``ids`` are those internal ids, and ``GET /v1/events/{internal_id}`` finds the event,
as Inngest's REST API does. The ULIDs are made with a ULID library, not with the service's
code, so the service's derivation is checked against an implementation of its own.

Everything bound to an event loop is created in ``start``, so a fake works in whichever loop
the test runs in (pytest-asyncio and pytest-aiohttp give each test its own).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from ulid import ULID

Event = dict[str, Any]

# What the open-source server sends with its answers: no content type of its own, so Go
# sniffs the JSON and labels it text/plain.
GO_CONTENT_TYPE = "text/plain; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"
BAD_BODY_ERROR = "Request body must contain an event object or an array of event objects"
SEED_HEADER = "x-inngest-event-id-seed"
_GO_INT64 = re.compile(r"[+-]?[0-9]+")


def internal_id(seed_header: str | None, position: int) -> str:
    """The internal id Inngest's server gives the event at 1-based ``position`` of a request
    with ``seed_header``: the seed's milliseconds, and its 10 bytes of entropy with the
    position added to the big-endian uint32 of the last four. A seed it cannot use (missing,
    not two comma-separated parts, milliseconds that are not a positive int64, entropy that is
    not 10 bytes of padded standard base64, a time beyond a ULID's) gives a random id."""
    seed = _go_seed(seed_header or "")
    if seed is not None:
        millis, entropy = seed
        tail = (int.from_bytes(entropy[6:], "big") + position) % 2**32
        if millis < 2**48:
            return str(
                ULID.from_bytes(millis.to_bytes(6, "big") + entropy[:6] + tail.to_bytes(4, "big"))
            )
    return str(ULID())


def _go_seed(value: str) -> tuple[int, bytes] | None:
    parts = value.split(",")
    if value == "" or len(parts) != 2 or not _GO_INT64.fullmatch(parts[0]):
        return None
    millis = int(parts[0])
    if not 0 < millis < 2**63:
        return None
    try:
        entropy = base64.b64decode(parts[1], validate=True)
    except ValueError:
        return None
    return (millis, entropy) if len(entropy) == 10 else None


@dataclass(frozen=True)
class Answer:
    """One scripted answer. Build them with the class methods."""

    status: int = 200
    accept: int | None = None  # 200/400 with ids: events accepted as a prefix (None: all)
    error: str = ""  # the "error" field of a generated 400 body
    body: bytes | None = None  # a literal body instead of the generated {"ids", "status"} one
    content_type: str = JSON_CONTENT_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (cut short when the fake closes)
    reset: bool = False  # close the connection with a TCP reset instead of answering
    stored: bool = False  # store the whole batch even though the answer is lost or late

    @classmethod
    def ok(cls, *, content_type: str = JSON_CONTENT_TYPE, delay: float = 0.0) -> Answer:
        """200 ``{"ids": [...], "status": 200}``, one internal id per event."""
        return cls(200, content_type=content_type, delay=delay)

    @classmethod
    def partial(cls, index: int, error: str = "event refused") -> Answer:
        """400 with the ids of events ``[:index]`` (``[""]`` when ``index`` is 0) and ``error``."""
        return cls(400, accept=index, error=error, content_type=GO_CONTENT_TYPE)

    @classmethod
    def none_accepted(cls, error: str = "event refused") -> Answer:
        """400 ``{"ids": [""], "status": 400, "error": ...}``: nothing went in."""
        return cls.partial(0, error)

    @classmethod
    def too_large(cls, index: int = 0, size: int = 3_145_729) -> Answer:
        """400 as the open-source server answers an event above its absolute maximum."""
        error = f"Event is over the max size: Max 3145728 bytes / Size {size} bytes"
        return cls.partial(index, error)

    @classmethod
    def unauthorized(cls) -> Answer:
        return cls.raw(401, b'{"error":"Event key not found","status":401}')

    @classmethod
    def forbidden(cls) -> Answer:
        return cls.raw(403, b'{"error":"Forbidden","status":403}')

    @classmethod
    def payload_too_large(cls) -> Answer:
        return cls.raw(413, b"Request Entity Too Large", content_type="text/plain")

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1") -> Answer:
        """429, with ``Retry-After`` (delta-seconds or an HTTP-date) unless None."""
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        return cls.raw(429, b'{"error":"rate limited","status":429}', headers=headers)

    @classmethod
    def server_error(cls, status: int = 500) -> Answer:
        return cls.raw(status, b'{"error":"internal error","status":%d}' % status)

    @classmethod
    def slow(cls, seconds: float, then: Answer | None = None, *, stored: bool = True) -> Answer:
        """``then`` (default 200) after ``seconds``; by default the events are stored at once,
        like an Inngest that took the batch but whose answer came too late."""
        base = then or cls.ok()
        return dataclasses.replace(base, delay=seconds, stored=stored)

    @classmethod
    def connection_reset(cls, *, stored: bool = False) -> Answer:
        """Reset the TCP connection without answering (``stored``: after taking the batch)."""
        return cls(reset=True, stored=stored)

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes,
        *,
        content_type: str = JSON_CONTENT_TYPE,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Any status with a literal body."""
        return cls(status, body=body, content_type=content_type, headers=dict(headers or {}))


Policy = Callable[[int, list[Event]], "Answer | None"]


@dataclass
class RequestRecord:
    """One request as the fake saw it, and how it answered (``status`` None: reset)."""

    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    events: list[Event]
    status: int | None = None


class FakeInngest:
    """The fake Event API: create, ``await start()``, use, ``await close()``.

    ``running_fake`` does the starting and closing for you.
    """

    def __init__(
        self,
        *,
        event_key: str | None = None,
        default: Answer | None = None,
        policy: Policy | None = None,
        poison_marker: str | None = None,
    ) -> None:
        self.event_key = event_key  # None: any key is accepted, as by the dev server
        self.default = default or Answer.ok()
        self.policy = policy
        self.poison_marker = poison_marker
        self.script: deque[Answer] = deque()
        self.received: list[Event] = []
        self.internal_ids: list[str] = []  # of ``received``, one each
        self.most_at_once = 0  # the most requests it was answering at the same time
        self._answering = 0
        self.requests: list[RequestRecord] = []
        self.origin = ""
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._stored: asyncio.Event | None = None  # set whenever events are stored

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> str:
        """Listen on 127.0.0.1 with an ephemeral port; return the origin ``http://127.0.0.1:P``."""
        self._closing = asyncio.Event()
        self._stored = asyncio.Event()
        app = web.Application()
        app.router.add_post("/e/{key}", self._handle)
        app.router.add_get("/v1/events/{internal_id}", self._event)
        # Short shutdown: handlers still sleeping in a slow answer are woken by _closing.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.origin = f"http://127.0.0.1:{port}"
        return self.origin

    async def close(self) -> None:
        """Stop listening; pending slow answers are cut short."""
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- scripting and inspection ----------------------------------------------------------

    def enqueue(self, *answers: Answer) -> None:
        """Answer the next requests with ``answers``, in order, then fall back to the rules."""
        self.script.extend(answers)

    def url(self, key: str | None = None) -> str:
        """The endpoint for ``key`` (default: the configured key, or ``"test"``)."""
        return f"{self.origin}/e/{key or self.event_key or 'test'}"

    @property
    def received_ids(self) -> list[str]:
        """The ``id`` of every stored event, in order, duplicates included."""
        return [str(event.get("id", "")) for event in self.received]

    @property
    def statuses(self) -> list[int | None]:
        """The status of every answer so far (None for a reset)."""
        return [record.status for record in self.requests]

    async def wait_for(self, count: int, timeout: float = 60.0) -> None:
        """Wait until at least ``count`` events are stored; TimeoutError after ``timeout``."""
        stored = self._stored
        if stored is None:
            raise RuntimeError("the fake is not started")
        try:
            async with asyncio.timeout(timeout):
                while len(self.received) < count:
                    stored.clear()  # no await between the check and the clear: no lost wake-up
                    await stored.wait()
        except TimeoutError:
            raise TimeoutError(
                f"fake Inngest stored {len(self.received)} events, expected {count}"
            ) from None

    # -- the handler ---------------------------------------------------------------------

    def _choose(self, index: int, events: list[Event]) -> Answer:
        if self.script:
            return self.script.popleft()
        if self.policy is not None:
            answer = self.policy(index, events)
            if answer is not None:
                return answer
        if self.poison_marker is not None:
            for position, event in enumerate(events):
                if self.poison_marker in json.dumps(event.get("data")):
                    return Answer.partial(position, f"poison event at index {position}")
        return self.default

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._answering += 1
        self.most_at_once = max(self.most_at_once, self._answering)
        try:
            return await self._answer(request)
        finally:
            self._answering -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        events, parse_error = _parse(body)
        headers = CIMultiDictProxy(CIMultiDict(request.headers))
        record = RequestRecord(request.path, headers, body, events)
        index = len(self.requests)
        self.requests.append(record)

        if self.event_key is not None and request.match_info["key"] != self.event_key:
            answer = Answer.unauthorized()
        elif parse_error:
            answer = Answer(400, accept=0, error=BAD_BODY_ERROR, content_type=GO_CONTENT_TYPE)
        else:
            answer = self._choose(index, events)

        accepted = _accepted_count(answer, len(events))
        seed = request.headers.get(SEED_HEADER)
        ids = [internal_id(seed, position) for position in range(1, len(events) + 1)]
        stored = len(events) if answer.stored else accepted
        for event, event_id in zip(events[:stored], ids, strict=False):
            self.received.append(event if event.get("id") else {**event, "id": event_id})
            self.internal_ids.append(event_id)
        if self._stored is not None:
            self._stored.set()

        if answer.reset:
            reset_connection(request)
            # The connection is gone; stop the handler without writing anything.
            raise asyncio.CancelledError

        if answer.delay > 0:
            assert self._closing is not None
            with suppress(TimeoutError):  # the delay ran out: answer now
                await asyncio.wait_for(self._closing.wait(), answer.delay)

        record.status = answer.status
        body_out = answer.body
        if body_out is None:
            document: dict[str, Any] = {"ids": ids[:accepted] or [""], "status": answer.status}
            if answer.status >= 400:
                document["error"] = answer.error
            body_out = json.dumps(document).encode()
        out_headers = CIMultiDict(answer.headers)
        out_headers["Content-Type"] = answer.content_type
        return web.Response(status=answer.status, body=body_out, headers=out_headers)

    async def _event(self, request: web.Request) -> web.Response:
        """An event by its internal id, as Inngest's REST API answers ``GET /v1/events/{id}``
        (the last stored under that id: a repeated seed stores the event again)."""
        wanted = request.match_info["internal_id"]
        for event_id, event in zip(
            reversed(self.internal_ids), reversed(self.received), strict=True
        ):
            if event_id == wanted:
                return web.json_response({"data": {"internal_id": event_id, **event}})
        return web.json_response({"error": "event not found"}, status=404)


def _parse(body: bytes) -> tuple[list[Event], bool]:
    """The events of a body (an array or one object), and whether it failed to parse."""
    try:
        document = json.loads(body)
    except ValueError:
        return [], True
    if isinstance(document, dict):
        return [document], False
    if isinstance(document, list) and all(isinstance(item, dict) for item in document):
        return document, False
    return [], True


def _accepted_count(answer: Answer, count: int) -> int:
    if 200 <= answer.status < 300 and not answer.reset:
        return count if answer.accept is None else min(answer.accept, count)
    if answer.status == 400 and answer.body is None:
        return min(answer.accept or 0, count)
    return 0


def reset_connection(request: web.Request) -> None:
    """Abort the connection with an RST (SO_LINGER 0) rather than a polite FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@asynccontextmanager
async def running_fake(
    *,
    event_key: str | None = None,
    default: Answer | None = None,
    policy: Policy | None = None,
    poison_marker: str | None = None,
) -> AsyncIterator[FakeInngest]:
    """A started ``FakeInngest``, closed on exit."""
    fake = FakeInngest(
        event_key=event_key, default=default, policy=policy, poison_marker=poison_marker
    )
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()

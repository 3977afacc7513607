"""Random requests at every route, as a hostile client sends them: no answer is a 5xx but 503,
and the service still answers ``/health`` afterwards.

Unlike ``test_fuzz.py``, whose requests come from the OpenAPI spec, these come from anywhere:
random bytes, JSON nested thousands deep or larger than the body limit, wrong types, random
headers, cookies (the session cookie's name among them), bearer tokens, ``Idempotency-Key``s
and methods. The run is seeded and bounded (``HOSTILE_EXAMPLES``, default 300: a few seconds);
set it higher for a longer hunt:
``HOSTILE_EXAMPLES=20000 pytest tests/integration/test_hostile_requests.py``.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from service.config import EventApiSettings, Settings
from tests.conftest import TOKEN, make_settings

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "300"))
EVENT_KEY = "hostile-event-key"
ROUTES = [
    "/api",
    "/api/settings",
    f"/e/{EVENT_KEY}",
    "/e/wrong-key",
    "/health",
    "/ready",
    "/metrics",
    "/openapi.yaml",
]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "BREW"]
TIMEOUT = 10.0
AUTHORIZED = f"Bearer {TOKEN}"


@dataclass
class Request:
    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        body = self.body[:60] + (b"..." if len(self.body) > 60 else b"")
        return f"{self.method} {self.path} {self.headers} {body!r} ({len(self.body)} bytes)"


# Header text as http.client sends it: latin-1, no line breaks, no leading or trailing space.
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
).map(str.strip)
TOKEN_CHARS = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"),
    min_size=1,
    max_size=20,
)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)


def _dumps(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    JSON_VALUES.map(_dumps),
    st.integers(1, 20_000).map(lambda n: b"[" * n),
    st.integers(1, 5_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(60, 100).map(lambda n: b"[" * n + b"]" * n),
    st.integers(60_000, 70_000).map(lambda n: b'{"x": "' + b"a" * n + b'"}'),
    st.integers(4_000, 6_000).map(lambda n: b'{"n": ' + b"7" * n + b"}"),
    st.sampled_from([b"\xef\xbb\xbf{}", b'{"a": "\\ud800"}', b"NaN", b'{"a": 1e400}']),
)
COOKIES = st.lists(
    st.tuples(st.sampled_from(["AIOHTTP_SESSION", "session", "x"]) | TOKEN_CHARS, HEADER_TEXT),
    max_size=3,
).map(lambda pairs: "; ".join(f"{name}={value}" for name, value in pairs))
AUTHORIZATION = st.sampled_from([AUTHORIZED, "Bearer ", "Basic x", ""]) | HEADER_TEXT
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Authorization": AUTHORIZATION,
        "Cookie": COOKIES,
        "Idempotency-Key": HEADER_TEXT,
        "Content-Type": st.sampled_from(["application/json", "text/plain", ""]) | HEADER_TEXT,
        "Accept": HEADER_TEXT,
        "X-Random": HEADER_TEXT,
        "x-inngest-event-id-seed": HEADER_TEXT
        | st.binary(min_size=10, max_size=10).map(
            lambda b: f"1796157941316,{base64.b64encode(b).decode()}"
        ),
        "x-inngest-env": HEADER_TEXT,
    },
)
ANYTHING = st.builds(
    Request,
    method=st.sampled_from(METHODS),
    path=st.sampled_from(ROUTES) | TOKEN_CHARS.map(lambda s: f"/{s}") | st.just("/api?x=%ff"),
    body=BODIES,
    headers=HEADERS,
)
# Half the requests get past authentication to the handlers that parse bodies: a random
# request rarely carries the token, and a bad body behind a 401 tests nothing.
AIMED = st.builds(
    lambda route, body, headers: Request(*route, body, {**headers, "Authorization": AUTHORIZED}),
    route=st.sampled_from(
        [("POST", "/api"), ("PUT", "/api/settings"), ("POST", f"/e/{EVENT_KEY}")]
    ),
    body=BODIES,
    headers=HEADERS,
)
REQUESTS = AIMED | ANYTHING


def send(url: str, request: Request) -> int:
    """The status of ``request`` sent to ``url`` over a connection of its own."""
    conn = http.client.HTTPConnection(urlsplit(url).netloc, timeout=TIMEOUT)
    try:
        conn.request(request.method, request.path, body=request.body, headers=request.headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.fixture
def backend() -> str:
    """The HTTP layer under test is the same on both backends (see test_fuzz.py)."""
    return "sqlite"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The service with an Event API key, so that aimed requests reach its handler."""
    return make_settings(database_url, event_api=EventApiSettings(keys=(EVENT_KEY,)))


def test_no_random_request_gets_a_server_error_and_health_answers_after(
    live_url: str,
) -> None:
    answered: dict[int, int] = {}

    @examples(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=REQUESTS)
    def hunt(request: Request) -> None:
        status = send(live_url, request)
        answered[status] = answered.get(status, 0) + 1
        assert status < 500 or status == 503, f"{status} for {request}"

    hunt()
    assert send(live_url, Request("GET", "/health", b"")) == 200
    accepted = send(live_url, Request("POST", "/api", b"{}", {"Authorization": AUTHORIZED}))
    assert accepted == 200
    assert send(live_url, Request("POST", f"/e/{EVENT_KEY}", b'{"name": "app/after"}')) == 200
    # The hunt reached the handlers, not only aiohttp's parser: some requests got through.
    assert answered.get(200, 0) > 0 and answered.get(400, 0) > 0, answered

"""OpenTelemetry spans, recorded by a real OpenTelemetry SDK: a write's span is a child of the
caller's, a request to Inngest starts a trace of its own linked to it, on each backend; and
without an SDK nothing is made at all."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence

import pytest
from aiohttp.test_utils import TestClient
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy.ext.asyncio import AsyncEngine

from service import send_event
from service.config import EventApiSettings, Settings
from service.http.app import create_app
from service.telemetry import DELIVERY, WRITE
from tests.conftest import bearer
from tests.fake_inngest import Answer, running_fake
from tests.relay_harness import relay_settings, running_relay, settled

KEY = "app-event-key-0123456789"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


class Recorder(SpanProcessor):
    """Keeps the spans that end in the test's own thread while it listens; the others (of
    servers other tests run in threads of their own) are dropped. (A process has one tracer
    provider: once set, it stays for the tests that run after these.)"""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] | None = None
        self.thread = 0

    def on_start(self, span: object, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self.spans is not None and threading.get_ident() == self.thread:
            self.spans.append(span)


_RECORDER = Recorder()


@pytest.fixture
def spans() -> Iterator[list[ReadableSpan]]:
    """The spans that end during the test, recorded by the SDK."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(_RECORDER)
        trace.set_tracer_provider(provider)
    _RECORDER.spans, _RECORDER.thread = [], threading.get_ident()
    try:
        yield _RECORDER.spans
    finally:
        _RECORDER.spans = None


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


@pytest.fixture
async def api(aiohttp_client, settings: Settings) -> TestClient:  # type: ignore[no-untyped-def]
    app_settings = settings.replace(event_api=EventApiSettings(keys=(KEY,)))
    return await aiohttp_client(create_app(app_settings))


async def test_a_write_is_a_child_of_the_callers_span_and_its_delivery_links_to_it(
    api: TestClient, settings: Settings, engine: AsyncEngine, spans: list[ReadableSpan]
) -> None:
    events = [{"name": "app/traced"}, {"name": "app/traced"}]
    response = await api.post(
        f"/e/{KEY}", data=json.dumps(events), headers={"traceparent": TRACEPARENT}
    )
    assert response.status == 200
    response = await api.post("/api", headers=bearer())  # no trace context: a root span
    assert response.status == 200
    [traced, untraced] = named(spans, WRITE)
    assert traced.kind is SpanKind.PRODUCER
    assert traced.parent is not None and f"{traced.parent.span_id:016x}" == CALLER_SPAN
    assert f"{traced.context.trace_id:032x}" == TRACE_ID
    assert traced.attributes == {
        "outbox.route": "POST /e/{key}",
        "messaging.batch.message_count": 2,
    }
    assert untraced.parent is None and untraced.attributes["outbox.route"] == "POST /api"

    async with running_fake() as fake:
        fake.enqueue(Answer.server_error())
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: settled(engine))
    deliveries = named(spans, DELIVERY)
    # Two requests (one trace context each), one of them failed once and sent again.
    assert sorted(span.attributes["inngest.outcome"] for span in deliveries) == [
        "ok",
        "ok",
        "transient",
    ]
    for span in deliveries:
        assert span.kind is SpanKind.CLIENT and span.parent is None  # a trace of its own
        assert f"{span.context.trace_id:032x}" != TRACE_ID
    [failed] = [span for span in deliveries if span.attributes["inngest.outcome"] != "ok"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["http.response.status_code"] == 500
    linked = [span for span in deliveries if span.links]
    assert linked and all(span.attributes["messaging.batch.message_count"] == 2 for span in linked)
    [link] = linked[-1].links
    assert linked[-1].attributes["inngest.outcome"] == "ok"
    assert (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") == (
        TRACE_ID,
        CALLER_SPAN,
    )


async def test_send_event_writes_inside_the_apps_own_span(
    engine: AsyncEngine, spans: list[ReadableSpan]
) -> None:
    tracer = trace.get_tracer("the-app")
    with tracer.start_as_current_span("create order") as app_span:
        async with engine.begin() as conn:
            await send_event(conn, "app/order.created", {"id": 1})
    [write] = named(spans, WRITE)
    assert write.parent is not None
    assert write.parent.span_id == app_span.get_span_context().span_id
    assert write.attributes["outbox.route"] == "send_event"


def test_without_an_sdk_opentelemetry_is_not_even_loaded() -> None:
    """The service's processes pay nothing for spans nobody collects."""
    code = (
        "import sys; import service.http.app, service.relay.loop, service.store;"
        " from service import send_event;"
        " print('opentelemetry' in ' '.join(sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "False"

"""OpenTelemetry spans: one for each write of events to the outbox, one for each request to
Inngest, when the process has an OpenTelemetry SDK configured (``opentelemetry-instrument
service serve``, or an app's own setup before it calls ``send_event``).

Otherwise nothing happens, at no cost: this module asks OpenTelemetry's API for a tracer only
when something else in the process has loaded that API, and only when a real tracer provider
has been set. A write's span is a child of the caller's span (the request's ``traceparent``,
or the app's current span for ``send_event``); a request to Inngest happens later, so its span
starts a trace of its own, linked to the caller's span of the events it carries.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from service.events.trace import TraceContext

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["delivery_span", "record_delivery", "write_span"]

TRACER_NAME = "service.outbox"
WRITE = "outbox write"
DELIVERY = "inngest send"


def _tracer() -> Tracer | None:
    """The tracer of a configured SDK, or None (no OpenTelemetry loaded, or none set up)."""
    api = sys.modules.get("opentelemetry.trace")
    if api is None:
        return None
    provider = api.get_tracer_provider()
    if isinstance(provider, api.ProxyTracerProvider | api.NoOpTracerProvider):
        return None
    tracer: Tracer = provider.get_tracer(TRACER_NAME)
    return tracer


def _context_of(trace: TraceContext) -> Any:
    """The OpenTelemetry context of a stored W3C trace context."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(trace.headers())


@contextmanager
def write_span(
    route: str, events: int, caller: TraceContext | None = None
) -> Iterator[Span | None]:
    """A span around a write of ``events`` events by ``route`` (``POST /api``,
    ``send_event``, ...), a child of ``caller``'s span (None: of the current one)."""
    tracer = _tracer()
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    parent = None if caller is None else _context_of(caller)
    attributes: dict[str, str | int] = {
        "outbox.route": route,
        "messaging.batch.message_count": events,
    }
    with tracer.start_as_current_span(
        WRITE, context=parent, kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield span


@contextmanager
def delivery_span(events: int, headers: Mapping[str, str]) -> Iterator[Span | None]:
    """A span around one request of ``events`` events to Inngest with ``headers``, in a trace
    of its own, linked to the span of the caller the events came from (when they carry one)."""
    tracer = _tracer()
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import Link, SpanKind, get_current_span

    from service.events.trace import TRACEPARENT, TRACESTATE

    links = []
    if TRACEPARENT in headers:
        caller = TraceContext(headers[TRACEPARENT], headers.get(TRACESTATE))
        links.append(Link(get_current_span(_context_of(caller)).get_span_context()))
    attributes: dict[str, str | int] = {
        "messaging.system": "inngest",
        "messaging.batch.message_count": events,
    }
    with tracer.start_as_current_span(
        DELIVERY,
        context=_empty_context(),
        kind=SpanKind.CLIENT,
        links=links,
        attributes=attributes,
    ) as span:
        yield span


def _empty_context() -> Any:
    """A context without a span: what a new trace starts from."""
    from opentelemetry.context import Context

    return Context()


def record_delivery(span: Span | None, outcome: str, http_status: int | None, error: str) -> None:
    """What Inngest answered, on the span of its request (None: nothing to record on)."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("inngest.outcome", outcome)
    if http_status is not None:
        span.set_attribute("http.response.status_code", http_status)
    if outcome != "ok":
        span.set_status(Status(StatusCode.ERROR, error or outcome))

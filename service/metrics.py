"""Prometheus collectors, one registry per process (no module-level state, so tests and
several apps in one process never share counters)."""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from service.errors import DatabaseUnavailable
from service.store.outbox_stats import gauge_snapshot

DELAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
SEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
CONTENT_TYPE = CONTENT_TYPE_LATEST
GAUGE_MAX_AGE = 5.0  # seconds a scrape may reuse the outbox gauges' last reading


class Metrics:
    """Every collector of the service, registered in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter(
            "outbox_events_accepted", "Events written to the outbox.", registry=r
        )
        self.delivered = Counter("outbox_events_delivered", "Events Inngest accepted.", registry=r)
        self.buried = Counter("outbox_events_buried", "Events moved to dead.", registry=r)
        self.attempts = Counter(
            "relay_delivery_attempts",
            "Requests to Inngest's Event API, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.send_seconds = Histogram(
            "relay_batch_send_seconds",
            "Duration of one request to Inngest.",
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self.delivery_delay = Histogram(
            "outbox_delivery_delay_seconds",
            "From acceptance of an event to its delivery.",
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.outage = Gauge(
            "relay_outage",
            "1 while the relay sees an outage of Inngest's Event API and only probes, else 0.",
            registry=r,
        )
        self.http_requests = HttpRequestCounter()
        r.register(self.http_requests)
        self.pending = Gauge("outbox_pending_rows", "Rows waiting for delivery.", registry=r)
        self.dead = Gauge("outbox_dead_rows", "Rows that failed for good.", registry=r)
        self.oldest_pending = Gauge(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest pending row (0 when none).",
            registry=r,
        )
        self._gauges_read_at = 0.0

    async def refresh_outbox_gauges(self, engine: AsyncEngine) -> None:
        """Read the outbox gauges from the database, at most once every few seconds."""
        if time.monotonic() - self._gauges_read_at < GAUGE_MAX_AGE:
            return
        snapshot = await gauge_snapshot(engine)
        self.pending.set(snapshot.pending)
        self.dead.set(snapshot.dead)
        self.oldest_pending.set(snapshot.oldest_pending_age)
        self._gauges_read_at = time.monotonic()

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

    async def page(self, engine: AsyncEngine) -> web.Response:
        """The answer to a scrape; the outbox gauges are read at most every few seconds."""
        with contextlib.suppress(DatabaseUnavailable):  # the counters are still worth a scrape
            await self.refresh_outbox_gauges(engine)
        return web.Response(body=self.exposition(), headers={"Content-Type": CONTENT_TYPE})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpRequestCounter(Collector):
    """``http_requests_total`` by route and status.

    Counted in a plain ``collections.Counter`` and turned into a metric family only when
    scraped: a labelled prometheus Counter takes a lock and a lookup on every request, which
    is a measurable share of the hot path.
    """

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "http_requests", "HTTP requests, by route and status.", labels=["route", "status"]
        )
        for (route, status), count in sorted(self.counts.items()):
            family.add_metric([route, status], count)
        yield family


def http_metrics_middleware(metrics: Metrics) -> Middleware:
    """A middleware counting requests by route (its template, not the raw path) and status."""
    counts = metrics.http_requests.counts

    @web.middleware
    async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        try:
            response = await handler(request)
        except web.HTTPException as error:
            counts[route, str(error.status)] += 1
            raise
        counts[route, str(response.status)] += 1
        return response

    return count_requests

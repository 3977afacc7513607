"""The servers of a bench and how it talks to them over HTTP: the service (``service serve``,
``service relay``) with the bench's credentials, ``bench.receiver`` standing in for Inngest,
the helpers started as ``python -m bench.NAME``, and ``serve_app``, how those helpers serve.

Everything listens on and talks to 127.0.0.1 only (``HOST``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.processes import HOST, BenchError, Processes, clean_env, free_port, log_tail, wait_until

TOKEN = "bench-internal-token-0123456789abcdef"
SECRET = "bench-session-secret-0123456789abcdefghijklmnop"
EVENT_KEY = "bench-event-key"


def service_env(
    database_url: str, inngest_origin: str | None = None, **extra: str
) -> dict[str, str]:
    """The environment of a ``service`` process: database, token, WARNING logs, Inngest."""
    env = clean_env(
        DATABASE_URL=database_url,
        SESSION_SECRET=SECRET,
        INTERNAL_API_TOKENS=TOKEN,
        HOST=HOST,
    )
    if inngest_origin is not None:
        env.update(INNGEST_EVENT_API_BASE_URL=inngest_origin, INNGEST_EVENT_KEY=EVENT_KEY)
    env.update(extra)
    return env


@dataclass
class Server:
    """A running HTTP process of a bench and its base URL."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


async def start_http(
    procs: Processes,
    name: str,
    module: str,
    args: Sequence[str],
    env: Mapping[str, str],
    port: int | None = None,
) -> Server:
    """Start ``python -m MODULE ARGS --port P`` and wait for its ``/health``."""
    port = port or free_port()
    process = procs.python(name, module, [*args, "--port", str(port)], env)
    return await answering(procs, name, process, port)


async def answering(
    procs: Processes, name: str, process: subprocess.Popen[bytes], port: int
) -> Server:
    """The server of ``process`` once its ``/health`` on ``port`` answers."""
    server = Server(process, port, procs.log_of(process))
    try:
        await wait_http(f"{server.url}/health", process)
    except BenchError as exc:
        raise BenchError(f"{name}: {exc}\n{log_tail(server.log)}") from None
    return server


async def start_service(
    procs: Processes,
    name: str,
    database_url: str,
    *,
    relay: bool,
    inngest_origin: str | None = None,
    **extra: str,
) -> Server:
    """``service serve`` (with its in-process relay unless ``relay`` is false)."""
    args = ["serve"] if relay else ["serve", "--no-relay"]
    env = service_env(database_url, inngest_origin, **extra)
    return await start_http(procs, name, "service", args, env)


def start_relay(
    procs: Processes, name: str, database_url: str, inngest_origin: str, **extra: str
) -> subprocess.Popen[bytes]:
    """``service relay`` without its metrics server (RELAY_METRICS_PORT=0, unless ``extra``
    names one)."""
    env = service_env(database_url, inngest_origin, **{"RELAY_METRICS_PORT": "0", **extra})
    return procs.python(name, "service", ["relay"], env)


async def start_watched_relay(
    procs: Processes, name: str, database_url: str, inngest_origin: str, **extra: str
) -> Server:
    """``service relay`` with its ``/metrics`` on a port of its own, once its ``/health``
    answers (the relay is about to claim)."""
    port = free_port()
    relay = start_relay(
        procs, name, database_url, inngest_origin, **{**extra, "RELAY_METRICS_PORT": str(port)}
    )
    return await answering(procs, name, relay, port)


@dataclass
class Receiver(Server):
    """A running ``bench.receiver``: answers Inngest's 200 with ids (or its faults), counts
    and timestamps."""

    async def stats(self) -> dict[str, int]:
        """Requests, accepted events, faults answered and ``up_ms``, when it began to listen."""
        result: dict[str, int] = await get_json(f"{self.url}/stats")
        return result

    async def arrivals(self) -> dict[str, tuple[int, float]]:
        """First arrival of each event id: ``id -> (event ts ms, arrival ms)``."""
        records = (await get_json(f"{self.url}/records", timeout=60))["records"]
        first: dict[str, tuple[int, float]] = {}
        for event_id, ts, arrival in records:
            first.setdefault(event_id, (int(ts), float(arrival)))
        return first


async def start_receiver(
    procs: Processes,
    name: str,
    *,
    port: int | None = None,
    delay_ms: float = 0.0,
    record: bool = False,
    options: Sequence[str] = (),
) -> Receiver:
    """Start a receiver; ``record`` keeps (id, ts, arrival) of every event for ``arrivals``;
    ``options`` are more of its flags (its faults)."""
    args = ["--delay-ms", str(delay_ms), "--key", EVENT_KEY, *options]
    args += ["--record"] if record else []
    server = await start_http(procs, name, "bench.receiver", args, clean_env(), port)
    return Receiver(server.process, server.port, server.log)


async def get_text(url: str, timeout: float = 10.0) -> str:
    """GET ``url``, which must answer 2xx, and return its body."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(url) as response,
    ):
        response.raise_for_status()
        return await response.text()


async def get_json(url: str, timeout: float = 10.0) -> Any:
    """GET ``url`` and decode its JSON body."""
    return json.loads(await get_text(url, timeout))


async def relay_attempts(relays: Iterable[Server]) -> dict[str, int]:
    """Requests to the Event API by outcome, summed over ``relays`` (watched ones) from their
    ``relay_delivery_attempts`` counter: refused connections too, which no receiver sees."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: Counter[str] = Counter()
    for relay in relays:
        for family in text_string_to_metric_families(await get_text(f"{relay.url}/metrics")):
            if family.name != "relay_delivery_attempts":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels.get("outcome", "?")] += int(sample.value)
    return dict(counts)


async def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until ``url`` answers 200; BenchError if the process exits first."""

    async def answers() -> bool:
        if process.poll() is not None:
            raise BenchError(f"{url}: the process exited with {process.returncode}")
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
                session.get(url) as response,
            ):
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    await wait_until(answers, timeout, f"{url} answering", interval=0.1)


def bearer() -> tuple[str, str]:
    """The credential header of the bench's internal caller."""
    return "Authorization", f"Bearer {TOKEN}"


async def post_api(
    url: str, count: int, body: bytes, credential: tuple[str, str] | None = None
) -> list[str]:
    """``count`` sequential POSTs with the bench token (or the ``credential`` header), which
    must all answer 200; return the ids answered (a warm-up, and a check that the target is up
    and takes the credential)."""
    name, value = credential or bearer()
    headers = {name: value, "Content-Type": "application/json"}
    ids = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for _ in range(count):
            async with session.post(url, data=body, headers=headers) as response:
                text = await response.text()
                if response.status != 200:
                    raise BenchError(f"POST {url}: {response.status} {text}")
                ids.append(str(json.loads(text).get("id", "")))
    return ids


async def wait_arrivals(
    receiver: Receiver, ids: Iterable[str], timeout: float
) -> tuple[dict[str, tuple[int, float]], float]:
    """Wait until the receiver has seen every one of ``ids`` or ``timeout`` passed; return
    its arrivals and the seconds waited (the caller counts what is missing)."""
    wanted = set(ids)
    start = time.monotonic()
    arrivals: dict[str, tuple[int, float]] = {}
    while True:
        if (await receiver.stats())["events"] >= len(wanted):
            arrivals = await receiver.arrivals()
            if wanted <= arrivals.keys():
                break
        if time.monotonic() - start > timeout:
            arrivals = await receiver.arrivals()
            break
        await asyncio.sleep(0.1)
    return arrivals, time.monotonic() - start


def serve_app(app: Any, port: int) -> None:
    """Run a helper's aiohttp app the way ``service serve`` runs its own: on 127.0.0.1, no
    access log, no banner, a graceful stop on SIGTERM."""
    from aiohttp import web

    web.run_app(
        app,
        host=HOST,
        port=port,
        access_log=None,
        print=None,
        shutdown_timeout=10,
        handle_signals=True,
    )

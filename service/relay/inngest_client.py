"""The Inngest Event API client: post a batch of events, classify the answer.

``InngestClient.send`` never raises for anything Inngest or the network does; it returns a
``SendResult`` that the relay maps onto its delivery rules (``deliverer``: deliver, bury, split,
pause, back off). The event key is part of the URL, so every error text is built from the redacted
endpoint and scrubbed of the key before it leaves this module.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version

import aiohttp

from service.config import InngestSettings
from service.json_reader import MalformedJson, parse_json

ENV_HEADER = "x-inngest-env"
MAX_ERROR_CHARS = 500
"""Server error texts are cut to this length: they end up in ``last_error`` and in logs."""

# What Inngest says when a batch or an event is too big. The open-source server answers 400
# with "Event is over the max size: Max N bytes / Size M bytes" for an event above its absolute
# maximum and "Cannot have more than 5000 events in a batch" past the count limit (the events
# before the offending one are already in); proxies and plans with smaller limits say "too
# large" or "exceeds". All of them mean "send it in smaller pieces", not "this event is bad".
_SIZE_MARKERS = (
    "too large",
    "max size",
    "maximum size",
    "exceeds",
    "cannot have more than",
)


class SendStatus(enum.Enum):
    """How Inngest answered a batch, in the terms of the delivery rules."""

    OK = "ok"  # every event accepted
    PARTIAL = "partial"  # a prefix accepted, the next event refused for good (400)
    TOO_LARGE = "too_large"  # the batch or an event is too big: split and resend the rest
    UNAUTHORIZED = "unauthorized"  # the key is wrong: back off, bury nothing
    RATE_LIMITED = "rate_limited"  # 429: slow down for its Retry-After, bury nothing
    TRANSIENT = "transient"  # 5xx, timeout, reset, garbage: retry later


@dataclass(frozen=True)
class SendResult:
    """The outcome of one POST of a batch."""

    status: SendStatus
    accepted: int  # events accepted, as a prefix of the batch
    failed_index: int | None = None  # PARTIAL: the index of the refused event
    error: str = ""  # why, for ``last_error`` and logs; never contains the event key
    retry_after: float | None = None  # seconds asked for by a Retry-After header
    http_status: int | None = None  # None when no answer came (timeout, connection error)


@functools.cache
def user_agent() -> str:
    """The User-Agent sent to Inngest: this service's name and version, and aiohttp's."""
    try:
        own = version("service")
    except PackageNotFoundError:
        own = "0.0.0+unknown"
    return f"service/{own} (outbox relay) aiohttp/{aiohttp.__version__}"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP-date; None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP-date is always GMT; obsolete forms may omit it
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _is_size_error(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _SIZE_MARKERS)


def _accepted_prefix(ids: list[object]) -> int:
    """How many leading entries of ``ids`` are real ids (``[""]`` means none was accepted)."""
    count = 0
    for item in ids:
        if not isinstance(item, str) or not item:
            break
        count += 1
    return count


class InngestClient:
    """Posts batches of already-serialized events to ``settings.endpoint``.

    The ``aiohttp.ClientSession`` belongs to the caller, who opens and closes it; one client
    may be shared by concurrent relay workers.
    """

    def __init__(self, settings: InngestSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout)
        self._headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": user_agent(),
        }

    async def send(
        self, payloads: Sequence[bytes], headers: Mapping[str, str] | None = None
    ) -> SendResult:
        """POST ``payloads`` (each one JSON object, UTF-8) as one JSON array with the request's
        own ``headers`` (its environment, trace context and id seed), and classify it."""
        if not payloads:
            # Nothing to say: an empty array would cost a round trip and prove nothing.
            return SendResult(SendStatus.OK, accepted=0)
        # The rows already hold serialized events; joining the bytes keeps them exactly as
        # stored (and skips a decode and encode of every event).
        body = b"[" + b",".join(payloads) + b"]"
        where = self._settings.redacted_endpoint
        try:
            async with self._session.post(
                self._settings.endpoint,
                data=body,
                headers={**self._headers, **headers} if headers else self._headers,
                timeout=self._timeout,
                # A redirect would replay the key to wherever Location points, and aiohttp
                # turns a redirected POST into a GET; a 3xx is simply not an answer.
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                return self._classify(
                    response.status, raw, response.headers.get("Retry-After"), len(payloads)
                )
        except TimeoutError:
            # aiohttp raises TimeoutError (asyncio's alias) for ClientTimeout, and its
            # ServerTimeoutError is one too; caught before ClientError on purpose.
            return SendResult(
                SendStatus.TRANSIENT,
                accepted=0,
                error=f"POST {where}: no answer within {self._settings.request_timeout:g}s",
            )
        except (aiohttp.ClientError, OSError) as exc:
            detail = self._scrub(str(exc)) or "no detail"
            return SendResult(
                SendStatus.TRANSIENT,
                accepted=0,
                error=f"POST {where}: {type(exc).__name__}: {detail}",
            )

    def _classify(
        self, status: int, raw: bytes, retry_after_header: str | None, count: int
    ) -> SendResult:
        """Map a status and body onto a ``SendResult``."""
        if 200 <= status < 300:
            # Inngest acknowledged the batch; its body (ids we do not use) may be anything.
            return SendResult(SendStatus.OK, accepted=count, http_status=status)
        where = self._settings.redacted_endpoint
        retry_after = parse_retry_after(retry_after_header)
        server_text = self._server_error(raw)
        prefix = f"HTTP {status} from {where}"
        error = f"{prefix}: {server_text}" if server_text else prefix

        if status == 400:
            kind, accepted, failed = self._classify_400(raw, server_text, count)
            return SendResult(kind, accepted, failed, error, retry_after, status)
        if status == 413:
            kind = SendStatus.TOO_LARGE
        elif status in (401, 403):
            kind = SendStatus.UNAUTHORIZED
        elif status == 429:
            kind = SendStatus.RATE_LIMITED
        else:
            # 5xx, 3xx, 404 and anything else we do not know: nothing was (knowingly) refused
            # for good, so retry; RELAY_GIVE_UP_AFTER bounds how long.
            kind = SendStatus.TRANSIENT
        return SendResult(kind, 0, None, error, retry_after, status)

    @staticmethod
    def _classify_400(
        raw: bytes, server_text: str, count: int
    ) -> tuple[SendStatus, int, int | None]:
        """Status, accepted prefix and failed index of a 400 answer."""
        # The open-source server sends its 400 without application/json, so the content type
        # says nothing: try the body as JSON regardless.
        try:
            document = parse_json(raw)
        except MalformedJson:
            document = None
        ids = document.get("ids") if isinstance(document, dict) else None
        if not isinstance(ids, list):
            if _is_size_error(server_text):
                # A proxy refusing the whole body: nothing went in, send smaller pieces.
                return SendStatus.TOO_LARGE, 0, None
            # A 400 that is not Inngest's shape (a proxy, a gateway, garbage) tells us neither
            # what went in nor which event is at fault. Burying on such an answer could lose
            # good events, so treat it as transient: the retry either succeeds or the rows go
            # dead after RELAY_GIVE_UP_AFTER with this error recorded.
            return SendStatus.TRANSIENT, 0, None
        accepted = min(_accepted_prefix(ids), count)
        if _is_size_error(server_text):
            # The events before the big one (or the first 5,000) are in; the relay splits the
            # rest, and buries an event that is too large on its own.
            return SendStatus.TOO_LARGE, accepted, None
        return SendStatus.PARTIAL, accepted, accepted if accepted < count else None

    def _server_error(self, raw: bytes) -> str:
        """The server's error text: the ``error`` field of a JSON body, else the body itself."""
        text = raw.decode("utf-8", "replace").strip()
        try:
            document = parse_json(raw)
        except MalformedJson:
            document = None
        if isinstance(document, dict):
            message = document.get("error")
            text = message.strip() if isinstance(message, str) else ""
        # Scrub before cutting, so a key straddling the cut cannot leave a fragment behind.
        return " ".join(self._scrub(text).split())[:MAX_ERROR_CHARS]

    def _scrub(self, text: str) -> str:
        """``text`` with the endpoint and the event key masked."""
        settings = self._settings
        text = text.replace(settings.endpoint, settings.redacted_endpoint)
        key = settings.event_key
        # In dev mode a key of a few characters is a placeholder ("dev"), not a secret, and
        # masking it would mangle ordinary words; any other key is masked wherever it shows.
        if key and (len(key) >= 8 or not settings.dev_mode):
            text = text.replace(key, "***")
        return text

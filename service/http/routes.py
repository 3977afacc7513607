"""The route handlers: ``POST /api``, the app settings, health, readiness, metrics, the spec."""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

from aiohttp import web

from service.errors import InvalidInput, SchemaNotCurrent
from service.events.ids import now_ms
from service.events.payload import new_event_from_json
from service.events.trace import trace_context
from service.http.app_sessions.lookup import SessionsUnavailable
from service.http.auth import Caller, Unauthenticated, authenticate, is_internal
from service.http.group_commit import accepted_body
from service.http.keys import (
    APP_SESSIONS,
    ENGINE,
    METRICS,
    NEW_WORK,
    SESSIONS,
    SETTINGS,
    WRITER,
)
from service.http.problems import problem
from service.json_reader import MalformedJson, parse_json
from service.store import deliveries, settings_store
from service.store.backend import backend_of
from service.store.engine import reading, transaction
from service.store.idempotency import validate_key
from service.store.schema_version import ensure_at_head
from service.telemetry import write_span

RETRY_AFTER = {"Retry-After": "1"}


async def _caller(request: web.Request) -> Caller:
    try:
        app = request.app
        tokens = app[SETTINGS].internal_api_tokens
        return await authenticate(request, tokens, app[SESSIONS], app[APP_SESSIONS])
    except SessionsUnavailable as exc:
        raise problem(503, "Service Unavailable", str(exc), headers=RETRY_AFTER) from exc
    except Unauthenticated as exc:
        challenge = 'Bearer realm="service"'
        if exc.bearer_error:
            challenge += f', error="{exc.bearer_error}"'
        raise problem(
            401, "Unauthorized", exc.detail, headers={"WWW-Authenticate": challenge}
        ) from exc


async def _json_body(request: web.Request, *, required: bool) -> dict[str, Any] | None:
    """The request's JSON object; None for an empty optional body; 400/413 otherwise."""
    raw = await request.read()  # aiohttp answers 413 beyond client_max_size
    if not raw.strip():
        if required:
            raise problem(400, "Bad Request", "The body must be a JSON object.")
        return None
    try:
        body = parse_json(raw)
    except MalformedJson as exc:
        raise problem(400, "Bad Request", str(exc)) from exc
    if not isinstance(body, dict):
        raise problem(400, "Bad Request", "The body must be a JSON object.")
    return body


async def post_sync(request: web.Request) -> web.Response:
    """Enqueue an ``openapi/app.sync`` event; answer once its row has committed."""
    accepted_at = now_ms()
    caller = await _caller(request)
    key = request.headers.get("Idempotency-Key")
    try:
        idempotency = None if key is None else (caller.identity, validate_key(key))
    except InvalidInput as exc:
        raise problem(400, "Bad Request", str(exc)) from exc
    await _json_body(request, required=False)
    trace = trace_context(request.headers)
    with write_span("POST /api", 1, trace):
        answer = await request.app[WRITER].submit_sync(caller.user, accepted_at, idempotency, trace)
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return web.Response(text=answer.body, content_type="application/json", headers=headers)


async def _internal_caller(request: web.Request) -> Caller:
    caller = await _caller(request)
    if not is_internal(caller):
        raise problem(403, "Forbidden", "The app settings take an internal token.")
    return caller


async def get_settings(request: web.Request) -> web.Response:
    """The app settings document."""
    await _internal_caller(request)
    async with reading(request.app[ENGINE]) as conn:
        document = await settings_store.read_json(conn)
    return web.Response(text=document, content_type="application/json")


async def put_settings(request: web.Request) -> web.Response:
    """Replace the settings and enqueue their sync event in the same transaction."""
    accepted_at = now_ms()
    await _internal_caller(request)
    document = await _json_body(request, required=True)
    trace = trace_context(request.headers)
    with write_span("PUT /api/settings", 1, trace):
        async with transaction(request.app[ENGINE]) as conn:
            try:
                stored = await settings_store.replace(conn, document, accepted_at)
            except InvalidInput as exc:
                raise problem(400, "Bad Request", str(exc)) from exc
            event = new_event_from_json(stored, None, accepted_at, trace=trace)
            await deliveries.add(conn, [event])
    request.app[METRICS].accepted.inc()
    request.app[NEW_WORK].set()
    return web.Response(text=accepted_body(event.id), content_type="application/json")


async def health(_request: web.Request) -> web.Response:
    """The process is alive."""
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """The database answers and its schema is at the migrations' head."""
    missing = backend_of(request.app[ENGINE]).missing()
    if missing is not None:
        raise problem(503, "Not Ready", missing)
    try:
        async with asyncio.timeout(5):
            await ensure_at_head(request.app[ENGINE])
    except SchemaNotCurrent as exc:
        raise problem(503, "Not Ready", str(exc)) from exc
    except Exception as exc:  # whatever the driver raises, the answer is the same
        raise problem(503, "Not Ready", "database unreachable") from exc
    return web.json_response({"status": "ready"})


async def metrics_page(request: web.Request) -> web.Response:
    """Prometheus text of this process."""
    return await request.app[METRICS].page(request.app[ENGINE])


async def openapi_spec(_request: web.Request) -> web.Response:
    """The OpenAPI description of every route."""
    spec = resources.files("service.http").joinpath("openapi.yaml").read_text()
    return web.Response(text=spec, content_type="application/yaml")

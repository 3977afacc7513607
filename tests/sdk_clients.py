"""Inngest's official SDKs as real clients of the service's Event API: the JS SDK (majors 4 and
3, the npm package in ``tests/inngest-js``, run by node) and the Python SDK (``inngest``).

Each client is pointed at the service the way an app is, with ``INNGEST_EVENT_API_BASE_URL``
and ``INNGEST_EVENT_KEY``, and calls the SDK's own ``send``. The JS runner records every HTTP
attempt through the SDK's ``fetch`` option, so a test sees the body and the headers (the
event id seed among them) the SDK really sent. Where node or the npm package is missing the JS
clients skip with the reason; in CI (``CI`` set) that is a failure instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

JS_PACKAGE = Path(__file__).resolve().parent / "inngest-js"
JS_RUNNER = JS_PACKAGE / "send.mjs"
JS_SDKS = {"js4": "inngest", "js3": "inngest3"}
CLIENTS = ("js4", "js3", "python")
SEND_TIMEOUT = 60.0


def js_missing() -> str | None:
    """Why the JS SDKs cannot run here, or None."""
    node = shutil.which("node")
    if node is None:
        return "node is not installed (the JS SDK tests need Node.js 20 or newer)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    major = int(version.stdout.strip().lstrip("v").split(".")[0] or 0)
    if major < 20:
        return f"node {version.stdout.strip()} is too old for inngest 4 (it needs 20 or newer)"
    for package in JS_SDKS.values():
        if not (JS_PACKAGE / "node_modules" / package / "package.json").is_file():
            return f"the npm package of {JS_PACKAGE.name} is not installed: run `make test`"
    return None


def require_client(client: str) -> None:
    """Skip (fail in CI) a JS client that cannot run here."""
    reason = js_missing() if client in JS_SDKS else None
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Sent:
    """One ``send`` by an SDK: what it returned or raised, and the attempts it made (JS)."""

    ids: list[str] | None = None
    error: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seeds(self) -> list[str]:
        return [a["headers"]["x-inngest-event-id-seed"] for a in self.attempts]


async def send_js(sdk: str, base_url: str, key: str, events: Any, env: str | None = None) -> Sent:
    """``inngest.send(events[, {env}])`` by the JS SDK ``sdk`` (``js4``/``js3``) in node."""
    job = {"sdk": JS_SDKS[sdk], "events": events, **({"env": env} if env else {})}
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INNGEST_")} | {
        "INNGEST_EVENT_API_BASE_URL": base_url,
        "INNGEST_EVENT_KEY": key,
    }
    process = await asyncio.create_subprocess_exec(
        "node",
        str(JS_RUNNER),
        json.dumps(job),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    out, err = await asyncio.wait_for(process.communicate(), SEND_TIMEOUT)
    sent = Sent()
    for line in out.decode().splitlines():
        record = json.loads(line)
        if "attempt" in record:
            sent.attempts.append(record["attempt"])
        sent.ids, sent.error = record.get("ids", sent.ids), record.get("error", sent.error)
    assert sent.ids is not None or sent.error is not None, err.decode()[-2000:]
    return sent


async def send_python(
    base_url: str, key: str, events: list[dict[str, Any]], env: str | None = None
) -> Sent:
    """``await client.send([...])`` by Inngest's Python SDK, in production mode."""
    import inngest

    previous = os.environ.get("INNGEST_EVENT_API_BASE_URL")
    os.environ["INNGEST_EVENT_API_BASE_URL"] = base_url
    try:
        client = inngest.Inngest(app_id="sdk-client", event_key=key, is_production=True, env=env)
    finally:
        if previous is None:
            os.environ.pop("INNGEST_EVENT_API_BASE_URL")
        else:
            os.environ["INNGEST_EVENT_API_BASE_URL"] = previous
    try:
        ids = await client.send([inngest.Event(**event) for event in events])
    except Exception as exc:  # whatever the SDK raises is its answer to the app
        return Sent(error=f"{type(exc).__name__}: {exc}")
    return Sent(ids=list(ids))


async def send(
    client: str,
    base_url: str,
    key: str,
    events: list[dict[str, Any]] | dict[str, Any],
    env: str | None = None,
) -> Sent:
    """``send`` by ``client`` (one of CLIENTS) of a list of events or of one event object."""
    if client == "python":
        return await send_python(
            base_url, key, events if isinstance(events, list) else [events], env
        )
    return await send_js(client, base_url, key, events, env)


def as_sent(client: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events as ``client`` puts them on the wire, for events that give ``ts`` (the SDKs
    fill it otherwise): JS adds ``data: {}``; Python keeps only name, data, id and ts."""
    if client == "python":
        return [
            {
                "data": e.get("data") or {},
                **({"id": e["id"]} if e.get("id") else {}),
                "name": e["name"],
                "ts": e["ts"],
            }
            for e in events
        ]
    return [{**e, "data": e.get("data") or {}} for e in events]

"""``service outbox`` against a real database on each backend: stats, list, show, replay, purge.

Rows are put into their states by the outbox's own write, claim and record functions (what a
relay does), never by hand-written SQL; the commands run through click's CliRunner in a worker
thread, since each runs its own event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.ext.asyncio import AsyncEngine

from service.cli.main import main
from service.config import Settings
from service.errors import InvalidInput
from service.events import payload
from service.events.ids import now_ms
from service.store import deliveries, outbox_stats
from service.store import outbox_admin as admin
from service.store.event_filter import EventFilter
from service.store.outcomes import BatchOutcome, Burial, Retry
from tests.conftest import SECRET, TOKEN
from tests.fake_inngest import running_fake
from tests.processes import ROOT
from tests.relay_harness import relay_settings, rows_by_id, running_relay

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000


def invoke(database_url: str, *args: str) -> Result:
    env = {
        "DATABASE_URL": database_url,
        "SESSION_SECRET": SECRET,
        "INTERNAL_API_TOKENS": TOKEN,
        "LOG_FORMAT": "text",
    }
    return CliRunner().invoke(main, ["outbox", *args], env=env)


async def cli(database_url: str, *args: str) -> Result:
    return await asyncio.to_thread(invoke, database_url, *args)


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


async def add(engine: AsyncEngine, *events: payload.NewEvent) -> list[str]:
    async with engine.begin() as conn:
        await deliveries.add(conn, list(events))
    return [event.id for event in events]


def event(n: int, at: int, name: str = payload.EVENT_NAME, **data: Any) -> payload.NewEvent:
    return payload.new_event({"n": n, **data}, {"id": f"u{n}"}, at, name=name)


async def settle(
    engine: AsyncEngine,
    at: int,
    delivered: Sequence[str] = (),
    dead: dict[str, str] | None = None,
    retry: dict[str, str] | None = None,
) -> None:
    """Claim every due row as a relay would and record the given outcome at ``at``; rows not
    named stay leased to the relay ("being sent")."""
    claimed = await deliveries.claim(engine, "test-relay", 5000, 60_000, at)
    seq = {row.id: row.seq for row in claimed}
    outcome = BatchOutcome(
        delivered=[seq[i] for i in delivered],
        burials=[Burial(seq[i], error) for i, error in (dead or {}).items()],
        retries=[Retry(seq[i], at + HOUR, error) for i, error in (retry or {}).items()],
    )
    await deliveries.record(engine, "test-relay", outcome, at)


@dataclass
class Outbox:
    delivered: list[str]
    dead: list[str]
    retrying: str
    leased: list[str]
    due: str
    oldest_pending_at: int


async def every_state(engine: AsyncEngine) -> Outbox:
    """2 delivered, 2 dead, and 4 pending rows: 1 waiting to retry, 2 leased, 1 due."""
    now = now_ms()
    ids = await add(engine, *(event(n, now - (10 - n) * MINUTE) for n in range(7)))
    await settle(
        engine,
        now,
        delivered=ids[:2],
        dead={ids[2]: "HTTP 400: data.plan must be a string", ids[3]: "boom"},
        retry={ids[4]: "HTTP 503: unavailable"},
    )
    [due] = await add(engine, event(9, now))
    return Outbox(ids[:2], ids[2:4], ids[4], ids[5:7], due, now - 6 * MINUTE)


async def test_stats_counts_every_state(database_url: str, engine: AsyncEngine) -> None:
    rows = await every_state(engine)
    result = await cli(database_url, "stats", "--json")
    assert result.exit_code == 0, result.output
    [stats] = json_lines(result)
    assert stats["counts"] == {"pending": 4, "delivered": 2, "dead": 2, "total": 8}
    assert stats["pending"]["due_now"] == 1
    assert stats["pending"]["being_sent"] == 2
    assert stats["pending"]["scheduled_later"] == 1
    oldest = stats["pending"]["oldest_created_at"]
    assert oldest == admin_iso(rows.oldest_pending_at)
    assert 6 * 60 - 1 < stats["pending"]["oldest_age_seconds"] < 6 * 60 + 30
    # The row waiting to retry failed once, when it was settled: that is its failing time.
    assert stats["pending"]["oldest_failing_since"] is not None
    assert 0 <= stats["pending"]["oldest_failing_seconds"] < 30
    attempts = {b["bucket"]: (b["pending"], b["dead"]) for b in stats["attempts"]}
    assert attempts == {
        "0": (3, 0),
        "1": (1, 2),
        "2": (0, 0),
        "3-5": (0, 0),
        "6-10": (0, 0),
        "11+": (0, 0),
    }
    assert sorted(stats["top_errors"], key=lambda e: e["error"]) == [
        {"error": "HTTP 400: data.plan must be a string", "rows": 1},
        {"error": "HTTP 503: unavailable", "rows": 1},
        {"error": "boom", "rows": 1},
    ]

    text = await cli(database_url, "stats")
    assert text.exit_code == 0, text.output
    assert "oldest pending row: 6m" in text.stdout
    assert "longest-failing pending row: failing for" in text.stdout
    for line in ("pending", "due now", "being sent", "waiting to retry", "delivered", "dead"):
        assert line in text.stdout
    assert "HTTP 503: unavailable" in text.stdout


def admin_iso(ms: int) -> str:
    from service.cli.outbox_views import iso

    value = iso(ms)
    assert value is not None
    return value


def test_table_times_are_rfc_3339_as_the_json_is() -> None:
    from service.cli.outbox_views import iso, short_time

    moment = 1_795_000_000_123
    assert short_time(moment) == "2026-11-18T11:06:40Z"
    assert iso(moment) == "2026-11-18T11:06:40.123Z"
    assert short_time(None) == ""


def test_attempt_buckets() -> None:
    assert [outbox_stats.attempt_bucket(n) for n in (0, 1, 2, 3, 5, 6, 10, 11, 500)] == [
        "0",
        "1",
        "2",
        "3-5",
        "3-5",
        "6-10",
        "6-10",
        "11+",
        "11+",
    ]


async def test_stats_of_an_empty_outbox(database_url: str) -> None:
    [stats] = json_lines(await cli(database_url, "stats", "--json"))
    assert stats["counts"]["total"] == 0
    assert stats["pending"]["oldest_age_seconds"] is None
    assert stats["top_errors"] == []
    text = await cli(database_url, "stats")
    assert "oldest pending row: -" in text.stdout
    assert "no last errors" in text.stdout


async def test_list_filters_newest_first(database_url: str, engine: AsyncEngine) -> None:
    now = now_ms()
    old = await add(engine, *(event(n, now - 3 * DAY + n) for n in range(3)))
    recent = await add(engine, *(event(n, now - HOUR + n) for n in range(3, 6)))
    [other] = await add(engine, event(6, now, name="openapi/other"))
    await settle(engine, now, delivered=old[:2], dead={recent[0]: "boom"})

    everything = json_lines(await cli(database_url, "list", "--json"))
    assert [row["id"] for row in everything] == [other, *reversed(recent), *reversed(old)]
    assert everything[0]["created_at"].endswith("Z")

    dead = json_lines(await cli(database_url, "list", "--json", "--status", "dead"))
    assert [(r["id"], r["status"], r["last_error"]) for r in dead] == [(recent[0], "dead", "boom")]
    named = json_lines(await cli(database_url, "list", "--json", "--name", "openapi/other"))
    assert [row["id"] for row in named] == [other]
    since = json_lines(await cli(database_url, "list", "--json", "--since", "2d"))
    assert {row["id"] for row in since} == {other, *recent}
    until = json_lines(await cli(database_url, "list", "--json", "--until", "1d"))
    assert [row["id"] for row in until] == list(reversed(old))
    iso_window = json_lines(
        await cli(
            database_url,
            "list",
            "--json",
            "--since",
            admin_iso(now - 3 * DAY + 1),
            "--until",
            admin_iso(now - 3 * DAY + 2).replace("Z", "+00:00"),
        )
    )
    assert [row["id"] for row in iso_window] == [old[1]]
    limited = json_lines(await cli(database_url, "list", "--json", "--limit", "2"))
    assert [row["id"] for row in limited] == [other, recent[2]]

    table = await cli(database_url, "list", "--status", "delivered")
    assert table.exit_code == 0
    assert old[0] in table.stdout and old[1] in table.stdout and recent[1] not in table.stdout
    assert "2 rows" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "neither a duration"),
        (["--since", "1h", "--until", "2h"], "--since must be earlier than --until"),
        (["--status", "lost"], "Invalid value for '--status'"),
        (["--limit", "0"], "Invalid value for '--limit'"),
    ],
)
async def test_list_usage_errors_exit_2(database_url: str, args: list[str], message: str) -> None:
    result = await cli(database_url, "list", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


async def test_show_prints_the_whole_event(database_url: str, engine: AsyncEngine) -> None:
    rows = await every_state(engine)
    [dead] = json_lines(await cli(database_url, "show", rows.dead[0], "--json"))
    assert dead["id"] == rows.dead[0]
    assert dead["status"] == "dead" and dead["attempts"] == 1
    assert dead["last_error"] == "HTTP 400: data.plan must be a string"
    assert dead["payload"]["id"] == rows.dead[0]
    assert dead["payload"]["data"] == {"n": 2}
    assert dead["payload"]["user"] == {"id": "u2"}
    assert dead["completed_at"].endswith("Z") and dead["replay_of"] is None
    [attempt] = dead["failed_attempts"]  # the console's event page shows the same
    assert attempt["error"] == "HTTP 400: data.plan must be a string"
    assert attempt["at"].endswith("Z") and attempt["status_code"] is None

    [leased] = json_lines(await cli(database_url, "show", rows.leased[0], "--json"))
    assert leased["locked_by"] == "test-relay" and leased["locked_until"].endswith("Z")

    text = await cli(database_url, "show", rows.dead[0])
    assert text.exit_code == 0
    for field in ("status", "attempts", "last_error", "locked_by", "replay_of", '"user"'):
        assert field in text.stdout
    assert "failed attempt 1" in text.stdout and "no answer" in text.stdout


async def test_show_unknown_id_is_one_line_exit_1(database_url: str) -> None:
    result = await cli(database_url, "show", "no-such-id")
    assert result.exit_code == 1
    assert result.stderr == "error: no event with id no-such-id\n"


async def test_replay_by_id(database_url: str, engine: AsyncEngine) -> None:
    rows = await every_state(engine)
    dead, delivered = rows.dead[0], rows.delivered[0]
    before = await rows_by_id(engine)

    dry = await cli(database_url, "replay", "--id", dead, "--id", delivered, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"would requeue {dead} (dead -> pending)" in dry.stdout
    assert f"would re-send {delivered} under a new id" in dry.stdout
    assert await rows_by_id(engine) == before

    started = now_ms()
    result = await cli(database_url, "replay", "--id", dead, "--id", delivered)
    assert result.exit_code == 0, result.output
    after = await rows_by_id(engine)
    assert f"requeued {dead} (dead -> pending)" in result.stdout
    [copy] = [row for row in after.values() if row["replay_of"] == delivered]
    assert f"re-sent {delivered} as {copy['id']}" in result.stdout
    assert "requeued 1, re-sent 1" in result.stdout

    requeued = after[dead]
    assert requeued["status"] == "pending" and requeued["attempts"] == 0
    assert requeued["locked_by"] is None and requeued["locked_until"] is None
    assert requeued["completed_at"] is None
    assert started <= requeued["next_attempt_at"] <= now_ms()
    assert requeued["last_error"] == before[dead]["last_error"]  # kept: why it died
    assert requeued["payload"] == before[dead]["payload"]

    original = json.loads(before[delivered]["payload"])
    resent = json.loads(copy["payload"])
    assert resent["id"] == copy["id"] != delivered
    assert list(resent) == list(original)
    assert {k: v for k, v in resent.items() if k != "id"} == {
        k: v for k, v in original.items() if k != "id"
    }
    assert copy["status"] == "pending" and copy["attempts"] == 0
    assert started <= copy["created_at"] <= now_ms()
    assert after[delivered] == before[delivered]  # the original stays as it was
    assert len(after) == len(before) + 1


async def test_replay_refuses_pending_and_unknown_ids(
    database_url: str, engine: AsyncEngine
) -> None:
    rows = await every_state(engine)
    before = await rows_by_id(engine)
    result = await cli(database_url, "replay", "--id", rows.due, "--id", "nope", "--json")
    assert result.exit_code == 1
    assert json_lines(result) == [
        {"id": rows.due, "action": "already_pending", "new_id": None, "dry_run": False},
        {"id": "nope", "action": "not_found", "new_id": None, "dry_run": False},
    ]
    assert await rows_by_id(engine) == before

    text = await cli(database_url, "replay", "--id", rows.due, "--id", rows.dead[1])
    assert text.exit_code == 1
    assert f"error: {rows.due} is pending (already queued); not replayed" in text.stderr
    assert f"requeued {rows.dead[1]}" in text.stdout  # the others are still replayed


async def test_replay_by_status_touches_only_matching_dead_rows(
    database_url: str, engine: AsyncEngine
) -> None:
    now = now_ms()
    old = await add(engine, *(event(n, now - 2 * DAY + n) for n in range(3)))
    new = await add(engine, *(event(n, now - HOUR + n) for n in range(3, 8)))
    [other] = await add(engine, event(9, now - HOUR, name="openapi/other"))
    await settle(
        engine,
        now,
        delivered=[new[4]],
        dead={i: "boom" for i in [*old, *new[:4], other]},
    )
    before = await rows_by_id(engine)
    matching = new[:4]

    by_status = ["replay", "--status", "dead", "--since", "1d", "--name", payload.EVENT_NAME]
    dry = await cli(database_url, *by_status, "--dry-run")
    assert dry.exit_code == 0
    assert [line.split()[2] for line in dry.stdout.splitlines()[:-1]] == matching
    assert "would requeue 4" in dry.stdout
    assert await rows_by_id(engine) == before

    result = await cli(database_url, *by_status, "--json")
    assert result.exit_code == 0
    assert [line["id"] for line in json_lines(result)] == matching
    after = await rows_by_id(engine)
    for event_id, row in after.items():
        expected = "pending" if event_id in matching else before[event_id]["status"]
        assert row["status"] == expected, event_id
        if event_id not in matching:
            assert row == before[event_id]

    nothing = await cli(database_url, *by_status)
    assert nothing.exit_code == 0
    assert "nothing to replay" in nothing.stdout.splitlines()[-1]


async def test_replay_dead_pages_through_bounded_batches(engine: AsyncEngine) -> None:
    now = now_ms()
    ids = await add(engine, *(event(n, now - MINUTE + n) for n in range(7)))
    await settle(engine, now, dead={i: "boom" for i in ids})
    batches = [
        [r.id for r in results]
        async for results in admin.replay_dead(engine, EventFilter(), batch=3)
    ]
    assert batches == [ids[:3], ids[3:6], ids[6:]]
    assert {row["status"] for row in (await rows_by_id(engine)).values()} == {"pending"}


async def test_replayed_rows_reach_inngest(
    database_url: str, engine: AsyncEngine, settings: Settings
) -> None:
    rows = await every_state(engine)
    result = await cli(
        database_url, "replay", "--id", rows.dead[0], "--id", rows.delivered[0], "--json"
    )
    [requeued, resent] = json_lines(result)
    # Hand the leased rows back, as their relay's lease running out would.
    await deliveries.record(
        engine, "test-relay", BatchOutcome(released=await _seqs(engine, rows.leased)), now_ms()
    )
    async with running_fake() as fake:
        async with running_relay(relay_settings(settings, fake.origin), engine) as run:
            await run.until(lambda: _is_delivered(engine, rows.dead[0], resent["new_id"]))
    received = {e["id"]: e for e in fake.received}
    assert requeued["id"] in received and resent["new_id"] in received
    assert received[resent["new_id"]]["data"] == {"n": 0}
    assert rows.delivered[0] not in received  # the original id would be dropped by Inngest


async def _seqs(engine: AsyncEngine, ids: list[str]) -> list[int]:
    rows = await rows_by_id(engine)
    return [int(rows[i]["seq"]) for i in ids]


async def _is_delivered(engine: AsyncEngine, *ids: str) -> bool:
    rows = await rows_by_id(engine)
    return all(rows[i]["status"] == "delivered" for i in ids)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--id", "x", "--status", "dead"],
        ["--id", "x", "--since", "1h"],
        ["--status", "delivered"],
    ],
)
async def test_replay_usage_errors_exit_2(database_url: str, args: list[str]) -> None:
    result = await cli(database_url, "replay", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


async def test_purge_removes_only_old_finished_rows(database_url: str, engine: AsyncEngine) -> None:
    now = now_ms()
    long_ago = now - 40 * DAY
    old = await add(engine, *(event(n, long_ago - HOUR + n) for n in range(5)))
    await settle(engine, long_ago, delivered=old[:3], dead={old[3]: "boom"}, retry={old[4]: "x"})
    recent = await add(engine, event(7, now - HOUR), event(8, now - HOUR))
    await settle(engine, now, delivered=[recent[0]], dead={recent[1]: "boom"})
    [stale_pending] = await add(engine, event(9, long_ago))  # accepted long ago, never sent

    usage = await cli(database_url, "purge")
    assert usage.exit_code == 2
    assert "--delivered-older-than" in usage.stderr

    dry = await cli(database_url, "purge", "--delivered-older-than", "7d", "--dry-run", "--json")
    assert json_lines(dry) == [{"delivered": 3, "dry_run": True}]
    assert len(await rows_by_id(engine)) == 8

    removed = await cli(database_url, "purge", "--delivered-older-than", "7d")
    assert removed.exit_code == 0, removed.output
    assert removed.stdout.startswith("removed 3 delivered rows completed before ")
    assert "purging" not in removed.stdout  # no progress bar without a terminal
    both = await cli(
        database_url, "purge", "--delivered-older-than", "7d", "--dead-older-than", "30d", "--json"
    )
    assert json_lines(both) == [{"delivered": 0, "dead": 1, "dry_run": False}]
    left = await rows_by_id(engine)
    assert set(left) == {old[4], *recent, stale_pending}
    assert left[old[4]]["status"] == "pending" and left[stale_pending]["status"] == "pending"

    everything = await cli(
        database_url, "purge", "--delivered-older-than", "0s", "--dead-older-than", "0s"
    )
    assert everything.exit_code == 0
    assert set(await rows_by_id(engine)) == {old[4], stale_pending}  # pending rows stay


async def test_purge_refuses_pending_rows(engine: AsyncEngine) -> None:
    with pytest.raises(InvalidInput):
        async for _ in admin.purge(engine, "pending", 0):
            pass


async def test_unreachable_database_is_one_line() -> None:
    result = await cli("postgresql://postgres@127.0.0.1:1/none", "stats")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.splitlines()) == 1


async def test_progress_bar_on_a_terminal_only(database_url: str, engine: AsyncEngine) -> None:
    now = now_ms()
    ids = await add(engine, *(event(n, now - DAY) for n in range(1200)))
    await settle(engine, now - DAY, delivered=ids)
    output, code = await asyncio.to_thread(
        _run_on_terminal, database_url, "purge", "--delivered-older-than", "1h"
    )
    assert code == 0, output
    assert "purging delivered rows" in output  # the bar, drawn on the terminal
    assert "removed 1,200 delivered rows" in output
    assert await rows_by_id(engine) == {}


def _run_on_terminal(database_url: str, *args: str) -> tuple[str, int]:
    """Run ``service outbox ARGS`` with stdout on a pseudo-terminal; its output and status."""
    leader, follower = pty.openpty()
    env = {**os.environ, "DATABASE_URL": database_url, "TERM": "xterm", "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "outbox", *args],
        stdout=follower,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(leader)
    code = process.wait(timeout=10)
    return b"".join(chunks).decode(errors="replace"), code

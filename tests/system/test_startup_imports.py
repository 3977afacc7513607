"""Each entry point loads what it uses and nothing more: ``service --help`` and every command's
help, the outbox commands, a relay that delivers and the SQLite writer run as real processes
that list ``sys.modules`` as they exit. (How fast and how large that makes them is
``bench/startup.py``'s business.)"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import click
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.cli.main import main
from tests.fake_inngest import running_fake
from tests.processes import ROOT, free_port, service_env, stop, wait_http
from tests.relay_harness import EVENT_KEY, seed

# Runs the ``service`` entry point as its console script does, with ``sys.argv[2:]`` as its
# arguments, and writes the names of the modules loaded into ``sys.argv[1]`` on the way out.
LIST_MODULES = """
import atexit, sys

def write_modules(path=sys.argv[1]):
    with open(path, "w") as out:
        out.write("\\n".join(sorted(sys.modules)))

atexit.register(write_modules)
sys.argv[:] = ["service", *sys.argv[2:]]
from service.cli.main import main
main()
"""

# What a command's help needs is click and the command's declaration.
NOT_FOR_HELP = ("sqlalchemy", "aiohttp", "alembic", "joserfc", "cryptography", "rich", "asyncio")
# The outbox commands read the database: not the HTTP server, not the next-auth reader, not
# alembic (the schema check reads the revision itself).
NOT_FOR_OUTBOX = ("service.http", "aiohttp", "joserfc", "cryptography", "alembic")
# The relay: its metrics server is aiohttp's, but none of the API, its sessions or the
# next-auth reader, alembic or rich; of the command line, its own command and click's core,
# not the other commands nor click's completion and terminal helpers.
NOT_FOR_RELAY = (
    *("service.http", "aiohttp_session", "joserfc", "cryptography", "alembic", "rich"),
    *("service.cli.serve", "service.cli.outbox_commands", "service.cli.db", "service.cli.session"),
    *("service.cli.settings_commands", "click.shell_completion", "click._termui_impl"),
)
# Each database's driver is loaded by the processes of that database only.
OTHER_DRIVER = {"sqlite": "asyncpg", "postgresql": "aiosqlite"}


def command_paths(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """``()`` for ``service`` itself, then every group and command below it."""
    paths = [path]
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            paths += command_paths(command, (*path, name))
        else:
            paths.append((*path, name))
    return paths


def command(args: Iterable[str], listing: Path) -> list[str]:
    return [sys.executable, "-c", LIST_MODULES, str(listing), *args]


def run_listing(args: Iterable[str], env: Mapping[str, str], listing: Path) -> set[str]:
    """Run ``service ARGS`` to its end; the modules it loaded."""
    done = subprocess.run(
        command(args, listing), env=dict(env), cwd=ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return set(listing.read_text().split())


def start_listing(
    args: Iterable[str], env: Mapping[str, str], listing: Path, log: Path
) -> subprocess.Popen[bytes]:
    """Start ``service ARGS`` (output in ``log``); it lists its modules when it exits."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command(args, listing), env=dict(env), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


def loaded(modules: set[str], packages: Iterable[str]) -> list[str]:
    """The modules of ``modules`` that are, or belong to, one of ``packages``."""
    return sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages))


@pytest.mark.parametrize("path", command_paths(main), ids=lambda path: " ".join(path) or "service")
def test_help_loads_neither_the_database_nor_the_http_stack(
    path: tuple[str, ...], tmp_path: Path
) -> None:
    modules = run_listing([*path, "--help"], service_env("sqlite:///unused.db"), tmp_path / "m")
    assert loaded(modules, NOT_FOR_HELP) == []


def test_the_listing_sees_what_a_command_loads(tmp_path: Path) -> None:
    modules = run_listing(["--help"], service_env("sqlite:///unused.db"), tmp_path / "m")
    assert {"click", "service.cli.main", "service.cli.outbox_commands"} <= modules
    assert {"click", "click.core"} <= set(loaded(modules, ["click"]))
    assert loaded({"aiohttp_session", "clicks"}, ["aiohttp", "click"]) == []


OUTBOX_COMMANDS = [
    ["stats"],
    ["list", "--json"],
    ["show", "{id}"],
    ["replay", "--status", "dead", "--dry-run"],
    ["purge", "--dead-older-than", "1d", "--dry-run"],
]


@pytest.mark.parametrize("args", OUTBOX_COMMANDS, ids=lambda args: args[0])
async def test_outbox_commands_load_neither_the_http_server_nor_alembic(
    database_url: str, engine: AsyncEngine, backend: str, args: list[str], tmp_path: Path
) -> None:
    [event_id] = await seed(engine, 1)
    argv = ["outbox", *(arg.format(id=event_id) for arg in args)]
    modules = run_listing(argv, service_env(database_url), tmp_path / "m")
    assert loaded(modules, (*NOT_FOR_OUTBOX, OTHER_DRIVER[backend])) == []
    assert "service.store.outbox_admin" in modules


@pytest.mark.slow
async def test_a_relay_that_delivers_loads_no_api_no_alembic_no_rich(
    database_url: str, engine: AsyncEngine, backend: str, tmp_path: Path
) -> None:
    ids = await seed(engine, 3)
    port = free_port()
    listing = tmp_path / "modules"
    async with running_fake(event_key=EVENT_KEY) as fake:
        env = service_env(
            database_url,
            INNGEST_EVENT_API_BASE_URL=fake.origin,
            INNGEST_EVENT_KEY=EVENT_KEY,
            RELAY_METRICS_PORT=str(port),
        )
        relay = start_listing(["relay"], env, listing, tmp_path / "relay.log")
        try:
            await fake.wait_for(len(ids), timeout=60)
            await wait_http(f"http://127.0.0.1:{port}/metrics", relay)  # a scrape, gauges read
        finally:
            assert await stop(relay) == 0
    modules = set(listing.read_text().split())
    assert loaded(modules, (*NOT_FOR_RELAY, OTHER_DRIVER[backend])) == []
    assert {"service.relay.worker", "prometheus_client", "aiohttp.web"} <= modules


def test_the_sqlite_writer_loads_neither_sqlalchemy_nor_aiohttp(tmp_path: Path) -> None:
    listing = tmp_path / "m"
    write = "open(sys.argv[1], 'w').write('\\n'.join(sys.modules))"
    script = f"import sys, service.store.backends.sqlite_writer; {write}"
    subprocess.run([sys.executable, "-c", script, str(listing)], cwd=ROOT, check=True, timeout=60)
    modules = set(listing.read_text().split())
    assert "service.store.backends.sqlite_writer" in modules
    assert loaded(modules, ["sqlalchemy", "aiohttp"]) == []

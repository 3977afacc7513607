"""A newcomer's mistakes, each answered in one line: the real command, started as a user
starts it (a subprocess in a directory of its own, with nothing of the project's environment),
ends with exit status 2 for a setting or usage at fault and 1 for a failure at run time, a
line that names what is wrong, and no traceback.

One row per mistake: the next one someone meets is one more row here.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from service.config import Settings
from service.store import migrations
from tests.conftest import admin_execute, postgres_url, require_postgres
from tests.processes import ROOT, free_port

# A generous detector of a hang; every command here ends within seconds.
HANG = 120
MOST_LINES = 3


@dataclass(frozen=True)
class Mistake:
    """A command and its environment, what it must exit with and the words its line holds."""

    args: tuple[str, ...]
    code: int
    says: str
    env: dict[str, str] = field(default_factory=dict)


def _run(args: tuple[str, ...], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # Only what a shell gives everyone: the project's variables would hide the defaults.
    clean = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=HANG,
    )


def _assert_one_line(done: subprocess.CompletedProcess[str], mistake: Mistake) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == mistake.code, output
    assert "Traceback" not in output, output
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert mistake.says in errors[0], errors[0]
    assert len(done.stderr.strip().splitlines()) <= MOST_LINES, output


MISTAKES = {
    "sqlite-url-with-two-slashes": Mistake(
        ("outbox", "stats"),
        2,
        "three slashes before the path",
        {"DATABASE_URL": "sqlite://var/x.db"},
    ),
    "mysql-url-for-the-store": Mistake(
        ("outbox", "stats"),
        2,
        "DATABASE_URL: must be a sqlite:// or postgresql://",
        {"DATABASE_URL": "mysql://root@127.0.0.1/test"},
    ),
    "unknown-scheme": Mistake(("db", "current"), 2, "DATABASE_URL:", {"DATABASE_URL": "foo://x"}),
    "bad-sslmode": Mistake(
        ("db", "upgrade"),
        2,
        "sslmode=maybe: takes one of",
        {"DATABASE_URL": "postgresql://u:secret@h/d?sslmode=maybe"},
    ),
    "unknown-database-host": Mistake(
        ("outbox", "stats"),
        1,
        "host name is not known",
        {"DATABASE_URL": "postgresql://u@no-such-host.invalid/d?connect_timeout=5"},
    ),
    "inngest-dev-garbage": Mistake(
        ("outbox", "stats"), 2, "INNGEST_DEV: takes one of", {"INNGEST_DEV": "garbage"}
    ),
    "cookie-secure-maybe": Mistake(
        ("outbox", "stats"),
        2,
        "SESSION_COOKIE_SECURE: takes one of",
        {"SESSION_COOKIE_SECURE": "maybe"},
    ),
    "log-level-loud": Mistake(("outbox", "stats"), 2, "LOG_LEVEL:", {"LOG_LEVEL": "loud"}),
    "poll-interval-soon": Mistake(
        ("relay",), 2, "RELAY_POLL_INTERVAL:", {"RELAY_POLL_INTERVAL": "soon", "INNGEST_DEV": "1"}
    ),
    "short-session-secret-said-once": Mistake(
        ("serve",),
        2,
        "error: SESSION_SECRET: too short",
        {"SESSION_SECRET": "short", "INNGEST_DEV": "1"},
    ),
    "no-such-host-to-listen-on": Mistake(
        ("serve",),
        2,
        "HOST no-such-host.invalid",
        {"HOST": "no-such-host.invalid", "INNGEST_DEV": "1"},
    ),
    "no-database-here": Mistake(("outbox", "stats"), 1, "no database at"),
    "no-database-for-db-current": Mistake(("db", "current"), 1, "run `service db upgrade`"),
    "no-database-for-the-relay": Mistake(("relay",), 1, "no database at", {"INNGEST_DEV": "1"}),
    "unknown-command": Mistake(("frobnicate",), 2, "No such command"),
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_each_mistake_is_one_line(name: str, tmp_path: Path) -> None:
    mistake = MISTAKES[name]
    done = _run(mistake.args, mistake.env, tmp_path)
    if mistake.args[0] == "frobnicate":  # click's own usage error: its lines, exit 2
        assert done.returncode == 2 and mistake.says in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        return
    _assert_one_line(done, mistake)
    if name == "short-session-secret-said-once":
        assert done.stderr.count("SESSION_SECRET") == 1, done.stderr


def test_a_read_only_command_makes_nothing_where_it_runs(tmp_path: Path) -> None:
    for args in (("outbox", "stats"), ("outbox", "list"), ("db", "current")):
        _run(args, {}, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def taken_port() -> Iterator[int]:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        yield port


def test_serve_on_a_port_in_use_is_one_line(taken_port: int, tmp_path: Path) -> None:
    migrate = _run(("db", "upgrade"), {}, tmp_path)
    assert migrate.returncode == 0, migrate.stderr
    mistake = Mistake(
        ("serve",),
        1,
        f"port {taken_port} on 127.0.0.1 is in use (PORT",
        {"PORT": str(taken_port), "INNGEST_DEV": "1"},
    )
    _assert_one_line(_run(mistake.args, mistake.env, tmp_path), mistake)


def test_debug_shows_the_traceback_of_the_line(tmp_path: Path) -> None:
    done = _run(("--debug", "outbox", "stats"), {"DATABASE_URL": "postgresql://u@h:1/d"}, tmp_path)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and done.stderr.strip().splitlines()[-1].startswith("error:")


@pytest.fixture
def empty_postgres_database() -> Iterator[str]:
    require_postgres()
    name = f"svc_empty_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin_execute(f'CREATE DATABASE "{name}"'))
    yield postgres_url(name).replace("postgresql+asyncpg://", "postgresql://")
    asyncio.run(admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_database_never_migrated_says_to_upgrade(
    empty_postgres_database: str, tmp_path: Path
) -> None:
    mistake = Mistake(
        ("outbox", "stats"),
        1,
        "the database has no service schema: run `service db upgrade`",
        {"DATABASE_URL": empty_postgres_database},
    )
    _assert_one_line(_run(mistake.args, mistake.env, tmp_path), mistake)


def test_granting_a_role_that_does_not_exist_names_it(
    empty_postgres_database: str, tmp_path: Path
) -> None:
    migrations.upgrade(
        Settings(
            database_url=empty_postgres_database.replace("postgresql://", "postgresql+asyncpg://")
        )
    )
    mistake = Mistake(
        ("db", "grant-sender", "no_such_role"),
        1,
        "there is no database role 'no_such_role'",
        {"DATABASE_URL": empty_postgres_database},
    )
    _assert_one_line(_run(mistake.args, mistake.env, tmp_path), mistake)


def test_the_python_api_names_what_send_event_takes(tmp_path: Path) -> None:
    script = (
        "import asyncio, sqlite3\n"
        "from service import EventRefused, send_event\n"
        "assert issubclass(EventRefused, ValueError)\n"
        "try:\n"
        "    asyncio.run(send_event(sqlite3.connect(':memory:'), 'app/x'))\n"
        "except TypeError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=HANG
    )
    assert done.returncode == 0, done.stderr
    assert "send_event takes SQLAlchemy's AsyncConnection or AsyncSession" in done.stdout
    assert "sqlite3.Connection" in done.stdout


@pytest.mark.parametrize("python", ["/bin/false", "/no/such/python3"])
def test_make_names_the_python_it_needs(python: str, tmp_path: Path) -> None:
    # The Makefile in a directory of its own: nothing of the project's .venv is touched.
    for name in ("Makefile", "pyproject.toml"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "dev.txt").write_text("")
    done = subprocess.run(
        ["make", "install", f"PYTHON={python}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert done.returncode != 0
    assert f"Python 3.11 or newer is needed, and PYTHON={python} is" in done.stderr, done.stderr
    assert "make PYTHON=/path/to/python3.11" in done.stderr
    assert not (tmp_path / ".venv").exists()

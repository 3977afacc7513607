"""The foundation's commands against a real database: db, settings, session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from service.cli.main import main
from tests.conftest import SECRET, TOKEN
from tests.processes import free_port

pytestmark = pytest.mark.usefixtures("backend")


def cli(database_url: str, *args: str, stdin: str | None = None) -> Result:
    env = {
        "DATABASE_URL": database_url,
        "SESSION_SECRET": SECRET,
        "INTERNAL_API_TOKENS": TOKEN,
        "LOG_FORMAT": "text",
    }
    return CliRunner().invoke(main, list(args), env=env, input=stdin)


def test_settings_show_set_and_load(database_url: str, tmp_path: Path) -> None:
    shown = cli(database_url, "settings", "show")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == {}

    assert cli(database_url, "settings", "set", "limit", "10").exit_code == 0
    assert cli(database_url, "settings", "set", "name", "acme corp", "--no-sync").exit_code == 0
    assert json.loads(cli(database_url, "settings", "show").output) == {
        "limit": 10,
        "name": "acme corp",
    }

    file = tmp_path / "settings.json"
    file.write_text('{"plan": "pro", "seats": [1, 2]}')
    loaded = cli(database_url, "settings", "load", str(file))
    assert loaded.exit_code == 0, loaded.output
    assert "enqueued event" in loaded.output
    assert json.loads(cli(database_url, "settings", "show").output) == {
        "plan": "pro",
        "seats": [1, 2],
    }
    from_stdin = cli(database_url, "settings", "load", "-", stdin='{"x": 1}')
    assert from_stdin.exit_code == 0, from_stdin.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1]", "must hold a JSON object"),
        ("{oops", "is not valid JSON"),
        ('{"a":' * 5000, "is nested deeper than 64 levels"),
        ('{"a": NaN}', "holds NaN"),
    ],
)
def test_settings_load_refuses_bad_files(
    database_url: str, tmp_path: Path, content: str, message: str
) -> None:
    file = tmp_path / "bad.json"
    file.write_text(content)
    result = cli(database_url, "settings", "load", str(file))
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_settings_load_missing_file_is_one_line(database_url: str, tmp_path: Path) -> None:
    result = cli(database_url, "settings", "load", str(tmp_path / "absent.json"))
    assert result.exit_code != 0
    assert "Traceback" not in result.output


def test_db_current_and_commands_refuse_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'not-yet' / 'fresh.db'}"  # as ./var/ on a fresh checkout
    current = cli(url, "db", "current")
    assert current.exit_code == 1
    assert f"no database at {tmp_path / 'not-yet' / 'fresh.db'}" in current.output
    assert not (tmp_path / "not-yet").exists()  # asking made nothing
    shown = cli(url, "settings", "show")
    assert shown.exit_code == 1
    assert "service db upgrade" in shown.output
    served = cli(url, "serve", "--no-relay", "--port", str(free_port()))
    assert served.exit_code == 1
    assert "service db upgrade" in served.output
    assert cli(url, "db", "upgrade").exit_code == 0
    assert "at head" in cli(url, "db", "current").output


def test_session_issue_prints_a_cookie_the_service_accepts(database_url: str) -> None:
    from service.config import Settings
    from service.http.auth import cipher

    result = cli(database_url, "session", "issue", "--user-id", "7", "--email", "a@b.c")
    assert result.exit_code == 0
    value = result.output.strip()
    settings = Settings(session_secret=SECRET)
    session = json.loads(cipher(settings).decrypt(value.encode()))
    assert session["session"]["user"] == {"id": "7", "email": "a@b.c"}
    assert session["created"] > 0  # aiohttp-session checks its age against SESSION_MAX_AGE


def test_unreachable_database_is_one_line() -> None:
    result = cli("postgresql://postgres@127.0.0.1:1/none", "settings", "show")
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert "Traceback" not in result.output


def test_db_upgrade_creates_the_sqlite_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'service.db'}"  # `make run` on a fresh checkout
    result = cli(url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "var" / "service.db").is_file()

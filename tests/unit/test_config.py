"""Settings from the environment: defaults, precedence, and one clear line for a bad value."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli.main import main
from service.config import (
    INNGEST_CLOUD_ORIGIN,
    INNGEST_DEV_ORIGIN,
    ConfigError,
    Settings,
    require_session_secret,
)
from service.config.table import render, replace_table, variables


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite+aiosqlite:///var/service.db"
    assert settings.sqlite_synchronous == "FULL"
    assert settings.port == 8080
    assert settings.inngest.origin == INNGEST_CLOUD_ORIGIN
    assert settings.relay.lease_seconds > settings.inngest.request_timeout


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_database_urls_map_onto_async_drivers(given: str, expected: str) -> None:
    assert Settings.from_env({"DATABASE_URL": given}).database_url == expected


def test_inngest_origin_precedence() -> None:
    env = {"INNGEST_DEV": "1"}
    assert Settings.from_env(env).inngest.origin == INNGEST_DEV_ORIGIN
    assert Settings.from_env({"INNGEST_DEV": "false"}).inngest.origin == INNGEST_CLOUD_ORIGIN
    env["INNGEST_BASE_URL"] = "http://base:1"
    assert Settings.from_env(env).inngest.origin == "http://base:1"
    env["INNGEST_EVENT_API_BASE_URL"] = "http://events:2"
    assert Settings.from_env(env).inngest.origin == "http://events:2"
    dev_url = {"INNGEST_DEV": "http://devhost:8288"}
    assert Settings.from_env(dev_url).inngest.origin == "http://devhost:8288"


def test_event_key_is_redacted_from_the_endpoint() -> None:
    inngest = Settings.from_env({"INNGEST_EVENT_KEY": "secret-key-123"}).inngest
    assert inngest.endpoint.endswith("/e/secret-key-123")
    assert "secret-key-123" not in inngest.redacted_endpoint


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("DATABASE_URL", "mysql://x"),
        ("DATABASE_URL", "postgresql://u:secret@h:notaport/db"),
        ("SQLITE_SYNCHRONOUS", "sometimes"),
        ("SESSION_SECRET", "short"),
        ("SESSION_SECRET", "ab" * 30),
        ("SESSION_SECRET_PREVIOUS", "x" * 40),
        ("INTERNAL_API_TOKENS", "a,b"),
        ("RELAY_BATCH_SIZE", "6000"),
        ("RELAY_POLL_INTERVAL", "soon"),
        ("RELAY_LEASE", "5s"),
        ("RELAY_GIVE_UP_AFTER", "soon"),
        ("RELAY_MAX_ATTEMPTS", "0"),
        ("RELAY_PROBE_MAX", "10ms"),
        ("SERVICE_ENV", "staging"),
        ("INNGEST_BASE_URL", "ftp://x"),
        ("EVENT_API_KEYS", "good-key,has/slash"),
        ("EVENT_API_KEYS", ".hidden"),
        ("EVENT_API_KEYS", "k" * 257),
        ("EVENT_MAX_BYTES", str(3 * 1024 * 1024 + 1)),
        ("EVENT_BODY_MAX_BYTES", "2048"),
        ("DATABASE_SCHEMA", "Outbox"),
        ("DATABASE_SCHEMA", "pg_outbox"),
        ("DATABASE_SCHEMA", "x" * 49),
        ("DATABASE_SCHEMA", "elsewhere"),  # on SQLite, the default database
    ],
)
def test_bad_values_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})
    assert raised.value.variable == variable
    assert str(raised.value).startswith(f"{variable}: ")


def test_production_requires_a_session_secret_where_cookies_are_used() -> None:
    unset = Settings.from_env({"SERVICE_ENV": "production"})
    with pytest.raises(ConfigError, match="SESSION_SECRET"):
        require_session_secret(unset)
    env = {"SERVICE_ENV": "production", "DATABASE_URL": "sqlite:///unused.db"}
    for command in (["serve", "--no-relay"], ["session", "issue", "--user-id", "1"]):
        result = CliRunner().invoke(main, command, env=env)
        assert result.exit_code == 2
        assert "SESSION_SECRET: required when SERVICE_ENV=production" in result.output
    strong = "3f9c2a7be1d04c5f8a6b9e2d7c1f0a4b"
    settings = Settings.from_env({"SERVICE_ENV": "production", "SESSION_SECRET": strong})
    assert settings.session_cookie_secure


def test_cli_prints_one_line_and_exits_2_on_a_bad_value() -> None:
    result = CliRunner().invoke(main, ["db", "current"], env={"PORT": "nope"})
    assert result.exit_code == 2
    assert result.output.strip() == "error: PORT: must be an integer, got 'nope'"


def test_durations_accept_units() -> None:
    settings = Settings.from_env(
        {"RELAY_POLL_INTERVAL": "250ms", "RETENTION_DELIVERED": "2d", "RETENTION_DEAD": "never"}
    )
    assert settings.relay.poll_interval == 0.25
    assert settings.relay.delivered_retention == 2 * 86400
    assert settings.relay.dead_retention is None


def test_only_refusals_and_the_time_budget_bury_by_default() -> None:
    relay = Settings.from_env({}).relay
    assert relay.give_up_after == 3 * 86400
    assert relay.max_attempts is None  # no attempt limit can fire inside the time budget
    assert relay.probe_max == 5.0
    tuned = Settings.from_env(
        {"RELAY_GIVE_UP_AFTER": "never", "RELAY_MAX_ATTEMPTS": "40", "RELAY_PROBE_MAX": "30s"}
    ).relay
    assert (tuned.give_up_after, tuned.max_attempts, tuned.probe_max) == (None, 40, 30.0)
    assert Settings.from_env({"RELAY_MAX_ATTEMPTS": "never"}).relay.max_attempts is None


def test_event_api_settings() -> None:
    defaults = Settings.from_env({}).event_api
    assert (defaults.keys, defaults.max_event_bytes) == ((), 256 * 1024)
    read = Settings.from_env(
        {
            "EVENT_API_KEYS": " k-1 , k.2~_ ,",
            "EVENT_MAX_BYTES": "1024",
            "EVENT_BODY_MAX_BYTES": "4096",
        }
    ).event_api
    assert (read.keys, read.max_event_bytes, read.max_body_bytes) == (("k-1", "k.2~_"), 1024, 4096)


def test_the_defaults_of_the_dataclass_are_those_of_an_empty_environment() -> None:
    assert Settings() == Settings.from_env({})


def test_the_readme_table_is_the_declarations() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert render() in readme, "the README's configuration table is stale: run `make docs`"
    assert replace_table(readme) == readme


def test_each_variable_is_declared_once_and_its_shown_default_reads_back() -> None:
    names = [variable.name for variable in variables()]
    assert len(names) == len(set(names))
    for variable in variables():
        shown = variable.default_text
        if variable.shown or not shown.startswith("`"):
            continue  # prose, or "none": an unset variable
        assert variable.read({variable.name: shown.strip("`")}) == variable.default, variable.name


def test_database_schema_needs_postgresql() -> None:
    env = {"DATABASE_URL": "sqlite:///x.db", "DATABASE_SCHEMA": "elsewhere"}
    refused = CliRunner().invoke(main, ["db", "current"], env=env)
    assert refused.exit_code == 2
    assert refused.output.strip() == (
        "error: DATABASE_SCHEMA: SQLite has no schemas: unset it, or use PostgreSQL"
    )
    on_postgresql = {"DATABASE_URL": "postgresql://u@h/db", "DATABASE_SCHEMA": "inngest_outbox"}
    assert Settings.from_env(on_postgresql).database_schema == "inngest_outbox"

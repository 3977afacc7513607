"""docker-compose.yml, the Dockerfile and .dockerignore: valid, and wired to what the service
really reads and runs.

There is no Docker engine in CI, so nothing is built or started here. Instead: the compose file
is validated against the compose specification's JSON schema (the copy check-jsonschema ships,
so no network), every ``service ...`` command it runs is parsed by the real click CLI, every
environment variable it sets for the service is one ``Settings.from_env`` asks for (and the
values pass its validation), and the topology (health checks, start order, replicas) is the
documented one.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import check_jsonschema
import click
import dockerfile
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy.engine import URL, make_url

from service.cli.main import main as cli
from service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_PATH = ROOT / "docker-compose.yml"
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_PATH.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = dockerfile.parse_file(str(ROOT / "Dockerfile"))

# What a user supplies for the file's required variables (${VAR:?message}).
USER_ENV = {"SESSION_SECRET": "compose-test-secret-0123456789-abcdefghij"}
# Variables of third-party images, per compose service; anything else they set is a typo.
THIRD_PARTY_VARIABLES = {
    "postgres": frozenset(
        {
            "POSTGRES_USER",
            "POSTGRES_PASSWORD",
            "POSTGRES_DB",
            "POSTGRES_INITDB_ARGS",
            "POSTGRES_HOST_AUTH_METHOD",
            "PGDATA",
        }
    ),
    "pgbouncer": frozenset(
        {
            "DATABASE_URL",
            "POOL_MODE",
            "AUTH_TYPE",
            "LISTEN_PORT",
            "MAX_CLIENT_CONN",
            "DEFAULT_POOL_SIZE",
        }
    ),
    "inngest": frozenset(
        {"INNGEST_DEV", "INNGEST_EVENT_KEY", "INNGEST_SIGNING_KEY", "INNGEST_LOG_LEVEL"}
    ),
    # The observability profile (tests/system/test_compose_observability.py).
    "prometheus": frozenset(),
    "grafana": frozenset(
        {
            "GF_AUTH_ANONYMOUS_ENABLED",
            "GF_AUTH_ANONYMOUS_ORG_ROLE",
            "GF_SECURITY_ADMIN_PASSWORD",
            "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH",
        }
    ),
}
# Set by the Dockerfile for Python and pip rather than for the service.
RUNTIME_VARIABLES = frozenset(
    {
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "PIP_NO_CACHE_DIR",
        "PIP_DISABLE_PIP_VERSION_CHECK",
    }
)


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every variable it was asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self._values[name]

    def get(self, name: str, default: Any = None) -> Any:
        self.asked.add(name)
        return self._values.get(name, default)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.asked.add(name)
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def read_settings(env: Mapping[str, str]) -> tuple[Settings, set[str]]:
    """``Settings.from_env(env)`` and the names of every variable it asked for."""
    recording = RecordingEnv(env)
    return Settings.from_env(recording), recording.asked


def settings_variables() -> set[str]:
    """Every variable ``Settings.from_env`` can read: an empty environment takes every
    default, so every reader runs; the others walk the branches that read more."""
    names: set[str] = set()
    for env in (
        {},
        {"SERVICE_ENV": "production", **USER_ENV},
        {"INNGEST_DEV": "1"},
        {"INNGEST_BASE_URL": "https://inngest.example"},
        {"INNGEST_EVENT_API_BASE_URL": "https://inngest.example"},
    ):
        names |= read_settings(env)[1]
    return names


_VARIABLE = re.compile(r"\$(?:\$|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


def interpolate(value: str, env: Mapping[str, str] = USER_ENV) -> str:
    """Compose's interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?error}`` and ``${VAR?error}``."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        present = name in env and (env[name] != "" or operator in ("-", "?"))
        if present:
            return env[name]
        if operator in (":?", "?"):
            pytest.fail(f"docker-compose.yml requires {name}: {argument}")
        return argument if operator in (":-", "-") else ""

    return _VARIABLE.sub(substitute, value)


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment, interpolated (mapping or list form)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {name: interpolate(str(value)) for name, value in raw.items()}


def builds_this_project(service: Mapping[str, Any]) -> bool:
    build = service.get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    return context is not None and (ROOT / context).resolve() == ROOT


OURS = {name: spec for name, spec in SERVICES.items() if builds_this_project(spec)}


def final_stage() -> list[dockerfile.Command]:
    start = max(i for i, command in enumerate(DOCKERFILE) if command.cmd == "FROM")
    return list(DOCKERFILE[start:])


def instruction(name: str, stage: list[dockerfile.Command] | None = None) -> dockerfile.Command:
    """The last ``name`` instruction of the final stage (the one in force)."""
    matches = [c for c in (stage or final_stage()) if c.cmd == name]
    assert matches, f"the Dockerfile's final stage has no {name}"
    return matches[-1]


def image_environment() -> dict[str, str]:
    """The ENV of the final stage."""
    env: dict[str, str] = {}
    for command in final_stage():
        if command.cmd == "ENV":
            pairs = command.value
            env.update(zip(pairs[::2], pairs[1::2], strict=True))
    return env


def argv(service: Mapping[str, Any]) -> list[str]:
    """The arguments a service passes to the image's ``service`` entry point."""
    entrypoint = service.get("entrypoint") or list(instruction("ENTRYPOINT").value)
    command = service.get("command") or list(instruction("CMD").value)
    if isinstance(entrypoint, str) or isinstance(command, str):
        pytest.fail("use the exec (list) form for entrypoint and command")
    assert entrypoint == ["service"], entrypoint
    return [str(arg) for arg in command]


def parse_cli(args: list[str]) -> click.Context:
    """Parse ``service ARGS`` with the real CLI down to its command, invoking nothing.
    Unknown commands, unknown options and bad option values raise click's errors."""
    command: click.Command = cli
    path = ["service"]
    while isinstance(command, click.Group):
        assert args, f"`{' '.join(path)}` needs a subcommand"
        name, args = args[0], args[1:]
        sub = command.get_command(click.Context(command), name)
        assert sub is not None, f"`{' '.join(path)}` has no command {name!r}"
        command, path = sub, [*path, name]
    return command.make_context(" ".join(path), list(args))


def running(*words: str) -> dict[str, dict[str, Any]]:
    """The services of this project whose command starts with ``words``."""
    return {n: s for n, s in OURS.items() if argv(s)[: len(words)] == list(words)}


def replicas(service: Mapping[str, Any]) -> int:
    return int(service.get("deploy", {}).get("replicas", 1))


# --- the compose file ------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    result = CliRunner().invoke(
        check_jsonschema.main,
        ["--builtin-schema", "vendor.compose-spec", str(COMPOSE_PATH)],
    )
    assert result.exit_code == 0, result.output


def test_the_specification_check_can_fail(tmp_path: Path) -> None:
    # A misspelt key and a start condition compose does not know.
    broken = dict(COMPOSE, services={"api": {"image": "x", "healthchek": {}}})
    broken["services"]["relay"] = {"image": "x", "depends_on": {"api": {"condition": "up"}}}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = CliRunner().invoke(
        check_jsonschema.main, ["--builtin-schema", "vendor.compose-spec", str(path)]
    )
    assert result.exit_code != 0
    assert "healthchek" in result.output
    assert "condition" in result.output


def test_every_service_is_ours_or_a_known_image() -> None:
    assert OURS, "no service builds this project"
    assert set(SERVICES) == set(OURS) | set(THIRD_PARTY_VARIABLES)


@pytest.mark.parametrize("name", sorted(OURS))
def test_commands_exist_in_the_cli(name: str) -> None:
    parse_cli(argv(OURS[name]))


def test_the_cli_check_can_fail() -> None:
    with pytest.raises(click.NoSuchOption):
        parse_cli(["serve", "--no-such-flag"])
    with pytest.raises(AssertionError):
        parse_cli(["db", "downgrade"])
    with pytest.raises(click.BadParameter):
        parse_cli(["relay", "--metrics-port", "nine"])


@pytest.mark.parametrize("name", sorted(OURS))
def test_service_variables_are_read_by_settings(name: str) -> None:
    known = settings_variables()
    unknown = set(environment(OURS[name])) - known
    assert not unknown, f"{name} sets variables the service never reads: {sorted(unknown)}"


def test_the_variable_check_knows_the_settings() -> None:
    known = settings_variables()
    assert {"DATABASE_URL", "SESSION_SECRET", "RELAY_METRICS_HOST", "INNGEST_DEV"} <= known
    assert "POSTGRES_PASSWORD" not in known


@pytest.mark.parametrize("name", sorted(OURS))
def test_service_settings_are_valid(name: str) -> None:
    """The container's whole environment (the image's ENV, then the service's) passes the
    service's own validation: what ``service`` would do first when it starts."""
    settings, _ = read_settings({**image_environment(), **environment(OURS[name])})
    assert settings.is_production
    single_host = settings.database_url.startswith("sqlite")
    assert not single_host, "SQLite is single-host: compose runs PostgreSQL"


@pytest.mark.parametrize("name", sorted(THIRD_PARTY_VARIABLES))
def test_third_party_variables_are_whitelisted(name: str) -> None:
    unknown = set(environment(SERVICES[name])) - THIRD_PARTY_VARIABLES[name]
    assert not unknown, f"{name} sets variables its image does not read: {sorted(unknown)}"


def _credentials_of_postgres(url: URL) -> None:
    postgres = environment(SERVICES["postgres"])
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.database == postgres["POSTGRES_DB"]


def test_queries_go_through_pgbouncer_and_sessions_to_postgres() -> None:
    assert SERVICES["postgres"]["image"].split(":")[1].startswith("15")
    pooler = environment(SERVICES["pgbouncer"])
    assert pooler["POOL_MODE"] == "transaction"
    behind = make_url(pooler["DATABASE_URL"])
    assert (behind.host, behind.port or 5432) == ("postgres", 5432)
    _credentials_of_postgres(behind)
    for name, service in OURS.items():
        settings = Settings.from_env(environment(service))
        assert settings.postgres.pgbouncer, f"{name} must know it goes through a pooler"
        url = make_url(settings.database_url)
        assert (url.host, url.port) == ("pgbouncer", int(pooler["LISTEN_PORT"])), name
        _credentials_of_postgres(url)
        direct = make_url(settings.database_direct_url)
        assert (direct.host, direct.port or 5432) == ("postgres", 5432), name
        _credentials_of_postgres(direct)


def test_what_queries_through_the_pooler_waits_for_it() -> None:
    assert SERVICES["pgbouncer"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in [*running("serve"), *running("relay")]:
        assert SERVICES[name]["depends_on"]["pgbouncer"]["condition"] == "service_healthy", name


def test_postgres_is_healthy_before_migrations_and_keeps_its_data() -> None:
    postgres = SERVICES["postgres"]
    assert "pg_isready" in postgres["healthcheck"]["test"]
    [volume] = postgres["volumes"]
    assert volume.split(":")[0] in COMPOSE["volumes"], "data must be on a named volume"
    [migrate] = running("db", "upgrade").values()
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no"


def test_the_api_serves_without_relay_after_the_migration() -> None:
    [(name, api)] = running("serve").items()
    assert "--no-relay" in argv(api)
    [migration] = running("db", "upgrade")
    assert api["depends_on"][migration]["condition"] == "service_completed_successfully"
    settings = Settings.from_env({**image_environment(), **environment(api)})
    assert settings.host == "0.0.0.0", f"{name} must listen on every interface of its container"
    probe = " ".join(api["healthcheck"]["test"])
    assert re.search(rf"http://(127\.0\.0\.1|localhost):{settings.port}/(ready|health)\b", probe)


def test_relays_run_replicated_and_healthy_after_migration_and_inngest() -> None:
    relays = running("relay")
    assert sum(replicas(service) for service in relays.values()) >= 2
    [migration] = running("db", "upgrade")
    for name, relay in relays.items():
        assert relay["depends_on"][migration]["condition"] == "service_completed_successfully"
        assert relay["depends_on"]["inngest"]["condition"] == "service_healthy"
        settings = Settings.from_env({**image_environment(), **environment(relay)})
        assert settings.relay.metrics_host == "0.0.0.0", f"{name}: /health unreachable"
        port = settings.relay.metrics_port
        probe = " ".join(relay["healthcheck"]["test"])
        assert re.search(rf"http://(127\.0\.0\.1|localhost):{port}/health\b", probe), name
        # Delivery goes to the compose Inngest dev server, in dev mode.
        assert settings.inngest.dev_mode
        assert urlsplit(settings.inngest.origin).hostname == "inngest", name


def test_inngest_dev_server_listens_where_the_relays_send() -> None:
    inngest = SERVICES["inngest"]
    assert inngest["image"].split(":")[0] == "inngest/inngest"
    command = inngest["command"]
    assert command[:2] == ["inngest", "dev"]
    port = command[command.index("--port") + 1] if "--port" in command else "8288"
    assert port == "8288"
    assert "healthcheck" in inngest
    for relay in running("relay").values():
        assert environment(relay)["INNGEST_DEV"] == f"http://inngest:{port}"


def test_long_running_services_have_health_checks() -> None:
    for name, service in SERVICES.items():
        one_shot = service.get("restart") == "no"
        assert one_shot or "healthcheck" in service, f"{name} has no health check"


# --- the Dockerfile and .dockerignore --------------------------------------------------------


def test_the_image_is_slim_python_311() -> None:
    args = dict(
        c.value[0].split("=", 1) for c in DOCKERFILE if c.cmd == "ARG" and "=" in c.value[0]
    )
    base = instruction("FROM").value[0]
    base = re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], base)
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:\w+)?", base), base


def test_the_image_runs_as_a_user_that_is_not_root() -> None:
    user = instruction("USER").value[0].split(":")[0]
    assert user not in ("root", "0", "")


def test_the_entry_point_is_the_cli_and_the_default_command_exists() -> None:
    entrypoint = instruction("ENTRYPOINT")
    assert entrypoint.json and list(entrypoint.value) == ["service"]
    cmd = instruction("CMD")
    assert cmd.json
    parse_cli(list(cmd.value))


def test_the_image_has_the_migrations_where_the_code_looks() -> None:
    """service.migrate looks for alembic.ini in the working directory (the package is in
    site-packages); alembic.ini names %(here)s/migrations."""
    workdir = instruction("WORKDIR").value[0]
    copied = {}
    for command in final_stage():
        if command.cmd == "COPY" and not any(f.startswith("--from") for f in command.flags):
            *sources, destination = command.value
            for source in sources:
                target = destination if not destination.endswith("/") else destination + source
                target = target if target.startswith("/") else f"{workdir}/{target}"
                copied[source] = str(Path(target.replace("/./", "/")))
    assert copied.get("alembic.ini") == f"{workdir}/alembic.ini"
    assert copied.get("migrations") == f"{workdir}/migrations"
    assert "%(here)s/migrations" in (ROOT / "alembic.ini").read_text()


def test_the_build_fetches_nothing_but_packages() -> None:
    for command in DOCKERFILE:
        text = command.original.lower()
        assert command.cmd != "ADD", "ADD can fetch URLs: use COPY"
        assert not re.search(r"\b(curl|wget|git)\b", text), command.original
    installs = [c for c in final_stage() if c.cmd == "RUN" and "pip install" in c.value[0]]
    assert installs and all("--no-index" in c.value[0] for c in installs)


def test_the_image_env_is_read_by_the_service() -> None:
    unknown = set(image_environment()) - settings_variables() - RUNTIME_VARIABLES
    assert not unknown, sorted(unknown)


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_local_state_out_and_the_sources_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (".venv", "var", "var/dev-session-secret", ".git", ".pytest_cache", ".mypy_cache"):
        assert _ignored(path, patterns), f"{path} would be sent to the build"
    for command in DOCKERFILE:
        if command.cmd == "COPY" and not any(f.startswith("--from") for f in command.flags):
            for source in command.value[:-1]:
                assert (ROOT / source).exists(), source
                assert not _ignored(source, patterns), f"{source} is copied but ignored"

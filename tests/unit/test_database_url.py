"""The one reading of a database URL: libpq's and Prisma's parameters, libpq's environment,
every refusal a line that names the parameter, and the connection arguments that follow."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from service.config import ConfigError, NextAuthDatabaseSettings, Settings
from service.config.database_url import (
    DEFAULT_CONNECT_TIMEOUT,
    TlsCheck,
    masked,
    parse_postgres_url,
)
from service.config.mysql_url import parse_mysql_url
from service.store.backends.postgres_connect import connect_arguments, pool_connect_args

CA = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
needs_ca = pytest.mark.skipif(not CA.is_file(), reason="no CA bundle on this machine")


@pytest.mark.parametrize("scheme", ["postgresql://", "postgres://", "postgresql+asyncpg://"])
def test_every_scheme_and_a_password_with_escapes(scheme: str) -> None:
    url = parse_postgres_url(f"{scheme}app:p%40ss%23w%2Frd@db.example.com:6543/app")
    assert (url.user, url.password, url.database) == ("app", "p@ss#w/rd", "app")
    assert (url.hosts, url.ports) == (("db.example.com",), (6543,))


def test_ipv6_hosts_several_hosts_and_a_socket_directory(tmp_path: Path) -> None:
    url = parse_postgres_url("postgresql://u@[::1]:5433,db2:5434,[fe80::1]:5435/d")
    assert url.hosts == ("::1", "db2", "fe80::1") and url.ports == (5433, 5434, 5435)
    one_port = parse_postgres_url("postgresql://u@/d?host=h1,h2&port=6000")
    assert one_port.hosts == ("h1", "h2") and one_port.ports == (6000, 6000)
    socket = parse_postgres_url(f"postgresql://u@/d?host={tmp_path}")
    assert socket.hosts == (str(tmp_path),)
    assert url.where == "[::1]:5433,db2:5434,[fe80::1]:5435/d"


def test_libpq_defaults() -> None:
    url = parse_postgres_url("postgresql://u@h/d")
    assert url.sslmode == "prefer" and url.connect_timeout == DEFAULT_CONNECT_TIMEOUT
    assert url.tls_check == TlsCheck.NONE and not url.tls_required and url.statement_cache == 100


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("sslmode=maybe", "sslmode=maybe: takes one of disable, allow, prefer, require"),
        ("sslrootcert=/no/such/ca.pem", "sslrootcert=/no/such/ca.pem: no such file"),
        ("connection_limit=0", "connection_limit=0: takes a whole number from 1 to 100"),
        ("connect_timeout=soon", "connect_timeout=soon: takes a number of seconds"),
        ("pgbouncer=perhaps", "pgbouncer=perhaps: takes true or false"),
        ("sslaccept=sure", "sslaccept=sure: takes one of strict, accept_invalid_certs"),
        ("target_session_attrs=any-old", "target_session_attrs=any-old: takes one of any"),
        ("frobnicate=1", "unknown parameter 'frobnicate': the URL takes host, port"),
        ("sslmode=require&sslmode=disable", "sslmode is given twice"),
        ("sslidentity=id.p12", "sslidentity: a PKCS#12 identity is not read"),
        ("sslmode=verify-full", "sslmode=verify-full verifies the server's certificate: give"),
        ("sslmode=require&sslrootcert=system", "sslrootcert=system needs sslmode=verify-full"),
        ("sslmode=disable&sslaccept=strict", "sslaccept is given but sslmode=disable"),
        ("pgbouncer=true&statement_cache_size=100", "pgbouncer=true turns prepared statements"),
        ("schema=Bad-Name", "schema: must be 1 to 48 lower-case letters"),
        ("channel_binding=require", "channel_binding=require: require cannot be met"),
        ("channel_binding=always", "channel_binding=always: takes one of disable, prefer"),
    ],
)
def test_a_bad_parameter_is_one_line_naming_it(query: str, reason: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"DATABASE_URL": f"postgresql://app:secret@h/app?{query}"})
    message = str(refused.value)
    assert message.startswith(f"DATABASE_URL: {reason}"), message
    assert "\n" not in message and "secret" not in message


def test_a_bad_url_never_shows_its_password() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"DATABASE_URL": "postgresql://app:hunter2@h:port/app"})
    assert "hunter2" not in str(refused.value)
    assert masked("postgresql://app:hunter2@h/app?x=1") == "postgresql://app:***@h/app?x=1"


@needs_ca
def test_libpq_environment_fills_what_the_url_leaves_out() -> None:
    env = {
        "DATABASE_URL": "postgresql://app@h/app?application_name=mine",
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": str(CA),
        "PGAPPNAME": "theirs",
        "PGCONNECT_TIMEOUT": "3",
        "PGPASSWORD": "from-env",
    }
    url = Settings.from_env(env).postgres
    assert (url.sslmode, url.sslrootcert, url.connect_timeout) == ("verify-full", str(CA), 3)
    assert url.application_name == "mine" and url.password == "from-env"
    written = Settings.from_env({**env, "DATABASE_URL": "postgresql://app:own@h/app"})
    assert written.postgres.password == "own"


def test_a_bad_libpq_variable_is_named() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"DATABASE_URL": "postgresql://h/app", "PGSSLMODE": "sometimes"})
    assert str(refused.value).startswith("PGSSLMODE: sslmode=sometimes: takes one of")


def test_prismas_parameters_become_the_settings_they_mean() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://app:pw@h/app?schema=app&connection_limit=5"
            "&pool_timeout=7&application_name=svc&pgbouncer=true&socket_timeout=9"
        }
    )
    assert settings.database_schema == "app" and settings.db_pool_size == 5
    url = settings.postgres
    assert (url.pool_timeout, url.socket_timeout, url.pgbouncer) == (7, 9, True)
    assert url.statement_cache == 0 and settings.postgres_direct is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DATABASE_SCHEMA": "other"}, "DATABASE_SCHEMA"),
        ({"DB_POOL_SIZE": "9"}, "DB_POOL_SIZE"),
    ],
)
def test_two_settings_that_disagree_are_refused(env: dict[str, str], variable: str) -> None:
    url = "postgresql://h/app?schema=app&connection_limit=5"
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"DATABASE_URL": url, **env})
    assert refused.value.variable == variable and "disagrees with DATABASE_URL's" in str(
        refused.value
    )
    agreeing = Settings.from_env({"DATABASE_URL": url, "DATABASE_SCHEMA": "app"})
    assert agreeing.database_schema == "app"


def test_the_direct_url() -> None:
    pooled = "postgresql://app:pw@pooler:6543/app?pgbouncer=true"
    settings = Settings.from_env(
        {"DATABASE_URL": pooled, "DATABASE_DIRECT_URL": "postgresql://app:pw@db:5432/app"}
    )
    assert settings.postgres_direct is not None and settings.postgres_direct.hosts == ("db",)
    plain = Settings.from_env({"DATABASE_URL": "postgresql://app@db/app"})
    assert plain.postgres_direct == plain.postgres
    for env, says in (
        ({"DATABASE_URL": pooled, "DATABASE_DIRECT_URL": pooled}, "says pgbouncer=true"),
        ({"DATABASE_DIRECT_URL": "postgresql://db/app"}, "is for PostgreSQL"),
        ({"DATABASE_URL": pooled, "DATABASE_DIRECT_URL": "mysql://db/app"}, "postgresql://"),
    ):
        with pytest.raises(ConfigError, match=says):
            Settings.from_env(env)


@needs_ca
@pytest.mark.parametrize(
    ("query", "check", "verify_mode", "check_hostname"),
    [
        ("sslmode=require", TlsCheck.NONE, ssl.CERT_NONE, False),
        ("sslmode=require&sslrootcert={ca}", TlsCheck.CHAIN, ssl.CERT_REQUIRED, False),
        ("sslmode=verify-ca&sslrootcert={ca}", TlsCheck.CHAIN, ssl.CERT_REQUIRED, False),
        ("sslmode=verify-full&sslrootcert={ca}", TlsCheck.CHAIN_AND_HOST, ssl.CERT_REQUIRED, True),
        ("sslrootcert=system", TlsCheck.CHAIN_AND_HOST, ssl.CERT_REQUIRED, True),
        ("sslmode=require&sslaccept=strict", TlsCheck.CHAIN_AND_HOST, ssl.CERT_REQUIRED, True),
        ("sslmode=require&sslaccept=accept_invalid_certs", TlsCheck.NONE, ssl.CERT_NONE, False),
        ("sslmode=require&sslaccept=strict&sslcert={ca}", TlsCheck.CHAIN_AND_HOST, 2, True),
    ],
)
def test_tls_verifies_what_the_url_says(
    query: str, check: str, verify_mode: int, check_hostname: bool
) -> None:
    url = parse_postgres_url(f"postgresql://u@h/d?{query.format(ca=CA)}")
    assert url.tls_check == check and url.tls_required
    context = connect_arguments(url)["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert (context.verify_mode, context.check_hostname) == (verify_mode, check_hostname)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize("mode", ["allow", "prefer"])
def test_allow_and_prefer_are_asyncpgs_own_modes(mode: str) -> None:
    assert (
        connect_arguments(parse_postgres_url(f"postgresql://u@h/d?sslmode={mode}"))["ssl"] == mode
    )
    disabled = connect_arguments(parse_postgres_url("postgresql://u@h/d?sslmode=disable"))
    assert disabled["ssl"] is False


def test_connection_arguments() -> None:
    url = parse_postgres_url(
        "postgresql://u:pw@h1:1,h2:2/d?connect_timeout=0&application_name=svc"
        "&options=-c%20search_path%3Dapp&target_session_attrs=read-write&socket_timeout=4"
    )
    args = connect_arguments(url)
    assert (args["host"], args["port"], args["user"], args["password"]) == (
        ["h1", "h2"],
        [1, 2],
        "u",
        "pw",
    )
    assert args["timeout"] == 86400 and args["command_timeout"] == 4  # 0: libpq's no limit
    assert args["server_settings"] == {"application_name": "svc", "options": "-c search_path=app"}
    assert args["target_session_attrs"] == "read-write"


def test_behind_a_pooler_no_statement_is_kept_and_names_are_unique() -> None:
    pooled = pool_connect_args(parse_postgres_url("postgresql://h/d?pgbouncer=true"))
    assert pooled["prepared_statement_cache_size"] == 0
    name = pooled["prepared_statement_name_func"]
    assert name() != name()
    direct = pool_connect_args(parse_postgres_url("postgresql://h/d"))
    assert direct["prepared_statement_cache_size"] == 100
    assert "prepared_statement_name_func" not in direct


def test_the_apps_url_takes_the_same_reading(tmp_path: Path) -> None:
    app = NextAuthDatabaseSettings.from_env(
        {"NEXTAUTH_DATABASE_URL": "postgresql://app@db/app?sslmode=require&schema=auth"}
    )
    assert app.postgres.sslmode == "require" and app.url_schema == "auth"
    with pytest.raises(ConfigError, match="NEXTAUTH_DATABASE_URL: sslmode=maybe"):
        NextAuthDatabaseSettings.from_env(
            {"NEXTAUTH_DATABASE_URL": "postgresql://db/a?sslmode=maybe"}
        )
    env = {"NEXTAUTH_DATABASE_URL": "postgresql://db/a", "PGSSLMODE": "require"}
    assert NextAuthDatabaseSettings.from_env(env).postgres.sslmode == "require"


def test_a_mysql_url_in_mysqls_words_and_prismas(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    assert parse_mysql_url(f"mysql://u@db/a?ssl-mode=verify_identity&ssl-ca={ca}").verifies_host
    prisma = parse_mysql_url(f"mysql://u@db/a?sslaccept=strict&sslcert={ca}&connection_limit=3")
    assert (prisma.ssl_mode, prisma.ca_file, prisma.connection_limit) == (
        "VERIFY_IDENTITY",
        str(ca),
        3,
    )
    assert parse_mysql_url("mysql://u@db/a?sslaccept=accept_invalid_certs").ssl_mode == "REQUIRED"
    assert parse_mysql_url("mysql://u@db/a?sslmode=required").base == "mysql://u@db/a"
    for query, says in (
        ("ssl-mode=sometimes", "ssl-mode=sometimes: takes one of DISABLED"),
        ("ssl-ca=/no/such.pem", "ssl-ca=/no/such.pem: no such file"),
        ("connection_limit=0", "connection_limit=0: takes a whole number"),
        ("charset=utf8", "unknown parameter 'charset'"),
        ("ssl-mode=disabled&sslaccept=strict", "ssl-mode=DISABLED never uses TLS"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_mysql_url(f"mysql://u@db/a?{query}")


@pytest.mark.parametrize(
    "url",
    [
        # Neon, pooled and direct
        "postgresql://app:pw@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb"
        "?sslmode=require&channel_binding=prefer&pgbouncer=true",
        "postgresql://app:pw@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb"
        "?sslmode=verify-full&sslrootcert=system",
        # Supabase's pooler (transaction mode) and its direct port
        "postgres://postgres.abcdefghijklmnop:pw@aws-0-eu-central-1.pooler.supabase.com:6543"
        "/postgres?pgbouncer=true&connection_limit=1",
        "postgres://postgres:pw@db.abcdefghijklmnop.supabase.co:5432/postgres?sslmode=require",
        # Heroku
        "postgres://u1a2b3:p4ss@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d5e6f7?sslmode=require",
    ],
)
def test_hosted_providers_urls_are_read(url: str) -> None:
    settings = Settings.from_env({"DATABASE_URL": url})
    assert settings.postgres.tls_required or settings.postgres.pgbouncer

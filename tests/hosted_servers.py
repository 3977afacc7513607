"""Servers shaped like a hosted PostgreSQL: a private cluster that takes only TLS with SCRAM
passwords or client certificates, one that has no TLS at all, and PgBouncer in transaction
mode in front of the first, with TLS to its clients.

Each is started by the fixtures below from the machine's own programs (PostgreSQL's ``initdb``
and ``pg_ctl``, Debian's ``pgbouncer``), on a free port, once per test process. Their
certificates are made here by a test authority (``trustme``): the server's names only
``localhost``, so that ``127.0.0.1`` is the wrong host name for ``verify-full``.

Without those programs the tests skip with the reason; with ``REQUIRE_PGBOUNCER`` set (as in
CI) they fail instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import asyncpg
import pytest
import trustme

from tests.conftest import POSTGRES_ADMIN_URL
from tests.processes import free_port

APP_USER = "app"
APP_PASSWORD = "p@ss/w#rd"  # percent-escapes in the URL: '@', '/' and '#' all need them
APP_DATABASE = "app"
CERT_USER = "certuser"  # logs in with its client certificate alone
SERVER_NAME = "localhost"
PGBOUNCER = "/usr/sbin/pgbouncer"
REQUIRED = "REQUIRE_PGBOUNCER"
STARTUP_SECONDS = 60


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def missing_programs() -> str | None:
    """Why the servers of this module cannot start here, or None."""
    if _postgres_bin() is None:
        return "PostgreSQL's server programs (initdb, pg_ctl) are not installed"
    if not os.access(PGBOUNCER, os.X_OK):
        return f"pgbouncer is not installed ({PGBOUNCER})"
    return None


def _require_programs() -> None:
    reason = missing_programs()
    if reason and os.environ.get(REQUIRED):
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)


class _Owner:
    """Who runs the servers: PostgreSQL and PgBouncer refuse root, so as root the account
    ``postgres`` does, and the servers' files are given to it."""

    def __init__(self) -> None:
        self.account = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    def command(self, *args: str | Path) -> list[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self.account else []
        return [*prefix, *map(str, args)]

    def give(self, *paths: Path) -> None:
        if self.account:
            for path in paths:
                os.chown(path, self.account.pw_uid, self.account.pw_gid)


@dataclass(frozen=True)
class Certificates:
    """The test authority's files: what a client trusts and what it shows."""

    ca: Path  # signed the servers' certificates and the client's
    wrong_ca: Path  # an authority that signed nothing here
    client_cert: Path  # CN=certuser
    client_key: Path
    server_cert: Path  # names localhost only
    server_key: Path


@dataclass(frozen=True)
class Server:
    """A server's address and the URL of the app's database on it."""

    host: str
    port: int

    def url(
        self,
        *,
        user: str = APP_USER,
        password: str | None = APP_PASSWORD,
        host: str | None = None,
        database: str = APP_DATABASE,
        **params: str | Path,
    ) -> str:
        """``postgresql://app:…@localhost:PORT/app?PARAMS`` (the password percent-escaped)."""
        credentials = quote(user, safe="")
        if password is not None:
            credentials += ":" + quote(password, safe="")
        query = f"?{urlencode({k: str(v) for k, v in params.items()})}" if params else ""
        return f"postgresql://{credentials}@{host or self.host}:{self.port}/{database}{query}"


@dataclass(frozen=True)
class Cluster(Server):
    """A private PostgreSQL cluster; its superuser ``postgres`` logs in over the socket."""

    directory: Path
    log: Path

    async def execute(self, *statements: str, database: str = APP_DATABASE) -> list[object]:
        """Run ``statements`` as the superuser; the value of the last one's first column."""
        conn = await asyncpg.connect(
            host=str(self.directory), port=self.port, user="postgres", database=database
        )
        try:
            values: list[object] = []
            for statement in statements:
                values = [row[0] for row in await conn.fetch(statement)]
            return values
        finally:
            await conn.close()

    async def fresh_database(self) -> str:
        """A new empty database owned by the app's role (nothing migrated)."""
        name = f"app_{os.urandom(5).hex()}"
        await self.execute(f'CREATE DATABASE "{name}" OWNER {APP_USER}', database="postgres")
        return name


@dataclass(frozen=True)
class Bouncer(Server):
    """PgBouncer in transaction mode, with TLS to its clients."""

    log: Path


@dataclass(frozen=True)
class PooledCluster(Bouncer):
    """PgBouncer in front of a private cluster: each of the cluster's databases by its name."""

    cluster: Cluster


def _wait_for_port(port: int, process: subprocess.Popen[bytes] | None, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port} after {STARTUP_SECONDS}s: {log}")


def _stop_server(process: subprocess.Popen[bytes], directory: Path) -> None:
    """SIGTERM (a clean shutdown), SIGKILL if that takes over 30 s; then its files go."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    shutil.rmtree(directory, ignore_errors=True)


def _private_directory(owner: _Owner, prefix: str) -> Path:
    # Not under pytest's tmp_path: that is private to this account, and the servers run as
    # another one when the tests run as root.
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    directory.chmod(0o755)
    owner.give(directory)
    return directory


def _write(path: Path, text: str | bytes, owner: _Owner, mode: int = 0o644) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    path.chmod(mode)
    owner.give(path)
    return path


@contextlib.contextmanager
def issued_certificates() -> Iterator[Certificates]:
    """A test authority's certificates, in a directory every server's account can read."""
    owner = _Owner()
    authority, stranger = trustme.CA(), trustme.CA()
    client = authority.issue_cert(CERT_USER, common_name=CERT_USER)
    server = authority.issue_cert(SERVER_NAME)
    directory = _private_directory(owner, "service-tls-")
    try:
        yield Certificates(
            ca=_write(directory / "ca.pem", authority.cert_pem.bytes(), owner),
            wrong_ca=_write(directory / "wrong-ca.pem", stranger.cert_pem.bytes(), owner),
            client_cert=_write(directory / "client.crt", client.cert_chain_pems[0].bytes(), owner),
            client_key=_write(
                directory / "client.key", client.private_key_pem.bytes(), owner, 0o600
            ),
            server_cert=_write(directory / "server.crt", server.cert_chain_pems[0].bytes(), owner),
            server_key=_write(
                directory / "server.key", server.private_key_pem.bytes(), owner, 0o600
            ),
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def certificates() -> Iterator[Certificates]:
    _require_programs()
    with issued_certificates() as files:
        yield files


@contextlib.contextmanager
def running_cluster(
    certificates: Certificates | None, *, plain_too: bool = False, settings: Sequence[str] = ()
) -> Iterator[Cluster]:
    """A cluster started for the block: with TLS (``certificates``), or none. With TLS it
    takes only TLS connections unless ``plain_too``. ``settings``: lines of
    ``postgresql.conf`` after the cluster's own (a later line wins)."""
    cluster = _start_cluster(certificates, plain_too, settings)
    try:
        yield cluster
    finally:
        _stop_cluster(cluster)


def _start_cluster(
    certificates: Certificates | None, plain_too: bool, extra_settings: Sequence[str]
) -> Cluster:
    owner, bin_dir, port = _Owner(), _postgres_bin(), free_port()
    assert bin_dir is not None
    directory = _private_directory(owner, "service-pg-")
    data, log = directory / "data", directory / "server.log"
    subprocess.run(
        owner.command(bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-N"),
        check=True,
        capture_output=True,
    )
    settings = [
        f"port = {port}",
        "listen_addresses = '127.0.0.1'",
        f"unix_socket_directories = '{directory}'",
        "fsync = off",
        "synchronous_commit = off",
        "full_page_writes = off",
        "max_connections = 200",
        "password_encryption = 'scram-sha-256'",
    ]
    if certificates is None:
        settings.append("ssl = off")
        rules = ["local all all trust", "host all all 127.0.0.1/32 scram-sha-256"]
    else:
        settings += [
            "ssl = on",
            f"ssl_cert_file = '{certificates.server_cert}'",
            f"ssl_key_file = '{certificates.server_key}'",
            f"ssl_ca_file = '{certificates.ca}'",
        ]
        # A hosted server's rules: TLS only, SCRAM passwords, and one role that shows a
        # client certificate instead.
        rules = [
            "local all all trust",
            f"hostssl all {CERT_USER} 127.0.0.1/32 cert",
            f"{'host' if plain_too else 'hostssl'} all all 127.0.0.1/32 scram-sha-256",
        ]
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("\n".join([*settings, *extra_settings]) + "\n")
    _write(data / "pg_hba.conf", "\n".join(rules) + "\n", owner, 0o600)
    _write(log, "", owner)
    subprocess.run(
        owner.command(bin_dir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "start"),
        check=True,
        capture_output=True,
    )
    for statement in (
        f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'",
        f"CREATE ROLE {CERT_USER} LOGIN",
        f"CREATE DATABASE {APP_DATABASE} OWNER {APP_USER}",
    ):
        subprocess.run(
            [
                bin_dir / "psql",
                "-h",
                directory,
                "-p",
                str(port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                statement,
            ],
            check=True,
            capture_output=True,
        )
    return Cluster(host=SERVER_NAME, port=port, directory=directory, log=log)


def _stop_cluster(cluster: Cluster) -> None:
    owner, bin_dir = _Owner(), _postgres_bin()
    assert bin_dir is not None
    subprocess.run(
        owner.command(
            bin_dir / "pg_ctl", "-D", cluster.directory / "data", "-m", "immediate", "stop"
        ),
        capture_output=True,
    )
    shutil.rmtree(cluster.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def tls_cluster(certificates: Certificates) -> Iterator[Cluster]:
    """A cluster as a hosted provider runs one: TLS only (``hostssl``), SCRAM passwords."""
    with running_cluster(certificates) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def plain_cluster() -> Iterator[Cluster]:
    """A cluster without TLS (``ssl = off``): what ``sslmode=require`` must refuse."""
    _require_programs()
    with running_cluster(None) as cluster:
        yield cluster


@contextlib.contextmanager
def running_pgbouncer(
    certificates: Certificates,
    databases: str,
    passwords: bool,
    server_tls: str,
    client_tls: str = "require",
) -> Iterator[tuple[int, Path]]:
    """PgBouncer in transaction mode with TLS to its clients as ``client_tls`` says
    (``require``: only TLS), and SCRAM passwords (the app's role) if ``passwords``, else
    anyone in: its port and log."""
    owner, port = _Owner(), free_port()
    directory = _private_directory(owner, "service-pgbouncer-")
    log = _write(directory / "pgbouncer.log", "", owner)
    users = _write(directory / "userlist.txt", f'"{APP_USER}" "{APP_PASSWORD}"\n', owner, 0o600)
    auth = f"auth_type = scram-sha-256\nauth_file = {users}" if passwords else "auth_type = any"
    ini = f"""\
[databases]
{databases}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
pidfile = {directory / "pgbouncer.pid"}
logfile = {log}
{auth}
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 8
client_tls_sslmode = {client_tls}
client_tls_cert_file = {certificates.server_cert}
client_tls_key_file = {certificates.server_key}
client_tls_ca_file = {certificates.ca}
{server_tls}
"""
    config = _write(directory / "pgbouncer.ini", ini, owner)
    with (directory / "stdout.log").open("wb") as out:
        process = subprocess.Popen(owner.command(PGBOUNCER, config), stdout=out, stderr=out)
    try:
        _wait_for_port(port, process, log)
        yield port, log
    finally:
        _stop_server(process, directory)


@pytest.fixture(scope="session")
def pgbouncer(tls_cluster: Cluster, certificates: Certificates) -> Iterator[PooledCluster]:
    """PgBouncer in front of ``tls_cluster``: TLS to its clients and to the cluster (the
    chain checked), SCRAM both ways, every database name forwarded."""
    with running_pgbouncer(
        certificates,
        databases=f"* = host=127.0.0.1 port={tls_cluster.port}",
        passwords=True,
        server_tls=f"server_tls_sslmode = verify-ca\nserver_tls_ca_file = {certificates.ca}",
    ) as (port, log):
        yield PooledCluster(host=SERVER_NAME, port=port, log=log, cluster=tls_cluster)


@pytest.fixture(scope="session")
def tls_front(certificates: Certificates) -> Iterator[Bouncer]:
    """PgBouncer with TLS to its clients in front of the tests' PostgreSQL server (which has
    none), logging every client in as its superuser: the app databases the other fixtures
    make there, reached over TLS."""
    admin = urlsplit(POSTGRES_ADMIN_URL)
    target = f"host={admin.hostname or '127.0.0.1'} port={admin.port or 5432}"
    with running_pgbouncer(
        certificates,
        databases=f"* = {target} user={admin.username or 'postgres'}",
        passwords=False,
        server_tls="server_tls_sslmode = disable",
    ) as (port, log):
        yield Bouncer(host=SERVER_NAME, port=port, log=log)


MARIADB_SERVER = "/usr/sbin/mariadbd"
MARIADB_INSTALL = "/usr/bin/mariadb-install-db"
TLS_MARIADB_USER = "tls"  # may log in over TLS only (REQUIRE SSL)


@dataclass(frozen=True)
class MariaDb:
    """A private MariaDB: ``admin_url`` logs in as root without TLS (the app's own code
    writes through it), ``TLS_MARIADB_USER`` with ``APP_PASSWORD`` over TLS only."""

    port: int
    admin_url: str


@pytest.fixture(scope="session")
def tls_mariadb(certificates: Certificates) -> Iterator[MariaDb]:
    """A MariaDB with TLS (the test authority's certificate for ``localhost``)."""
    for program in (MARIADB_SERVER, MARIADB_INSTALL):
        if not os.access(program, os.X_OK):
            reason = f"MariaDB's server programs are not installed ({program})"
            if os.environ.get(REQUIRED) or os.environ.get("REQUIRE_MARIADB"):
                pytest.fail(reason)
            pytest.skip(reason)
    directory, port = Path(tempfile.mkdtemp(prefix="service-mariadb-")), free_port()
    data, log = directory / "data", directory / "server.log"
    as_root = ["--user=root"] if os.geteuid() == 0 else []  # it refuses root unless told
    subprocess.run(
        [
            MARIADB_INSTALL,
            "--no-defaults",
            f"--datadir={data}",
            *as_root,
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [
            MARIADB_SERVER,
            "--no-defaults",
            f"--datadir={data}",
            *as_root,
            f"--socket={directory / 'socket'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--log-error={log}",
            f"--pid-file={directory / 'pid'}",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=16M",
            f"--ssl-ca={certificates.ca}",
            f"--ssl-cert={certificates.server_cert}",
            f"--ssl-key={certificates.server_key}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, server, log)
        grants = [
            # root@127.0.0.1 exists already, without a password.
            f"CREATE USER '{TLS_MARIADB_USER}'@'127.0.0.1' IDENTIFIED BY '{APP_PASSWORD}'"
            " REQUIRE SSL",
            f"GRANT ALL ON *.* TO '{TLS_MARIADB_USER}'@'127.0.0.1'",
        ]
        subprocess.run(
            [
                "mariadb",
                "--no-defaults",
                "-S",
                str(directory / "socket"),
                "-u",
                "root",
                "-e",
                ";".join(grants),
            ],
            check=True,
            capture_output=True,
        )
        yield MariaDb(port=port, admin_url=f"mysql://root@127.0.0.1:{port}/test")
    finally:
        _stop_server(server, directory)

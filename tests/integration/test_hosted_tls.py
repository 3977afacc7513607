"""TLS against a private cluster that takes only ``hostssl`` connections with SCRAM passwords
(or a client certificate), and against one without TLS: each ``sslmode`` does what libpq's
does, and each mistake ends a command with one line that says which, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.config.database_url import parse_postgres_url
from service.store.backends.postgres_connect import connect
from service.store.connect_errors import connection_problem
from tests.hosted_servers import CERT_USER, Certificates, Cluster
from tests.processes import ROOT, service_env

# Far above any command's own connect timeout: a detector of a hang, not a time limit.
HANG = 120


async def _encrypted(url: str) -> bool:
    """Whether a connection made as ``url`` says is encrypted, by the server's own view."""
    conn = await connect(parse_postgres_url(url))
    try:
        return bool(await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
    finally:
        await conn.close()


async def _problem(url: str) -> str:
    with pytest.raises(Exception) as failure:
        await _encrypted(url)
    problem = connection_problem(failure.value)
    assert problem, f"no words for {failure.value!r}"
    return problem


def _service(url: str, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *command],
        env=service_env(url, LOG_FORMAT="text", **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG,
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return errors[0]


@pytest.mark.parametrize("mode", ["prefer", "require", "allow"])
async def test_modes_that_check_nothing_encrypt_when_the_server_insists(
    tls_cluster: Cluster, mode: str
) -> None:
    assert await _encrypted(tls_cluster.url(sslmode=mode))


async def test_the_default_is_prefer_and_encrypts(tls_cluster: Cluster) -> None:
    assert await _encrypted(tls_cluster.url())


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
async def test_verifying_modes_trust_the_given_authority(
    tls_cluster: Cluster, certificates: Certificates, mode: str
) -> None:
    assert await _encrypted(tls_cluster.url(sslmode=mode, sslrootcert=certificates.ca))


async def test_require_with_a_root_certificate_checks_the_chain_as_libpq_does(
    tls_cluster: Cluster, certificates: Certificates
) -> None:
    url = tls_cluster.url(sslmode="require", sslrootcert=certificates.wrong_ca)
    assert "not signed by a CA this client trusts" in await _problem(url)


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
async def test_an_unknown_authority_is_named(
    tls_cluster: Cluster, certificates: Certificates, mode: str
) -> None:
    problem = await _problem(tls_cluster.url(sslmode=mode, sslrootcert=certificates.wrong_ca))
    assert "not signed by a CA this client trusts" in problem and "sslrootcert" in problem


async def test_verify_full_refuses_a_host_the_certificate_does_not_name(
    tls_cluster: Cluster, certificates: Certificates
) -> None:
    url = tls_cluster.url(host="127.0.0.1", sslmode="verify-full", sslrootcert=certificates.ca)
    problem = await _problem(url)
    assert "not for this host name" in problem and "127.0.0.1" in problem


async def test_verify_ca_takes_any_host_name_on_a_good_chain(
    tls_cluster: Cluster, certificates: Certificates
) -> None:
    url = tls_cluster.url(host="127.0.0.1", sslmode="verify-ca", sslrootcert=certificates.ca)
    assert await _encrypted(url)


async def test_sslrootcert_system_does_not_trust_a_private_authority(tls_cluster: Cluster) -> None:
    url = tls_cluster.url(sslmode="verify-full", sslrootcert="system")
    assert "not signed by a CA this client trusts" in await _problem(url)


@pytest.mark.parametrize("mode", ["require", "verify-full"])
async def test_a_client_certificate_logs_in_without_a_password(
    tls_cluster: Cluster, certificates: Certificates, mode: str
) -> None:
    url = tls_cluster.url(
        user=CERT_USER,
        password=None,
        sslmode=mode,
        sslrootcert=certificates.ca,
        sslcert=certificates.client_cert,
        sslkey=certificates.client_key,
    )
    assert await _encrypted(url)


async def test_a_client_certificate_reaches_the_server_under_prefer(
    tls_cluster: Cluster, certificates: Certificates
) -> None:
    url = tls_cluster.url(
        user=CERT_USER,
        password=None,
        sslcert=certificates.client_cert,
        sslkey=certificates.client_key,
    )
    assert await _encrypted(url)


async def test_prisma_sslaccept_strict_verifies_with_sslcert_as_the_authority(
    tls_cluster: Cluster, certificates: Certificates
) -> None:
    good = tls_cluster.url(sslmode="require", sslaccept="strict", sslcert=certificates.ca)
    assert await _encrypted(good)
    wrong = tls_cluster.url(sslmode="require", sslaccept="strict", sslcert=certificates.wrong_ca)
    assert "not signed by a CA this client trusts" in await _problem(wrong)


async def test_prisma_accept_invalid_certs_encrypts_without_checking(
    tls_cluster: Cluster, certificates: Certificates
) -> None:
    url = tls_cluster.url(
        sslmode="require", sslaccept="accept_invalid_certs", sslcert=certificates.wrong_ca
    )
    assert await _encrypted(url)


async def test_prefer_and_allow_fall_back_to_plain_on_a_server_without_tls(
    plain_cluster: Cluster,
) -> None:
    assert not await _encrypted(plain_cluster.url(sslmode="prefer"))
    assert not await _encrypted(plain_cluster.url(sslmode="allow"))


def test_require_against_a_server_without_tls_is_one_line_exit_2(plain_cluster: Cluster) -> None:
    done = _service(plain_cluster.url(sslmode="require"), "db", "current")
    assert done.returncode == 2, done
    assert "the server does not offer TLS" in _one_error_line(done)


def test_disable_against_a_tls_only_server_is_one_line_exit_2(tls_cluster: Cluster) -> None:
    done = _service(tls_cluster.url(sslmode="disable"), "db", "current")
    assert done.returncode == 2, done
    assert "the server refuses connections without TLS" in _one_error_line(done)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"host": "127.0.0.1"}, "not for this host name"),
        ({"sslrootcert": "wrong"}, "not signed by a CA this client trusts"),
    ],
)
def test_certificate_mistakes_end_serve_with_one_line_exit_2(
    tls_cluster: Cluster, certificates: Certificates, change: dict[str, str], words: str
) -> None:
    root = certificates.wrong_ca if change.get("sslrootcert") else certificates.ca
    url = tls_cluster.url(host=change.get("host"), sslmode="verify-full", sslrootcert=root)
    done = _service(url, "serve", "--no-relay", INNGEST_DEV="1")
    assert done.returncode == 2, done
    assert words in _one_error_line(done)


def test_an_unreadable_root_certificate_is_named_before_connecting(
    tls_cluster: Cluster, tmp_path: Path
) -> None:
    url = tls_cluster.url(sslmode="verify-full", sslrootcert=tmp_path / "missing.pem")
    done = _service(url, "db", "upgrade")
    assert done.returncode == 2, done
    assert "sslrootcert" in _one_error_line(done)

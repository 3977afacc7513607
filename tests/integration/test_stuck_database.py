"""A database that accepts connections and never answers: every command that connects ends
with one line once its connect timeout is over, instead of waiting forever."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.processes import ROOT, free_port, service_env

# A generous detector of a hang, far above the 1 s connect timeout the URL sets: a busy
# machine may take long to start Python, never this long.
HANG = 120


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose listener completes TCP's handshake (the kernel's backlog) and then says
    nothing at all."""
    port = free_port()
    with socket.create_server(("127.0.0.1", port), backlog=16):
        yield port


@pytest.mark.parametrize(
    "command",
    [["db", "current"], ["db", "upgrade"], ["serve", "--no-relay"], ["relay"], ["outbox", "stats"]],
)
def test_a_silent_server_ends_each_command_with_one_line(
    silent_server: int, command: list[str]
) -> None:
    url = f"postgresql://app:pw@127.0.0.1:{silent_server}/app?connect_timeout=1&sslmode=disable"
    env = service_env(url, INNGEST_DEV="1", LOG_FORMAT="text")
    done = subprocess.run(
        [sys.executable, "-m", "service", *command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert done.returncode == 1, done
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no answer in time" in errors[0], done.stderr
    assert "Traceback" not in done.stderr, done.stderr

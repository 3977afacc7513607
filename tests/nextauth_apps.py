"""The Next.js app of the database-session tests: ``tests/nextauth-db/app.mjs``, next-auth 4's
own ``getServerSession`` with an adapter's own code on a real database (the npm package in
``tests/nextauth-db``, pinned by its lock, installed by ``make test``).

One node process serves the whole test session (``NodeApp``), its connections kept per
database; each call is one JSON line each way.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
from pathlib import Path
from typing import IO, Any

import pytest

from tests.js_clients import require_js

PACKAGE = Path(__file__).resolve().parent / "nextauth-db"
ANSWER_TIMEOUT = 60.0


class NodeApp:
    """``app(op, setup, url, **fields)``: one request to the app's node process, its result."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._process: subprocess.Popen[str] | None = None
        self._sent = 0

    def __call__(self, op: str, setup: str, url: str, **fields: Any) -> Any:
        process = self._started()
        self._sent += 1
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(
            json.dumps({"id": self._sent, "op": op, "setup": setup, "url": url, **fields}) + "\n"
        )
        process.stdin.flush()
        answer = json.loads(self._line(process.stdout))
        assert answer["id"] == self._sent
        if "error" in answer:
            pytest.fail(f"the app's {op} with {setup} failed: {answer['error']}")
        return answer["result"]

    def _started(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            require_js(PACKAGE)
            self._process = subprocess.Popen(
                ["node", str(PACKAGE / "app.mjs")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.log.open("w"),
                text=True,
                cwd=PACKAGE,
                env={**os.environ, "TZ": "UTC"},
            )
        return self._process

    def _line(self, stdout: IO[str]) -> str:
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            if not selector.select(ANSWER_TIMEOUT):
                pytest.fail(f"the app's node process did not answer; see {self.log}")
        line = stdout.readline()
        if not line:
            pytest.fail(f"the app's node process ended: {self.log.read_text()[-2000:]}")
        return line

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

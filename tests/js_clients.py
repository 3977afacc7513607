"""The JavaScript clients of the tests: npm packages under ``tests/`` (``js``: next-auth's own
code; ``node-pg``: node-postgres), each pinned by its package-lock.json and installed by
``make test`` with ``npm ci``, and how a test runs their scripts.

Without node, or without the package installed, the tests that need them skip with the reason;
in CI (``CI`` set, e.g. ``CI=true``) that is a failure instead: a skip would hide them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parent / "js"
NODE_PG = Path(__file__).resolve().parent / "node-pg"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_reason(package: Path = JS) -> str | None:
    """None when node and the installed ``package`` are here, else what is missing."""
    lock = package / "package-lock.json"
    stamp = package / "node_modules" / ".package-lock.json"  # written by every npm ci/install
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        return f"the npm package in {package.name}/ is not installed: run `make test` (npm ci)"
    if shutil.which("node") is None:
        return f"node is not installed: the tests with the clients of {package.name}/ need it"
    return None


def require_js(package: Path = JS) -> None:
    """Skip the calling test or fixture when the JavaScript clients cannot run (fail in CI)."""
    reason = missing_reason(package)
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI is set: this is a failure, not a skip)")
    pytest.skip(reason)


def run_script(script: str, stdin: str, timeout: float = 60, package: Path = JS) -> str:
    """Run ``node tests/PACKAGE/SCRIPT`` with ``stdin``; its stdout, or the test fails with
    stderr."""
    done = subprocess.run(
        ["node", str(package / script)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=package,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"node {script} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


async def run_script_async(script: str, stdin: str, timeout: float, package: Path) -> str:
    """``run_script`` without blocking the event loop, for a script that talks to servers of
    the test's own loop (a stand-in Inngest) while it runs."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(package / script),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=package,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"node {script} did not end within {timeout:.0f}s")
    if process.returncode != 0:
        pytest.fail(f"node {script} failed ({process.returncode}): {err.decode().strip()[-2000:]}")
    return out.decode()

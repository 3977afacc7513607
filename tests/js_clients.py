"""The official JavaScript clients of the tests: the npm package in ``tests/js`` (pinned by its
package-lock.json, installed by ``make test`` with ``npm ci``) and how a test runs its scripts.

Without node, or without the package installed, the tests that need them skip with the reason;
in CI (``CI`` set, e.g. ``CI=true``) that is a failure instead: a skip would hide them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parent / "js"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_reason(package: Path | None = None) -> str | None:
    """None when node and the installed package (``tests/js`` unless told) are here, else
    what is missing."""
    package = JS if package is None else package
    lock = package / "package-lock.json"
    stamp = package / "node_modules" / ".package-lock.json"  # written by every npm ci/install
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        return (
            f"the npm package in {package.name}/ is not installed: run `make test` (npm ci there)"
        )
    if shutil.which("node") is None:
        return "node is not installed: the tests with next-auth's own cookies need it"
    return None


def require_js(package: Path | None = None) -> None:
    """Skip the calling test or fixture when the JavaScript clients (of ``package``, else
    ``tests/js``) cannot run (fail in CI)."""
    reason = missing_reason(package)
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI is set: this is a failure, not a skip)")
    pytest.skip(reason)


def run_script(script: str, stdin: str, timeout: float = 60) -> str:
    """Run ``node tests/js/SCRIPT`` with ``stdin``; its stdout, or the test fails with stderr."""
    done = subprocess.run(
        ["node", str(JS / script)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=JS,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"node {script} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout

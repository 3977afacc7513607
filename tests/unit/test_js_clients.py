"""The gate of the tests that drive the JavaScript clients: a skip with the reason where node or
the npm package is missing, a failure instead when CI is set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import js_clients


def test_without_node_a_skip_says_why_and_ci_makes_it_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    js_clients.require_js()  # this package is installed here (make test did it)
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="node is not installed"):
        js_clients.require_js()
    for value in ("true", "1"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception, match="CI is set"):
            js_clients.require_js()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        js_clients.require_js()


def test_a_package_not_installed_or_older_than_its_lock_is_missing(tmp_path: Path) -> None:
    lock = tmp_path / "package-lock.json"
    lock.write_text("{}")
    assert "npm ci" in (js_clients.missing_reason(tmp_path) or "")
    stamp = tmp_path / "node_modules" / ".package-lock.json"
    stamp.parent.mkdir()
    stamp.write_text("{}")
    os.utime(stamp, (lock.stat().st_mtime - 60,) * 2)
    assert "npm ci" in (js_clients.missing_reason(tmp_path) or "")
    os.utime(stamp, (lock.stat().st_mtime + 60,) * 2)
    assert js_clients.missing_reason(tmp_path) is None

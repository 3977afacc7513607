"""The log format: JSON off a terminal, text on one, RFC 3339 UTC times with milliseconds."""

from __future__ import annotations

import io
import logging
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.log_capture import Terminal, capture, records


@pytest.mark.usefixtures("restore_logging")
def test_auto_is_json_off_a_terminal_and_text_on_one(monkeypatch: pytest.MonkeyPatch) -> None:
    piped = capture(monkeypatch, io.StringIO(), log_format="auto")
    log = logging.getLogger("service.relay")
    log.error("event e-1 is dead", extra={"action": "relay.buried", "event_id": "e-1"})
    logging.getLogger("some.library").warning("no action given")
    first, second = records(piped)
    assert first["action"] == "relay.buried" and first["event_id"] == "e-1"
    assert first["level"] == "ERROR" and first["message"] == "event e-1 is dead"
    assert first["logger"] == "service.relay" and first["time"]
    assert second["action"] == "some.library"  # the default: the logger's name

    terminal = capture(monkeypatch, Terminal(), log_format="auto")
    log.info("relay r-1 started", extra={"action": "relay.started"})
    line = terminal.getvalue().strip()
    assert not line.startswith("{")
    assert "INFO" in line and "[relay.started]" in line and line.endswith("relay r-1 started")

    forced = capture(monkeypatch, Terminal(), log_format="json")
    log.info("still json", extra={"action": "x.y"})
    assert records(forced)[0]["action"] == "x.y"


@pytest.mark.usefixtures("restore_logging", "local_time_far_from_utc")
def test_json_time_is_rfc3339_utc_with_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Log pipelines parse ``time`` without a pattern: RFC 3339, UTC, ``Z``, milliseconds; the
    keys of a line are the documented ones, in that order."""
    assert time.localtime().tm_gmtoff != 0  # local time must not leak into the line
    out = capture(monkeypatch, io.StringIO(), log_format="json")
    before = datetime.now(UTC)
    logging.getLogger("service.relay").info("sent", extra={"action": "relay.sent"})
    after = datetime.now(UTC)
    [line] = records(out)
    assert list(line) == ["time", "level", "logger", "action", "message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line["time"]
    logged = datetime.fromisoformat(line["time"])
    assert logged.tzinfo is not None and logged.utcoffset() == timedelta(0)
    # Milliseconds are truncated, so the line may read up to 1 ms before ``before``.
    assert before - timedelta(milliseconds=1) <= logged <= after
    assert (line["level"], line["logger"]) == ("INFO", "service.relay")

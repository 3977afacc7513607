"""The service's own log handler, installed to write into a buffer the test reads."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest

from service.config import Settings
from service.logs import configure_logging


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def capture(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, **settings: Any) -> io.StringIO:
    """Install the service's own handler, writing into ``stream`` instead of stderr."""
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging(Settings(**settings))
    return stream


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is one JSON object

"""What the benches send: an app-settings-like JSON document of a chosen size, encoded compactly
as the service encodes events, and written to a file for wrk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def sample_document(size: int = 1024) -> dict[str, Any]:
    """An app-settings-like JSON object whose compact encoding is about ``size`` bytes."""
    document: dict[str, Any] = {
        "appName": "bench",
        "theme": {"primary": "#3366ff", "mode": "dark"},
        "locale": "en-GB",
        "features": {f"feature{n:02d}": n % 3 == 0 for n in range(12)},
        "limits": {"requestsPerMinute": 600, "maxUploadBytes": 10485760},
        "notes": "",
    }
    filler = size - len(compact(document))
    document["notes"] = "x" * max(0, filler)
    return document


def compact(value: Any) -> str:
    """Compact JSON, as the service serializes events."""
    return json.dumps(value, separators=(",", ":"))


def write_body(size: int, directory: Path) -> Path:
    """Write a ~``size`` byte JSON request body to a file and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"body-{size}.json"
    path.write_text(compact(sample_document(size)))
    return path

"""The files a bench leaves: ``bench/results/NAME.json``, its results with the machine and the
code version alongside, and the scratch directory of a run under ``bench/results/tmp/``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.output import console
from bench.processes import BENCH, ROOT

RESULTS = BENCH / "results"


def workdir(name: str) -> Path:
    """Scratch space of a bench (SQLite files, bodies) on the project's disk."""
    return RESULTS / "tmp" / name


def _code_version() -> dict[str, str]:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "service").rglob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {"git_head": head, "service_sources_sha256": digest.hexdigest()[:16]}


def write_results(name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``bench/results/NAME.json`` with the machine and code version alongside."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        "bench": name,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "code": _code_version(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    console().print(f"wrote {path.relative_to(ROOT)}")
    return path

"""A process's resident memory, as the kernel counts it (VmRSS). Apart from ``processes`` so
that ``footprint`` can read its own without loading what ``processes`` imports."""

from __future__ import annotations

from pathlib import Path


def rss_kib(pid: int | str) -> int | None:
    """Resident memory of ``pid`` (or ``"self"``) in KiB (VmRSS), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None

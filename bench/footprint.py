"""What a ``service`` process's memory is made of: the interpreter, then each package it
imported. A helper of ``bench/startup.py``, in two steps, each its own process:

    python -m bench.footprint list OUT ARGS...   # runs ``service ARGS``; writes the modules it
                                                 # loaded, in load order, to OUT as it exits
    python -m bench.footprint measure OUT        # imports them in that order in a fresh
                                                 # interpreter: JSON of the VmRSS growth each
                                                 # top-level package brought, in KiB

A package is charged with what importing its first module brought in: its own code, and
whatever it imports that nothing had loaded before it (its dependencies, shared libraries).
What a running process holds beyond the sum is its data: connections, buffers, caches.
"""

from __future__ import annotations

import atexit
import importlib
import json
import sys
from pathlib import Path

from bench.memory import rss_kib

# Loaded by the way the process was started, not by the service.
NOT_THE_SERVICE = ("__main__", "bench")


def write_modules(path: Path) -> None:
    """Write the names of the loaded modules, in load order, one a line."""
    path.write_text("\n".join(sys.modules))


def run_listed(listing: Path, args: list[str]) -> None:
    """Run ``service ARGS`` here; list its modules when this process exits."""
    atexit.register(write_modules, listing)
    sys.argv[:] = ["service", *args]
    from service.cli.main import main

    main()


def measure(listing: Path) -> dict[str, int]:
    """VmRSS at start (``python``), then the growth each top-level package brought."""
    growth = {"python": rss_kib("self") or 0}
    for name in listing.read_text().split():
        package = name.split(".")[0]
        if name in sys.modules or package in NOT_THE_SERVICE:
            continue
        before = rss_kib("self") or 0
        try:
            importlib.import_module(name)
        except ImportError:  # a module that only its parent's code path can load
            continue
        growth[package] = growth.get(package, 0) + (rss_kib("self") or 0) - before
    return growth


def main() -> None:
    step, listing, *args = sys.argv[1:]
    if step == "list":
        run_listed(Path(listing), args)
    else:
        print(json.dumps(measure(Path(listing))))


if __name__ == "__main__":
    main()

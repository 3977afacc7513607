"""The entry point of every bench: its argument parser with the options all benches share, and
``run_main``, which runs the bench with its processes and stops them on SIGTERM and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn

from bench.databases import BACKENDS
from bench.output import warn
from bench.processes import BenchError, Processes
from bench.results import RESULTS, workdir


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every bench has."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--db",
        default=",".join(BACKENDS),
        help="comma-separated backends to run (default: sqlite,postgresql)",
    )
    return p


def run_main(
    name: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    bench: Callable[[argparse.Namespace, Processes], Awaitable[int]],
) -> NoReturn:
    """Parse arguments and run ``bench``; SIGTERM and Ctrl-C stop it with its processes."""
    p = parser(description)
    add_arguments(p)
    args = p.parse_args()
    args.db = [b.strip() for b in args.db.split(",") if b.strip()]

    async def main() -> int:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with Processes(RESULTS / "logs" / name) as procs:
            try:
                return await bench(args, procs)
            finally:
                shutil.rmtree(workdir(name), ignore_errors=True)
                with contextlib.suppress(OSError):  # the last bench out tidies up
                    workdir(name).parent.rmdir()

    try:
        code = asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        warn(f"{name}: interrupted")
        code = 130
    except BenchError as exc:
        warn(f"{name}: {exc}")
        code = 1
    sys.exit(code)


def add_wrk_arguments(p: argparse.ArgumentParser) -> None:
    """The wrk options that ingest.py and events.py share (so their runs are the same load)."""
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (whole)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--connections", type=int, default=64, help="wrk connections")
    p.add_argument("--repeats", type=int, default=3, help="runs per target (medians)")

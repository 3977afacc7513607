"""The garbage collector in the service's processes: the long-running ones (``serve``,
``relay``) freeze what start-up built; every command leaves its heap to the process's exit."""

from __future__ import annotations

import atexit
import gc


def freeze_startup_heap() -> None:
    """Leave what start-up built (modules, SQLAlchemy's and aiohttp's structures) out of every
    later collection.

    A full collection walks every tracked object; with the start-up heap in it, each one held
    the event loop for 60-70 ms, and the requests in flight with it (the API's p99 with Inngest
    down went to 60-190 ms). Garbage made so far is collected first; only live objects stay.
    """
    gc.collect()
    gc.freeze()


def leave_heap_to_exit() -> None:
    """Spare the interpreter's exit its collections of the whole heap.

    On the way out Python collects the heap more than once: with SQLAlchemy loaded that took
    ~0.2 s, a fifth of a ``service outbox stats``. Frozen by an exit handler, the heap goes
    with the process's memory; the handlers registered before it (logging's flush) still run.
    """
    atexit.unregister(gc.freeze)  # registered once, however many commands a process runs
    atexit.register(gc.freeze)

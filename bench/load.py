"""Load on a target and what it measured: wrk (closed loop; ``bench/wrk_post.lua`` counts every
answer's status) and ``bench.loadgen`` (open loop; latency from each request's scheduled start).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.output import warn
from bench.processes import BENCH, BenchError, Processes, clean_env, run_command, wait_until
from bench.servers import TOKEN, bearer
from bench.stats import summarize

WRK_SCRIPT = BENCH / "wrk_post.lua"
WRK_MARKER = "WRK_JSON "


async def ensure_wrk() -> str:
    """The path of wrk, installed with apt-get when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    warn("wrk is missing: installing it with apt-get")
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        code, _out, err = await run_command(argv, 300, env)
        if code != 0:
            raise BenchError(f"{' '.join(argv)} failed: {err.strip()[-500:]}")
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is still missing after apt-get install wrk")
    return found


@dataclass
class WrkResult:
    """One wrk run: throughput, latency and every answer's status as the Lua hooks counted."""

    requests: int
    duration_s: float
    sent: int
    statuses: dict[str, int]
    errors: dict[str, int]
    latency_ms: dict[str, float]

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("2"))

    @property
    def non_2xx(self) -> dict[str, int]:
        return {s: n for s, n in self.statuses.items() if not s.startswith("2")}

    @property
    def unanswered(self) -> int:
        """Requests written but never answered: in flight when wrk stopped, or errors."""
        return max(0, self.sent - self.requests)

    def summary(self) -> dict[str, Any]:
        return {
            "rps": round(self.rps, 1),
            "requests": self.requests,
            "sent": self.sent,
            "ok": self.ok,
            "non_2xx": self.non_2xx,
            "socket_errors": {k: v for k, v in self.errors.items() if v},
            "latency_ms": self.latency_ms,
        }


async def run_wrk(
    wrk: str,
    url: str,
    body: Path,
    *,
    threads: int,
    connections: int,
    duration: float,
    timeout: float = 10.0,
    credential: tuple[str, str] | None = None,
    seeded: bool = False,
) -> WrkResult:
    """POST ``body`` to ``url`` with the bench token (or the ``credential`` header) through
    ``bench/wrk_post.lua``; ``seeded``: each request with an Inngest SDK's event id seed of
    its own."""
    name, value = credential or bearer()
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        f"--timeout={timeout:g}s",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        str(body),
        name,
        value,
        *(["seeded"] if seeded else []),
    ]
    code, out, err = await run_command(argv, duration + timeout + 30)
    line = next((ln for ln in out.splitlines() if ln.startswith(WRK_MARKER)), None)
    if code != 0 or line is None:
        raise BenchError(f"wrk failed ({code}): {err.strip() or out.strip()}")
    data = json.loads(line[len(WRK_MARKER) :])
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        sent=int(data["sent"]),
        statuses={str(k): int(v) for k, v in data["statuses"].items()},
        errors={k: int(v) for k, v in data["errors"].items()},
        latency_ms={k: round(v / 1000, 2) for k, v in data["latency_us"].items()},
    )


@dataclass
class Load:
    """What ``bench.loadgen`` measured: latencies from each request's scheduled start."""

    requests: int
    elapsed_s: float
    statuses: dict[str, int]
    errors: dict[str, int]
    latency_ms: list[float]
    ids: list[str]
    late_ms_p99: float

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("2"))

    @property
    def failed(self) -> int:
        return self.requests - self.ok

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "achieved_rps": round(self.requests / self.elapsed_s, 1) if self.elapsed_s else 0,
            "ok": self.ok,
            "failed": self.failed,
            "statuses": self.statuses,
            "errors": self.errors,
            "latency_ms": summarize(self.latency_ms),
            "generator_late_ms_p99": self.late_ms_p99,
        }


async def run_load(
    procs: Processes,
    name: str,
    url: str,
    *,
    rate: float,
    duration: float,
    connections: int = 256,
    body_bytes: int = 1024,
    timeout: float = 30.0,
) -> Load:
    """Run ``bench.loadgen`` against ``url`` at ``rate`` requests/s for ``duration`` s."""
    out = procs.logdir / f"{name}.json"
    out.unlink(missing_ok=True)
    args = [
        "--url",
        url,
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--connections",
        str(connections),
        "--body-bytes",
        str(body_bytes),
        "--timeout",
        str(timeout),
        "--token",
        TOKEN,
        "--out",
        str(out),
    ]
    process = procs.python(name, "bench.loadgen", args, clean_env())

    async def finished() -> bool:
        return process.poll() is not None

    await wait_until(finished, duration + timeout + 30, f"load generator {name}", 0.2)
    if process.returncode != 0 or not out.exists():
        raise BenchError(f"load generator {name} failed; see {procs.log_of(process)}")
    data = json.loads(out.read_text())
    return Load(**data)

"""An open-loop load generator (wrk2-style pacing): ``python -m bench.loadgen --url U --rate R
--duration D --out FILE``.

Request ``i`` is scheduled at ``start + i / rate`` whatever the earlier answers did, and its
latency is measured from that scheduled time, so a server that stalls is charged for the
queue it builds (no coordinated omission). Requests beyond ``--connections`` wait for a free
connection, and that wait counts too. Writes a JSON document (``bench.load.Load``'s fields)
with every latency and the ``id`` of every 2xx answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.payloads import compact, sample_document
from bench.stats import percentile


async def generate(args: argparse.Namespace) -> dict[str, Any]:
    """Send ``rate * duration`` paced POSTs; return the measurements."""
    body = compact(sample_document(args.body_bytes)).encode()
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    total = int(args.rate * args.duration)
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    late: list[float] = []
    ids: list[str] = []
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(scheduled: float) -> None:
            late.append((time.perf_counter() - scheduled) * 1000)
            try:
                async with session.post(args.url, data=body, headers=headers) as response:
                    payload = await response.read()
                    statuses[str(response.status)] += 1
                    if 200 <= response.status < 300:
                        ids.append(str(json.loads(payload).get("id", "")))
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                errors[type(exc).__name__] += 1
            latencies.append((time.perf_counter() - scheduled) * 1000)

        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter() + 0.05
        for i in range(total):
            scheduled = start + i / args.rate
            ahead = scheduled - time.perf_counter()
            if ahead > 0.001:
                await asyncio.sleep(ahead)
            tasks.append(asyncio.create_task(one(scheduled)))
        _done, pending = await asyncio.wait(tasks, timeout=args.timeout + 5)
        for task in pending:
            task.cancel()
            errors["Unfinished"] += 1
        await asyncio.gather(*pending, return_exceptions=True)
        elapsed = time.perf_counter() - start
    return {
        "requests": total,
        "elapsed_s": round(elapsed, 3),
        "statuses": dict(statuses),
        "errors": dict(errors),
        "latency_ms": [round(v, 3) for v in latencies],
        "ids": ids,
        "late_ms_p99": round(percentile(late, 99), 2),
    }


def main() -> None:
    """Run the load and write the JSON result to ``--out``."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=float, required=True, help="requests per second")
    p.add_argument("--duration", type=float, required=True, help="seconds of scheduled sends")
    p.add_argument("--connections", type=int, default=256)
    p.add_argument("--body-bytes", type=int, default=1024)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    p.add_argument("--token", required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    result = asyncio.run(generate(args))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()

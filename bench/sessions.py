"""The Next.js app's session in the benches: cookies minted once by next-auth's own code
(``tests/js/mint-session-cookies.mjs``, the npm package ``make bench`` installs), and what
reading one costs the service per request: the first read derives the keys; a session it has
not seen costs a decryption with the key cached; a session verified before, a digest lookup.
"""

from __future__ import annotations

import json
import shutil
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.output import fmt, print_table
from bench.processes import ROOT, BenchError, run_command
from bench.stats import median

APP_SECRET = "bench-app-secret-0123456789abcdefghijklmnopqr"
MINT_SCRIPT = ROOT / "tests" / "js" / "mint-session-cookies.mjs"
PROFILE = {
    "sub": "u-42",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "picture": "https://example.com/ada.png",
}
DAY = 86400
# What the decode table measures: a usual session of each format, and one in two chunks.
DECODED = {
    "Auth.js (v5), A256CBC-HS512": {"kind": "v5", "claims": PROFILE},
    "Auth.js (v5), 2 chunks": {"kind": "v5", "claims": {**PROFILE, "pad": "p" * 4000}},
    "next-auth v4, A256GCM": {"kind": "v4", "claims": PROFILE},
}


@dataclass(frozen=True)
class SessionCookie:
    """One minted session: its cookies, as ``(name, value)`` pairs."""

    cookies: tuple[tuple[str, str], ...]

    @property
    def header(self) -> str:
        """The ``Cookie`` header a browser would send."""
        return "; ".join(f"{name}={value}" for name, value in self.cookies)


def js_reason() -> str | None:
    """None when node and the npm package of ``tests/js`` are installed, else why not."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (MINT_SCRIPT.parent / "node_modules" / "next-auth").is_dir():
        return "the npm package of tests/js is not installed (make bench runs npm ci there)"
    return None


async def mint(*specs: dict[str, Any]) -> list[SessionCookie]:
    """Session cookies made by next-auth's code under ``APP_SECRET``, valid for a day."""
    made = [{"secret": APP_SECRET, "maxAge": DAY, **spec} for spec in specs]
    code, out, err = await run_command(
        ["node", str(MINT_SCRIPT)], 60, stdin=json.dumps(made).encode()
    )
    if code != 0:
        raise BenchError(f"minting session cookies failed ({code}): {err.strip()[-500:]}")
    return [
        SessionCookie(tuple((c["name"], c["value"]) for c in result["cookies"]))
        for result in json.loads(out)
    ]


def _per_read(read: Callable[[], object], repeats: int, number: int) -> list[float]:
    """Microseconds per call of ``read``, for each of ``repeats`` runs of ``number`` calls."""
    return [timeit.timeit(read, number=number) / number * 1e6 for _ in range(repeats)]


def decode_cost(cookie: SessionCookie, repeats: int = 7, number: int = 5000) -> dict[str, Any]:
    """What the service's reader costs for one request's cookies: the first read (which
    derives the keys), a session it has not seen (its key cached: a decryption), and a session
    it verified before (its times checked again); medians over ``repeats`` runs."""
    from service.config import NextAuthSettings
    from service.http.nextauth import NextAuthReader

    jar = dict(cookie.cookies)
    settings = NextAuthSettings(secrets=(APP_SECRET,))
    NextAuthReader(settings).user(jar)  # the process's own first use (imports, backends)
    decrypting = NextAuthReader(settings, verified_tokens=0)  # every read decrypts
    first = _per_read(lambda: decrypting.user(jar), 1, 1)[0]
    remembering = NextAuthReader(settings)
    if remembering.user(jar) is None:
        raise BenchError("the reader found no session in the minted cookie")
    new = _per_read(lambda: decrypting.user(jar), repeats, number)
    again = _per_read(lambda: remembering.user(jar), repeats, number)
    return {
        "cookie_bytes": len(cookie.header),
        "us_first_read": round(first, 1),
        "us_new_session": round(median(new), 1),
        "us_new_session_best": round(min(new), 1),
        "us_verified_before": round(median(again), 1),
        "repeats": repeats,
        "reads_per_repeat": number,
    }


async def decode_table() -> list[dict[str, Any]]:
    """Mint the sessions of ``DECODED``, measure each and print the table."""
    cookies = await mint(*DECODED.values())
    rows = [{"session": label, **decode_cost(c)} for label, c in zip(DECODED, cookies, strict=True)]
    print_table(
        "next-auth session decode per request, µs (median of 7 x 5,000 reads)",
        ["session", "cookie bytes", "first read", "new session", "best", "verified before"],
        [
            [
                r["session"],
                fmt(r["cookie_bytes"]),
                fmt(r["us_first_read"]),
                fmt(r["us_new_session"]),
                fmt(r["us_new_session_best"]),
                fmt(r["us_verified_before"]),
            ]
            for r in rows
        ],
    )
    return rows

"""Session cookies made by next-auth's own code (``tests/js/mint-session-cookies.mjs``: next-auth
4's and @auth/core's ``encode`` and cookie chunking), for the tests of the next-auth sessions.

``Minter`` runs the script once per batch of specs and remembers what it made, so the tests that
run once per backend share one node process per batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.js_clients import require_js, run_script

APP_SECRET = "test-app-secret-0123456789abcdefghijklmnopqrs"
OTHER_SECRET = "test-other-secret-9876543210zyxwvutsrqponmlk"
PROFILE = {
    "sub": "u-42",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "picture": "https://example.com/ada.png",
}
PROFILE_USER = {
    "id": "u-42",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "image": "https://example.com/ada.png",
}


@dataclass(frozen=True)
class Minted:
    """What the script made: the cookies as the app sets them, the token, and what the
    package's own ``decode`` read back (None when it refuses the token)."""

    cookies: tuple[tuple[str, str], ...]
    token: str
    payload: dict[str, Any] | None

    @property
    def jar(self) -> dict[str, str]:
        return dict(self.cookies)

    def header(self, cookies: Sequence[tuple[str, str]] | None = None) -> dict[str, str]:
        """A ``Cookie`` header carrying these cookies (or ``cookies``), as a browser sends it."""
        pairs = self.cookies if cookies is None else cookies
        return {"Cookie": "; ".join(f"{name}={value}" for name, value in pairs)}

    @property
    def exp(self) -> int:
        assert self.payload is not None, "the package's own decode refused this token"
        return int(self.payload["exp"])


def spec(kind: str, secret: str | Sequence[str] = APP_SECRET, **fields: Any) -> dict[str, Any]:
    """One spec for the script: ``kind`` (v4, v5, v5-gcm, database, no-exp, zip, jws,
    alg-none, other-alg, other-enc), the secret (a list for Auth.js's rotation), and
    ``cookieName``, ``secure``, ``claims``, ``maxAge`` as the script takes them."""
    return {"kind": kind, "secret": secret if isinstance(secret, str) else list(secret), **fields}


class Minter:
    """Makes cookies with next-auth's code; the same spec gives the same cookies in one run."""

    def __init__(self) -> None:
        self._made: dict[str, Minted] = {}

    def __call__(self, *specs: Mapping[str, Any]) -> list[Minted]:
        keys = [json.dumps(s, sort_keys=True) for s in specs]
        wanted = [json.loads(k) for k in dict.fromkeys(keys) if k not in self._made]
        if wanted:
            require_js()
            results = json.loads(run_script("mint-session-cookies.mjs", json.dumps(wanted)))
            for made_spec, result in zip(wanted, results, strict=True):
                self._made[json.dumps(made_spec, sort_keys=True)] = Minted(
                    cookies=tuple((c["name"], c["value"]) for c in result["cookies"]),
                    token=result["token"],
                    payload=result["payload"],
                )
        return [self._made[k] for k in keys]

    def one(self, kind: str, secret: str | Sequence[str] = APP_SECRET, **fields: Any) -> Minted:
        [minted] = self(spec(kind, secret, **fields))
        return minted

"""The Next.js app's own session: the user of a next-auth (v4) or Auth.js (v5) session cookie.

The cookie holds a compact JWE that next-auth encrypted with a key derived from the app's
secret; the service derives the same key and reads the user that ``getServerSession`` gives the
app. JWE itself is joserfc's; this module picks the cookie, refuses what next-auth never makes
before anything is decrypted, picks the key and checks the token's times as next-auth does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeGuard, TypeVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwe, jwk
from joserfc.errors import JoseError

from service.config import NextAuthSettings

V = TypeVar("V")

V4_NAMES = ("__Secure-next-auth.session-token", "next-auth.session-token")
V5_NAMES = ("__Secure-authjs.session-token", "authjs.session-token")
V4_INFO = "NextAuth.js Generated Encryption Key"
V5_INFO = "Auth.js Generated Encryption Key ({salt})"
KEY_BYTES = {"A256GCM": 32, "A256CBC-HS512": 64}
# Auth.js's kid is the key's JWK thumbprint with a SHA-2 as long as the key.
THUMBPRINT_DIGEST: dict[int, Literal["sha256", "sha512"]] = {32: "sha256", 64: "sha512"}
V4_ENCRYPTIONS = ("A256GCM",)
# The user's fields and the claims they come from.
USER_FIELDS = (("id", "sub"), ("name", "name"), ("email", "email"), ("image", "picture"))
CLOCK_TOLERANCE = 15  # seconds, next-auth's (jose's clockTolerance) for exp and nbf
# No token is larger than the request headers that carry it (MAX_HEADER_BYTES, 16 KiB).
MAX_TOKEN_CHARS = 16 * 1024
VERIFIED_TOKENS = 4096  # sessions remembered as verified: a few MiB at most
REGISTRY = jwe.JWERegistry(algorithms=["dir", *KEY_BYTES])
# The ids next-auth's database strategy puts in the cookie: a UUID, or 32 random bytes in hex.
DATABASE_SESSION_ID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{64}", re.IGNORECASE
)

TOO_LARGE = "The session cookie is larger than any next-auth session token."
NOT_A_TOKEN = "The session cookie is not a next-auth session token."
DATABASE_SESSION = (
    "The session cookie holds a database session's token: the service reads database sessions "
    "only from the app's database (NEXTAUTH_DATABASE_URL), which it was not given."
)
NO_SECRET = (
    "The session cookie is a next-auth JWT session: the service reads JWT sessions only with "
    "the app's secret (AUTH_SECRET), which it was not given."
)
SIGNED = (
    "The session cookie is a signed or unsecured JWT; only next-auth's encrypted session "
    "tokens are accepted."
)
UNSUPPORTED = (
    "The session token is not encrypted the way next-auth encrypts sessions (alg dir, enc "
    "A256CBC-HS512 or A256GCM, no compression)."
)
UNDECRYPTABLE = (
    "The session token does not decrypt with the app's secret: it was altered, or made "
    "with another secret."
)
NO_EXPIRY = "The session token has no valid expiry (exp)."
BAD_CLAIMS = "The session token's claims are not valid."
EXPIRED = "The session has expired; sign in again."
NOT_YET_VALID = "The session is not valid yet (nbf)."
BOTH_FORMS = "The session cookie comes both whole and in chunks; sign in again."


class SessionRefused(Exception):
    """A next-auth session cookie was sent and does not check out. ``detail`` is for the caller:
    it names no secret and quotes no token."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class DerivedKey:
    """A key derived from one secret, with its JWK thumbprint (Auth.js's ``kid``)."""

    key: jwk.OctKey
    kid: str


def derive_key(secret: str, salt: str, length: int) -> bytes:
    """next-auth's key: HKDF-SHA256 of the secret as UTF-8 text. Salt "" is v4's (its info has
    no salt); Auth.js salts with the cookie's name and names the salt in the info."""
    info = V4_INFO if not salt else V5_INFO.format(salt=salt)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=salt.encode(), info=info.encode())
    return hkdf.derive(secret.encode())


class DerivedKeys:
    """Derived keys cached per (secret, salt, length). The salts are the configured cookie
    names, so what it holds is bounded by the configuration, whatever requests send."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, int], DerivedKey] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, secret: str, salt: str, length: int) -> DerivedKey:
        cached = self._keys.get((secret, salt, length))
        if cached is None:
            key = jwk.OctKey.import_key(derive_key(secret, salt, length))
            kid = jwk.thumbprint(key.as_dict(private=True), THUMBPRINT_DIGEST[length])
            cached = self._keys[(secret, salt, length)] = DerivedKey(key, kid)
        return cached


def _header(segment: str) -> dict[str, Any]:
    """The protected header of a compact JWE or JWS, without trusting anything in it."""
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        raise SessionRefused(NOT_A_TOKEN) from None
    if not isinstance(header, dict):
        raise SessionRefused(NOT_A_TOKEN)
    return header


def _number(value: object) -> TypeGuard[float]:
    """A JSON number as JavaScript has them: not a boolean, not NaN or infinite."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def check_times(claims: Mapping[str, Any], now: int) -> None:
    """next-auth's checks (jose's ``jwtDecrypt`` with a 15 s tolerance), with ``exp`` required:
    expired when ``exp <= now - 15``, not valid yet when ``nbf > now + 15``."""
    exp = claims.get("exp")
    if not _number(exp):
        raise SessionRefused(NO_EXPIRY)
    if exp <= now - CLOCK_TOLERANCE:
        raise SessionRefused(EXPIRED)
    nbf, iat = claims.get("nbf"), claims.get("iat")
    if (nbf is not None and not _number(nbf)) or (iat is not None and not _number(iat)):
        raise SessionRefused(BAD_CLAIMS)
    if nbf is not None and nbf > now + CLOCK_TOLERANCE:
        raise SessionRefused(NOT_YET_VALID)


class DigestMemory(Generic[V]):
    """Values by a digest, at most ``size`` of them (the oldest goes first; none when ``size``
    is 0). Keyed by digests, it holds no cookie."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: dict[bytes, V] = {}

    def __len__(self) -> int:
        return len(self._values)

    def get(self, digest: bytes) -> V | None:
        return self._values.get(digest)

    def add(self, digest: bytes, value: V) -> None:
        if self.size <= 0:
            return
        self._values.pop(digest, None)
        if len(self._values) >= self.size:
            del self._values[next(iter(self._values))]
        self._values[digest] = value

    def forget(self, digest: bytes) -> None:
        self._values.pop(digest, None)


class VerifiedTokens(DigestMemory[dict[str, Any]]):
    """The claims of tokens that decrypted and checked out, by a digest of cookie name and token.
    A browser sends the same cookie with every request until the app renews it, so a repeat
    skips the decryption; the times are checked again on every use. Only tokens that decrypted
    get in, so a caller without the app's secret cannot fill it."""

    @staticmethod
    def digest(name: str, token: str) -> bytes:
        # The name is part of it: under another name the same token needs another key.
        return hashlib.sha256(f"{name}={token}".encode("utf-8", "surrogatepass")).digest()


class NextAuthReader:
    """Reads the session user from a request's cookies with the app's secrets."""

    def __init__(
        self,
        settings: NextAuthSettings,
        clock: Callable[[], float] = time.time,
        verified_tokens: int = VERIFIED_TOKENS,
        *,
        database_sessions: bool = False,
        max_token_chars: int = MAX_TOKEN_CHARS,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.max_token_chars = max_token_chars
        names = (settings.cookie_name,) if settings.cookie_name else (*V5_NAMES, *V4_NAMES)
        # The cookie is the same under either strategy: read it when either is configured.
        self.names = names if settings.enabled or database_sessions else ()
        self.keys = DerivedKeys()
        self.verified = VerifiedTokens(verified_tokens)

    def user(self, cookies: Mapping[str, str]) -> dict[str, Any] | None:
        """The session's user; None when no session cookie was sent; ``SessionRefused`` when
        one was sent and does not check out."""
        found = self.session_cookie(cookies)
        return None if found is None else self.user_of(self.claims(*found))

    def user_of(self, claims: Mapping[str, Any]) -> dict[str, Any]:
        """What ``getServerSession`` gives the app (``name``, ``email``, ``image`` from
        ``picture``) plus ``id`` from ``sub`` and the configured extra claims; claims the token
        does not hold are left out (a null one stays null, as in next-auth)."""
        fields = (*USER_FIELDS, *((c, c) for c in self.settings.user_claims))
        return {field: claims[claim] for field, claim in fields if claim in claims}

    def session_cookie(self, cookies: Mapping[str, str]) -> tuple[str, str] | None:
        """The first configured name the cookies hold, and its token: the cookie itself, or its
        chunks ``<name>.0``, ``<name>.1``... joined in numeric order (all of them, or none)."""
        for name in self.names:
            chunks = {
                int(suffix): value
                for key, value in cookies.items()
                if key.startswith(name + ".") and (suffix := key[len(name) + 1 :]).isdigit()
            }
            if name in cookies:
                if chunks:
                    raise SessionRefused(BOTH_FORMS)
                return name, cookies[name]
            if not chunks:
                continue
            # next-auth chunks only what needs two cookies or more: a lone .0 lacks its .1.
            missing = next((i for i in range(max(2, len(chunks))) if i not in chunks), None)
            if missing is not None:
                raise SessionRefused(
                    f"The session cookie {name} is incomplete: its chunk .{missing} is missing."
                )
            return name, "".join(chunks[i] for i in range(len(chunks)))
        return None

    def claims(self, name: str, token: str) -> dict[str, Any]:
        """The checked claims of the token of cookie ``name``."""
        if len(token) > self.max_token_chars:
            raise SessionRefused(TOO_LARGE)
        if not self.settings.secrets:
            raise SessionRefused(NO_SECRET)
        digest = self.verified.digest(name, token)
        verified = self.verified.get(digest)
        claims = self._decrypted_claims(name, token) if verified is None else verified
        check_times(claims, int(self.clock()))
        if verified is None:
            self.verified.add(digest, claims)
        return claims

    def _decrypted_claims(self, name: str, token: str) -> dict[str, Any]:
        """The claims of a token next-auth may have made, decrypted; their times unchecked."""
        parts = token.split(".")
        if len(parts) == 3:
            raise SessionRefused(SIGNED)
        if len(parts) != 5:
            raise SessionRefused(
                DATABASE_SESSION if DATABASE_SESSION_ID.fullmatch(token) else NOT_A_TOKEN
            )
        header = _header(parts[0])
        plaintext = self._decrypt(token, self._candidates(name, header))
        try:
            claims = json.loads(plaintext)
        except ValueError:
            raise SessionRefused(BAD_CLAIMS) from None
        if not isinstance(claims, dict):
            raise SessionRefused(BAD_CLAIMS)
        return claims

    def _candidates(self, name: str, header: Mapping[str, Any]) -> list[jwk.OctKey]:
        """The keys that may have encrypted a token with this header, in the order to try them;
        refuses, before any decryption, what next-auth never makes."""
        enc = header.get("enc")
        # next-auth's headers are alg, enc and (v5) kid: never zip, never crit (whose odd
        # values, such as [None], the JWE library does not survive).
        alg_ok = header.get("alg") == "dir" and "zip" not in header and "crit" not in header
        if not alg_ok or not isinstance(enc, str) or enc not in KEY_BYTES:
            raise SessionRefused(UNSUPPORTED)
        length = KEY_BYTES[enc]
        keys = list(self._keys_for(name, enc, length))
        if not keys:
            raise SessionRefused(UNSUPPORTED)  # e.g. A256CBC-HS512 in a next-auth v4 cookie
        kid = header.get("kid")
        if kid is None:  # next-auth v4's tokens: try each secret in order
            return [k.key for k in keys]
        matching = [k.key for k in keys if k.kid == kid]
        if not matching:
            raise SessionRefused(UNDECRYPTABLE)  # none of the secrets is the one it names
        return matching

    def _keys_for(self, name: str, enc: str, length: int) -> Iterator[DerivedKey]:
        # v4's cookies are keyed without a salt, Auth.js's with their name; a renamed cookie
        # may be either (Auth.js's first).
        salts = [""] if name in V4_NAMES else [name] if name in V5_NAMES else [name, ""]
        for salt in salts:
            if salt == "" and enc not in V4_ENCRYPTIONS:
                continue
            for secret in self.settings.secrets:
                yield self.keys.get(secret, salt, length)

    @staticmethod
    def _decrypt(token: str, keys: list[jwk.OctKey]) -> bytes:
        for key in keys:
            try:
                return jwe.decrypt_compact(token, key, registry=REGISTRY).plaintext or b""
            except (JoseError, ValueError, TypeError):
                # A wrong key, or altered bytes (a header field of an odd type): the next
                # secret may still fit.
                continue
        raise SessionRefused(UNDECRYPTABLE)

"""The next-auth session reader against cookies made by next-auth 4's and @auth/core's own code:
both formats and their cookie names, chunks, the key and kid, the times (with a clock the test
holds), the secrets of a rotation, the user, and every refusal. No database is involved here;
tests/integration/test_nextauth.py sends the same cookies to POST /api on both backends."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from service.config import NextAuthSettings
from service.http import nextauth
from service.http.nextauth import NextAuthReader, SessionRefused
from tests.nextauth_cookies import (
    APP_SECRET,
    OTHER_SECRET,
    PROFILE,
    PROFILE_USER,
    Minted,
    Minter,
    spec,
)

V4 = "next-auth.session-token"
V5 = "authjs.session-token"
ROTATION = tuple(f"test-rotated-secret-{n}-0123456789abcdefghijk" for n in (1, 2, 3))
BIG = {**PROFILE, "groups": [f"group-{n:04d}" for n in range(320)]}  # two chunks, under 8 KiB
HUGE = {**PROFILE, "groups": [f"group-{n:05d}" for n in range(3000)]}  # ten chunks and more


class Clock:
    """The reader's clock, held by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def reader(
    *secrets: str, verified_tokens: int = nextauth.VERIFIED_TOKENS, **fields: Any
) -> tuple[NextAuthReader, Clock]:
    """A reader of ``secrets`` (the app's by default) on a clock the test holds."""
    clock = Clock(0)
    settings = NextAuthSettings(secrets=secrets or (APP_SECRET,), **fields)
    return NextAuthReader(settings, clock, verified_tokens), clock


def read_now(minted: Minted, *secrets: str, **fields: Any) -> dict[str, Any] | None:
    """The user the reader finds in ``minted``'s cookies a second after it was made."""
    made, clock = reader(*secrets, **fields)
    if minted.payload is not None:
        clock.now = minted.payload["iat"] + 1
    return made.user(minted.jar)


def refusal(minted: Minted, *secrets: str, **fields: Any) -> tuple[str, NextAuthReader]:
    """The detail of the refusal, and the reader (its key cache tells what it derived)."""
    made, clock = reader(*secrets, **fields)
    clock.now = (minted.payload or {}).get("iat", 1_700_000_000) + 1
    with pytest.raises(SessionRefused) as refused:
        made.user(minted.jar)
    assert APP_SECRET not in refused.value.detail and minted.token not in refused.value.detail
    return refused.value.detail, made


def header(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("kind", "secure", "name"),
    [
        ("v4", False, V4),
        ("v4", True, f"__Secure-{V4}"),
        ("v5", False, V5),
        ("v5", True, f"__Secure-{V5}"),
        ("v5-gcm", False, V5),
        ("v5-gcm", True, f"__Secure-{V5}"),
    ],
)
def test_both_formats_under_their_cookie_names(
    mint: Minter, kind: str, secure: bool, name: str
) -> None:
    minted = mint.one(kind, secure=secure, claims=PROFILE)
    assert [n for n, _ in minted.cookies] == [name]
    assert minted.payload is not None  # the package's own decode reads it back
    assert read_now(minted) == PROFILE_USER


def test_the_encryptions_and_kids_are_next_auths(mint: Minter) -> None:
    v4, v5, v5_gcm = (mint.one(k, claims=PROFILE) for k in ("v4", "v5", "v5-gcm"))
    assert header(v4.token) == {"alg": "dir", "enc": "A256GCM"}
    made, _ = reader()
    assert header(v5.token) == {
        "alg": "dir",
        "enc": "A256CBC-HS512",
        "kid": made.keys.get(APP_SECRET, V5, 64).kid,  # the SHA-512 JWK thumbprint
    }
    assert header(v5_gcm.token)["kid"] == made.keys.get(APP_SECRET, V5, 32).kid  # SHA-256
    secure = mint.one("v5", secure=True, claims=PROFILE)
    assert header(secure.token)["kid"] == made.keys.get(APP_SECRET, f"__Secure-{V5}", 64).kid


@pytest.mark.parametrize("kind", ["v4", "v5"])
def test_chunks_are_joined_in_numeric_order(mint: Minter, kind: str) -> None:
    minted = mint.one(kind, claims=BIG)
    name = V4 if kind == "v4" else V5
    assert [n for n, _ in minted.cookies] == [f"{name}.0", f"{name}.1"]
    backwards = dict(reversed(minted.cookies))
    made, clock = reader()
    clock.now = minted.exp - 60
    assert made.session_cookie(backwards) == (name, minted.token)
    user = made.user(backwards)
    assert user == PROFILE_USER


def test_ten_chunks_and_more_join_as_numbers_and_are_refused_as_too_large(mint: Minter) -> None:
    minted = mint.one("v5", claims=HUGE)
    names = [n for n, _ in minted.cookies]
    assert len(names) > 10 and names[10] == f"{V5}.10"
    made, _ = reader()
    assert made.session_cookie(dict(minted.cookies)) == (V5, minted.token)  # .10 after .9
    detail, made = refusal(minted)
    assert detail == nextauth.TOO_LARGE
    assert len(made.keys) == 0  # refused before any key was derived, let alone decryption


@pytest.mark.parametrize("dropped", [0, 1])
def test_a_missing_chunk_is_no_session(mint: Minter, dropped: int) -> None:
    minted = mint.one("v5", claims=BIG)
    cookies = [c for c in minted.cookies if c[0] != f"{V5}.{dropped}"]
    made, _ = reader()
    with pytest.raises(SessionRefused) as refused:
        made.user(dict(cookies))
    assert refused.value.detail.endswith(f"its chunk .{dropped} is missing.")
    assert len(made.keys) == 0


def test_a_cookie_both_whole_and_chunked_is_refused(mint: Minter) -> None:
    chunked, whole = mint.one("v5", claims=BIG), mint.one("v5", claims=PROFILE)
    made, _ = reader()
    with pytest.raises(SessionRefused) as refused:
        made.user({**whole.jar, **chunked.jar})
    assert refused.value.detail == nextauth.BOTH_FORMS


@pytest.mark.parametrize("kind", ["v4", "v5", "v5-gcm"])
def test_expired_when_exp_is_at_most_now_minus_15_seconds(mint: Minter, kind: str) -> None:
    minted = mint.one(kind, claims=PROFILE)
    made, clock = reader()
    clock.now = minted.exp + 14.999  # jose counts whole seconds
    assert made.user(minted.jar) == PROFILE_USER
    clock.now = minted.exp + 15
    with pytest.raises(SessionRefused) as refused:
        made.user(minted.jar)
    assert refused.value.detail == nextauth.EXPIRED


@pytest.mark.parametrize("kind", ["v4", "v5"])
def test_nbf_is_honoured_with_the_same_tolerance(mint: Minter, kind: str) -> None:
    not_before = 4_000_000_000  # 2096: next-auth's own decode refuses it today, as it should
    minted = mint.one(kind, claims={**PROFILE, "nbf": not_before}, maxAge=10**10)
    assert minted.payload is None
    made, clock = reader()
    clock.now = not_before - 16
    with pytest.raises(SessionRefused) as refused:
        made.user(minted.jar)
    assert refused.value.detail == nextauth.NOT_YET_VALID
    clock.now = not_before - 15
    assert made.user(minted.jar) == PROFILE_USER


def test_exp_is_required_though_next_auth_v4_does_not_require_it(mint: Minter) -> None:
    minted = mint.one("no-exp", claims=PROFILE)
    assert minted.payload is not None and "exp" not in minted.payload  # v4's decode takes it
    assert refusal(minted)[0] == nextauth.NO_EXPIRY


@pytest.mark.parametrize(
    ("kind", "detail", "v4_decodes"),
    [
        ("zip", nextauth.UNSUPPORTED, True),
        ("other-alg", nextauth.UNSUPPORTED, True),
        ("other-enc", nextauth.UNSUPPORTED, False),
        ("jws", nextauth.SIGNED, False),
        ("alg-none", nextauth.SIGNED, False),
        ("database", nextauth.DATABASE_SESSION, False),
    ],
)
def test_what_next_auth_never_makes_is_refused_before_decrypting(
    mint: Minter, kind: str, detail: str, v4_decodes: bool
) -> None:
    minted = mint.one(kind, claims=PROFILE)
    # next-auth 4 (jose 4 without algorithm lists) decodes some of these; they are refused.
    assert (minted.payload is not None) is v4_decodes
    found, made = refusal(minted)
    assert found == detail
    assert len(made.keys) == 0


def test_a_database_session_of_authjs_is_refused_too(mint: Minter) -> None:
    v4_id = mint.one("database").token
    made, _ = reader()
    for value in (v4_id, v4_id.upper(), "ab12" * 16):  # a UUID, and v4's 32 random bytes in hex
        with pytest.raises(SessionRefused) as refused:
            made.user({V5: value})
        assert refused.value.detail == nextauth.DATABASE_SESSION


@pytest.mark.parametrize("kind", ["v4", "v5", "v5-gcm"])
def test_another_secret_is_refused(mint: Minter, kind: str) -> None:
    minted = mint.one(kind, OTHER_SECRET, claims=PROFILE)
    assert refusal(minted)[0] == nextauth.UNDECRYPTABLE


@pytest.mark.parametrize("kind", ["v4", "v5"])
@pytest.mark.parametrize("segment", [0, 2, 3, 4], ids=["header", "iv", "ciphertext", "tag"])
def test_a_tampered_token_is_refused(mint: Minter, kind: str, segment: int) -> None:
    minted = mint.one(kind, claims=PROFILE)
    parts = minted.token.split(".")
    middle = len(parts[segment]) // 2
    flipped = "A" if parts[segment][middle] != "A" else "B"
    parts[segment] = parts[segment][:middle] + flipped + parts[segment][middle + 1 :]
    made, clock = reader()
    clock.now = minted.exp - 60
    with pytest.raises(SessionRefused) as refused:
        made.user({minted.cookies[0][0]: ".".join(parts)})
    assert refused.value.detail in (
        nextauth.UNDECRYPTABLE,
        nextauth.NOT_A_TOKEN,
        nextauth.UNSUPPORTED,  # a header altered into another enc
    )


@pytest.mark.parametrize(
    "value",
    ["garbage", "", "a.b.c.d.e", "....", "e30.e30.e30.e30.e30", "W10....", "caf\u00e9.x.y.z.w"],
)
def test_garbage_is_refused(value: str) -> None:
    made, _ = reader()
    with pytest.raises(SessionRefused) as refused:
        made.user({V5: value})
    assert refused.value.detail in (nextauth.NOT_A_TOKEN, nextauth.UNSUPPORTED)


def test_the_secrets_of_a_rotation_are_all_accepted(mint: Minter) -> None:
    secrets = (APP_SECRET, *ROTATION)
    # Auth.js's own rotation: an array of secrets, the first one encrypting (setEnvDefaults
    # builds [AUTH_SECRET_3, AUTH_SECRET_2, AUTH_SECRET_1, AUTH_SECRET] from the variables).
    auth_js = mint.one("v5", [ROTATION[2], ROTATION[1], ROTATION[0], APP_SECRET], claims=PROFILE)
    assert read_now(auth_js, *secrets) == PROFILE_USER
    for secret in ROTATION:
        for kind in ("v4", "v5", "v5-gcm"):
            assert read_now(mint.one(kind, secret, claims=PROFILE), *secrets) == PROFILE_USER
    assert refusal(mint.one("v5", ROTATION[1], claims=PROFILE), APP_SECRET)[0] == (
        nextauth.UNDECRYPTABLE
    )


def test_a_kid_that_names_none_of_the_secrets_is_refused_without_decrypting(
    mint: Minter,
) -> None:
    minted = mint.one("v5", OTHER_SECRET, claims=PROFILE)
    made, clock = reader(APP_SECRET, *ROTATION)
    clock.now = minted.exp - 60
    with pytest.raises(SessionRefused):
        made.user(minted.jar)
    # Only the four keys were derived to compare their kids; nothing matched to decrypt with.
    assert len(made.keys) == 4


def test_the_secret_is_used_as_text_not_decoded(mint: Minter) -> None:
    base64_text = "q1ZQ9kq0m8Jx3h+Tt2v/0c7yYb4Rr6Wn5Ee1Uu9Oo0A="  # `openssl rand -base64 32`
    for kind in ("v4", "v5"):
        assert read_now(mint.one(kind, base64_text, claims=PROFILE), base64_text) == PROFILE_USER


@pytest.mark.parametrize("kind", ["v4", "v5", "v5-gcm"])
def test_a_renamed_cookie_is_read_by_its_name_only(mint: Minter, kind: str) -> None:
    renamed = mint.one(kind, cookieName="myapp.session", claims=PROFILE)
    assert read_now(renamed, cookie_name="myapp.session") == PROFILE_USER
    default = mint.one(kind, claims=PROFILE)
    assert read_now(default, cookie_name="myapp.session") is None  # not this app's cookie


def test_the_user_is_what_get_server_session_gives_plus_id() -> None:
    made, _ = reader(user_claims=("role", "orgId"))
    claims = {**PROFILE, "role": "admin", "orgId": 7, "exp": 1, "iat": 0, "jti": "j", "x": 1}
    assert made.user_of(claims) == {**PROFILE_USER, "role": "admin", "orgId": 7}
    assert list(made.user_of(claims)) == ["id", "name", "email", "image", "role", "orgId"]
    absent = {"sub": "u-1", "email": "e@x", "exp": 1}
    assert made.user_of(absent) == {"id": "u-1", "email": "e@x"}
    # next-auth keeps a null name (a provider without one) as null: so does the service.
    assert made.user_of({"sub": "u-1", "name": None}) == {"id": "u-1", "name": None}


def test_extra_claims_from_the_apps_jwt_callback(mint: Minter) -> None:
    minted = mint.one("v5", claims={**PROFILE, "role": "admin", "orgId": "o-9", "other": 1})
    assert read_now(minted, user_claims=("role", "orgId", "absent")) == {
        **PROFILE_USER,
        "role": "admin",
        "orgId": "o-9",
    }
    assert read_now(minted) == PROFILE_USER


def test_auth_js_comes_before_next_auth_v4_when_both_are_sent(mint: Minter) -> None:
    v4 = mint.one("v4", claims={**PROFILE, "sub": "from-v4"})
    v5 = mint.one("v5", claims={**PROFILE, "sub": "from-v5"})
    made, clock = reader()
    clock.now = v5.exp - 60
    user = made.user({**v4.jar, **v5.jar})
    assert user is not None and user["id"] == "from-v5"


def test_off_without_secrets_and_quiet_without_a_cookie(mint: Minter) -> None:
    off = NextAuthReader(NextAuthSettings())
    assert off.user(mint.one("v5", claims=PROFILE).jar) is None
    made, _ = reader()
    assert made.user({}) is None
    assert made.user({"AIOHTTP_SESSION": "x", "authjs.session-token-other": "y"}) is None


def test_a_verified_token_is_remembered_and_its_times_checked_on_every_use(
    mint: Minter,
) -> None:
    minted = mint.one("v5", claims=PROFILE)
    made, clock = reader()
    clock.now = minted.exp - 60
    assert made.user(minted.jar) == PROFILE_USER
    assert len(made.verified) == 1
    assert made.user(minted.jar) == PROFILE_USER
    assert len(made.verified) == 1
    # The same token under another cookie name needs another key: remembered or not, refused.
    with pytest.raises(SessionRefused) as renamed:
        made.user({f"__Secure-{V5}": minted.token})
    assert renamed.value.detail == nextauth.UNDECRYPTABLE
    clock.now = minted.exp + 15
    with pytest.raises(SessionRefused) as expired:
        made.user(minted.jar)
    assert expired.value.detail == nextauth.EXPIRED


def test_only_tokens_that_check_out_are_remembered_and_only_so_many(mint: Minter) -> None:
    foreign, early, *good = mint(
        spec("v5", OTHER_SECRET, claims=PROFILE),
        spec("v5", claims={**PROFILE, "nbf": 4_000_000_000}, maxAge=10**10),
        *(spec("v5", claims={**PROFILE, "sub": f"u-{n}"}) for n in range(3)),
    )
    made, clock = reader(verified_tokens=2)
    clock.now = good[0].exp - 60
    for refused_cookie in (foreign, early):
        with pytest.raises(SessionRefused):
            made.user(refused_cookie.jar)
    assert len(made.verified) == 0
    for minted in good:
        assert made.user(minted.jar) is not None
    assert len(made.verified) == 2
    off, _ = reader(verified_tokens=0)
    off.clock = clock
    assert off.user(good[0].jar) is not None and len(off.verified) == 0


JWE_LIKE = r"[A-Za-z0-9_\-]{0,40}(\.[A-Za-z0-9_\-=]{0,60}){4}"


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=300) | st.from_regex(JWE_LIKE, fullmatch=True))
def test_any_cookie_value_is_a_refusal_never_an_error(value: str) -> None:
    made, _ = reader()
    for cookies in ({V5: value}, {f"{V4}.0": value}, {f"{V4}.0": value, f"{V4}.1": value}):
        with pytest.raises(SessionRefused):
            made.user(cookies)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_mutated_token_is_a_user_or_a_refusal_never_an_error(
    mint: Minter, data: st.DataObject
) -> None:
    minted = data.draw(
        st.sampled_from(mint(*(spec(k, claims=PROFILE) for k in ("v4", "v5", "v5-gcm"))))
    )
    token = minted.token
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.text(min_size=0, max_size=3))
    mutated = token[:position] + replacement + token[position + 1 :]
    made, clock = reader()
    clock.now = minted.exp - 60
    try:
        user = made.user({minted.cookies[0][0]: mutated})
    except SessionRefused:
        return
    # Only a change the base64 decoding ignores (bits past the last byte) can keep it valid.
    assert user == PROFILE_USER


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
HEADERS = st.fixed_dictionaries(
    {"alg": st.just("dir"), "enc": st.sampled_from(list(nextauth.KEY_BYTES))},
    optional={key: JSON_VALUES for key in ("kid", "crit", "typ", "cty", "zip", "x")},
)


@settings(max_examples=500, deadline=None)
@given(header=HEADERS, segments=st.lists(st.binary(max_size=80), min_size=4, max_size=4))
# What the JWE library once raised a TypeError for (a 500): a crit of odd values.
@example(header={"alg": "dir", "enc": "A256CBC-HS512", "crit": [None]}, segments=[bytes(16)] * 4)
@example(header={"alg": "dir", "enc": "A256CBC-HS512", "crit": None}, segments=[bytes(16)] * 4)
@example(header={"alg": "dir", "enc": "A256CBC-HS512", "crit": [[1]]}, segments=[bytes(16)] * 4)
def test_a_header_next_auth_could_have_made_with_any_bytes_is_refused(
    header: dict[str, Any], segments: list[bytes]
) -> None:
    token = ".".join([_b64(json.dumps(header).encode()), *map(_b64, segments)])
    made, _ = reader(cookie_name="app.sid")  # both key derivations are tried
    with pytest.raises(SessionRefused):
        made.user({"app.sid": token})

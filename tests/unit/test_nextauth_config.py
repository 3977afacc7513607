"""The next-auth variables, by the Next.js app's own names: which secrets are read, in which
order, as what text, and one line naming the variable for a value the service cannot use."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from service.cli.main import main
from service.config import ConfigError, Settings

STRONG = "Zk3q9Rw2Lm7Xv4Tb8Nc1Hp6Jd5Fs0GaY"
STRONG_1, STRONG_2, STRONG_3 = (f"{STRONG}-{n}" for n in (1, 2, 3))


def test_off_without_a_secret() -> None:
    nextauth = Settings.from_env({}).nextauth
    assert not nextauth.enabled
    assert nextauth.secrets == () and nextauth.cookie_name == "" and nextauth.user_claims == ()


def test_secrets_in_order_current_first_then_the_rotation() -> None:
    env = {
        "AUTH_SECRET_3": STRONG_3,
        "AUTH_SECRET_1": STRONG_1,
        "AUTH_SECRET": STRONG,
        "AUTH_SECRET_2": STRONG_2,
    }
    assert Settings.from_env(env).nextauth.secrets == (STRONG, STRONG_1, STRONG_2, STRONG_3)


def test_nextauth_secret_is_v4s_name_for_the_same_secret() -> None:
    assert Settings.from_env({"NEXTAUTH_SECRET": STRONG}).nextauth.secrets == (STRONG,)
    both_same = {"AUTH_SECRET": STRONG, "NEXTAUTH_SECRET": STRONG}
    assert Settings.from_env(both_same).nextauth.secrets == (STRONG,)
    # An app moving from v4 to v5 may hold both names with different values: both are read.
    both = {"AUTH_SECRET": STRONG, "NEXTAUTH_SECRET": STRONG_1}
    assert Settings.from_env(both).nextauth.secrets == (STRONG, STRONG_1)


def test_a_secret_is_taken_as_the_text_it_is() -> None:
    base64_text = "q1ZQ9kq0m8Jx3h+Tt2v/0c7yYb4Rr6Wn5Ee1Uu9Oo0A="
    spaced = f" {STRONG} "
    assert Settings.from_env({"AUTH_SECRET": base64_text}).nextauth.secrets == (base64_text,)
    assert Settings.from_env({"AUTH_SECRET": spaced}).nextauth.secrets == (spaced,)
    assert Settings.from_env({"AUTH_SECRET": "   "}).nextauth.secrets == ()


def test_development_takes_the_apps_weak_secret_production_refuses_it() -> None:
    assert Settings.from_env({"AUTH_SECRET": "secret"}).nextauth.secrets == ("secret",)
    for variable in ("AUTH_SECRET", "NEXTAUTH_SECRET", "AUTH_SECRET_2"):
        for weak in ("secret", "ab" * 20):
            with pytest.raises(ConfigError) as raised:
                Settings.from_env({"SERVICE_ENV": "production", variable: weak})
            assert raised.value.variable == variable
            assert weak not in str(raised.value)
    production = Settings.from_env({"SERVICE_ENV": "production", "AUTH_SECRET": STRONG})
    assert production.nextauth.secrets == (STRONG,)


def test_cookie_name_and_user_claims() -> None:
    env = {
        "AUTH_SECRET": STRONG,
        "NEXTAUTH_COOKIE_NAME": "__Secure-myapp.session",
        "NEXTAUTH_USER_CLAIMS": " role, orgId ,,role",
    }
    nextauth = Settings.from_env(env).nextauth
    assert nextauth.cookie_name == "__Secure-myapp.session"
    assert nextauth.user_claims == ("role", "orgId")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AUTH_SECRET": STRONG, "NEXTAUTH_COOKIE_NAME": "my session"}, "NEXTAUTH_COOKIE_NAME"),
        ({"AUTH_SECRET": STRONG, "NEXTAUTH_COOKIE_NAME": "a;b=c"}, "NEXTAUTH_COOKIE_NAME"),
        ({"NEXTAUTH_COOKIE_NAME": "myapp.session"}, "NEXTAUTH_COOKIE_NAME"),
        ({"AUTH_SECRET": STRONG, "NEXTAUTH_USER_CLAIMS": "role,sub"}, "NEXTAUTH_USER_CLAIMS"),
        ({"AUTH_SECRET": STRONG, "NEXTAUTH_USER_CLAIMS": "exp"}, "NEXTAUTH_USER_CLAIMS"),
        ({"AUTH_SECRET": STRONG, "NEXTAUTH_USER_CLAIMS": "image"}, "NEXTAUTH_USER_CLAIMS"),
        ({"NEXTAUTH_USER_CLAIMS": "role"}, "NEXTAUTH_USER_CLAIMS"),
    ],
    ids=["space", "separators", "no-secret", "sub", "exp", "image", "claims-no-secret"],
)
def test_bad_values_name_their_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert raised.value.variable == variable
    assert str(raised.value).startswith(f"{variable}: ")


def test_the_cli_prints_one_line_naming_the_variable_not_the_secret() -> None:
    env = {"SERVICE_ENV": "production", "AUTH_SECRET_1": "my-app-secret"}
    result = CliRunner().invoke(main, ["db", "current"], env=env)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: AUTH_SECRET_1: too short")
    assert "my-app-secret" not in result.output

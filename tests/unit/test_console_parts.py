"""The console's parts that need no server: its settings, the sign-in limit on a clock the
test moves, the filters' reading, the page cursor and the chart's geometry."""

from __future__ import annotations

import pytest

from service.config import ConfigError, Settings, token_digest
from service.config.console import operator_of
from service.errors import InvalidInput
from service.http.console.chart import HEIGHT, draw
from service.http.console.event_filters import FilterForm
from service.http.console.pages import environment
from service.http.console.sessions import SignInLimiter, operator_for_token
from service.store.delivery_history import Minute
from service.store.event_filter import Cursor

TOKEN = "an-operator-token-of-some-length"


def test_tokens_are_configured_as_digests_only() -> None:
    entry = f"alice={token_digest(TOKEN)}"
    settings = Settings.from_env({"CONSOLE_TOKENS": f"{entry},{token_digest('other')}"})
    assert settings.console.configured
    assert operator_for_token(TOKEN, settings.console, ()) == "alice"
    assert operator_for_token("other", settings.console, ()) == (
        "token " + token_digest("other")[7:19]
    )
    assert operator_for_token("nobody", settings.console, ()) is None
    assert operator_for_token("", settings.console, ()) is None
    with pytest.raises(ConfigError, match="never the token itself"):
        Settings.from_env({"CONSOLE_TOKENS": TOKEN})
    with pytest.raises(ConfigError, match="CONSOLE_ALLOWED_EMAILS"):
        Settings.from_env({"CONSOLE_ALLOWED_EMAILS": "not an email"})
    assert operator_of(token_digest(TOKEN), ()) is None


def test_emails_are_compared_in_any_case() -> None:
    console = Settings.from_env({"CONSOLE_ALLOWED_EMAILS": "Ada@Example.com"}).console
    assert console.email_allowed("ada@example.COM")
    assert not console.email_allowed("eve@example.com")
    assert not console.email_allowed(None)
    assert not Settings.from_env({}).console.configured


def test_roles_are_read_from_the_session_users_role_or_roles() -> None:
    env = {
        "CONSOLE_ALLOWED_ROLES": "ops,admin",
        "NEXTAUTH_USER_CLAIMS": "role",
        "NEXTAUTH_SECRET": "an-app-secret-0123456789abcdefghijklmn",
    }
    console = Settings.from_env(env).console
    assert console.user_allowed({"role": "ops"})
    assert console.user_allowed({"roles": ["viewer", "admin"]})
    assert not console.user_allowed({"role": "viewer", "roles": "admin"})
    assert not console.user_allowed({})
    # Without the claim in the token's user, no role could ever match: one clear line.
    with pytest.raises(ConfigError, match="NEXTAUTH_USER_CLAIMS"):
        Settings.from_env({"CONSOLE_ALLOWED_ROLES": "ops"})


def test_the_sign_in_limit_slides_with_the_clock() -> None:
    now = [1000.0]
    limiter = SignInLimiter(3, clock=lambda: now[0])
    assert [limiter.wait_for("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_for("a") == pytest.approx(60.0)
    assert limiter.wait_for("b") == 0.0  # another address has its own
    now[0] += 30
    assert limiter.wait_for("a") == pytest.approx(30.0)
    now[0] += 30
    assert limiter.wait_for("a") == 0.0


def test_the_limit_forgets_the_oldest_addresses_first() -> None:
    limiter = SignInLimiter(1, clock=lambda: 0.0)
    limiter.MAX_ADDRESSES = 3
    for address in "abcd":
        assert limiter.wait_for(address) == 0.0
    assert limiter.wait_for("a") == 0.0  # forgotten
    assert limiter.wait_for("d") > 0


def test_filters_read_states_times_and_say_what_is_wrong() -> None:
    now = 10_000_000
    form = FilterForm.read({"state": "retrying", "since": "1h", "error": " boom "}, now)
    assert form.problems == []
    assert form.where.status == "pending" and form.where.failed
    assert form.where.since == now - 3_600_000
    assert form.where.error_contains == "boom"
    in_flight = FilterForm.read({"state": "in_flight"}, now).where
    assert in_flight.leased_at == now
    bad = FilterForm.read({"state": "lost", "since": "2h", "until": "3h"}, now)
    assert len(bad.problems) == 2
    # A confirmation replays what was counted: times made absolute.
    assert dict(form.hidden())["since"].startswith("1970-01-01T")


def test_the_cursor_reads_only_what_it_wrote() -> None:
    cursor = Cursor(1796637418463, 42)
    assert Cursor.parse(str(cursor)) == cursor
    for bad in ("", "1.", ".2", "a.b", "1.2.3", "-1.2"):
        with pytest.raises(InvalidInput):
            Cursor.parse(bad)


def test_the_chart_scales_each_series_to_its_largest() -> None:
    minutes = [
        Minute(0, accepted=10, delivered=5, mean_lag=100.0, max_lag=200),
        Minute(60_000, accepted=0, delivered=10, mean_lag=50.0, max_lag=400),
        Minute(120_000),
    ]
    chart = draw(minutes)
    assert chart.most_per_minute == 10 and chart.longest_lag_ms == 400
    tallest = max(chart.bars, key=lambda bar: bar.height)
    assert tallest is chart.bars[1]
    assert chart.bars[2].height == 0
    assert len(chart.lag_points.split()) == 2  # no lag where nothing was delivered
    assert all(0 <= bar.y <= HEIGHT for bar in chart.bars)
    assert draw([]).bars == []


def test_templates_escape_by_default() -> None:
    template = environment().from_string("{{ value }}|{{ payload | data_part }}")
    rendered = template.render(value="<b>", payload='{"id":"x","data":{"a":"<i>"}}')
    assert rendered == "&lt;b&gt;|{&#34;a&#34;:&#34;&lt;i&gt;&#34;}}"

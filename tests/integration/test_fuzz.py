"""Schemathesis against the running app on a real socket: no 5xx, every answer as specified.

Every operation of ``service/http/openapi.yaml`` is fuzzed twice, each time against a fresh app on
127.0.0.1 and a random port, over a migrated database:

- with a valid internal token: data the spec calls valid must be accepted (2xx), data it calls
  invalid must be refused (4xx), and the same requests without the token must get 401;
- without credentials (none, or forged ones schemathesis makes up): every protected route must
  answer a conforming 401.

Both runs check status codes, content types, bodies and headers against the spec, and that no
answer is a 5xx: the database is up, so even the 503 the spec declares would be a bug here.
The run is seeded and derandomized, so a failure reproduces, and small enough for CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case

from service.config import NextAuthSettings, Settings
from tests.conftest import TOKEN
from tests.live_server import LiveServer
from tests.nextauth_cookies import APP_SECRET

SPEC = Path(__file__).resolve().parents[2] / "service" / "http" / "openapi.yaml"
MAX_EXAMPLES = 50  # per operation and run; the whole module takes a few seconds
SEED = 20251123

# The app on SQLite only: the HTTP layer under test is the same on both backends, and
# test_api.py already runs every route on PostgreSQL; fuzzing both would double the time for
# no new answers.
BACKEND = "sqlite"


def _config(*, authenticated: bool) -> schemathesis.Config:
    """The schemathesis configuration of one run: seeded, bounded, every conformance check."""
    checks: dict[str, Any] = {
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
        "response_headers_conformance": {"enabled": True},
        "negative_data_rejection": {"enabled": True},
        "missing_required_header": {"enabled": True},
        "unsupported_method": {"enabled": True},
        "allow_header_conformance": {"enabled": True},
        # With a valid token, valid data must succeed, not merely be answered with some 4xx.
        "positive_data_acceptance": {"enabled": authenticated, "expected-statuses": ["2xx"]},
        "ignored_auth": {"enabled": authenticated},
    }
    project: dict[str, Any] = {}
    if authenticated:
        # Through the config rather than a fixed header: schemathesis then knows the token is
        # real, and its ignored_auth check repeats requests without it, expecting a 401.
        project["auth"] = {"openapi": {"internalToken": {"bearer": TOKEN}}}
    return schemathesis.Config.from_dict(
        {
            **project,
            "seed": SEED,
            "generation": {
                "mode": "all",  # positive and negative data
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",  # no .hypothesis/ replays: every run is the same run
            },
            "checks": checks,
            # No links between operations to follow: the stateful phase would add nothing.
            "phases": {"stateful": {"enabled": False}},
            "request-timeout": 10,
            # The test token is no secret: show failing requests exactly as they were sent.
            "output": {"sanitization": {"enabled": False}},
        }
    )


@pytest.fixture
def backend() -> str:
    """Overrides conftest's parametrized backend: the fuzzing runs on one (see BACKEND)."""
    return BACKEND


@pytest.fixture
def live_url(settings: Settings) -> Iterator[str]:
    """The app over a fresh migrated database, on a real socket, reading next-auth sessions
    too: the cookies schemathesis makes up for their schemes reach the reader."""
    with LiveServer(settings.replace(nextauth=NextAuthSettings(secrets=(APP_SECRET,)))) as server:
        yield server.url


# Loaded from the file at collection so that every operation is a test item of its own
# (schemathesis' lazy ``from_fixture`` loader fails under pytest 9); test_openapi.py checks
# that ``GET /openapi.yaml`` serves exactly this file.
with_token = schemathesis.openapi.from_path(SPEC, config=_config(authenticated=True))
anonymous = schemathesis.openapi.from_path(SPEC, config=_config(authenticated=False))

# One server (and database) serves all the examples of an operation, on purpose: the state
# they leave behind (stored settings, remembered idempotency keys) is part of what is tested.
SHARED_SERVER = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@with_token.parametrize()
@SHARED_SERVER
def test_with_a_valid_token(case: Case, live_url: str) -> None:
    case.call_and_validate(base_url=live_url)


@anonymous.parametrize()
@SHARED_SERVER
def test_without_credentials(case: Case, live_url: str) -> None:
    response = case.call_and_validate(base_url=live_url)
    operation = case.operation
    # The coverage phase also sends methods a path does not take (405 is right for those).
    same_method = case.method.upper() == operation.method.upper()
    if operation.definition.raw.get("security") and same_method:
        assert response.status_code == 401, (
            f"{case.operation.label} answered {response.status_code} without credentials"
        )

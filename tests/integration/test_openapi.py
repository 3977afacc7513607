"""service/http/openapi.yaml: a valid OpenAPI document, describing exactly the app's routes, that
the app's real answers conform to.

test_fuzz.py lets schemathesis explore every operation; the answers it cannot reach with a
healthy database and an internal token (403, 413, 503, replays, 404, 405) are produced here on
purpose and checked against the spec with the same schemathesis checks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import schemathesis
import schemathesis.checks
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate
from schemathesis import Case, Response

from service.config import EventApiSettings, NextAuthSettings, Settings
from service.http import nextauth
from service.http.app import create_app
from service.http.auth import issue_cookie
from tests.conftest import TOKEN, make_settings
from tests.live_server import LiveServer
from tests.nextauth_cookies import APP_SECRET, OTHER_SECRET, Minter
from tests.nextauth_cookies import spec as cookie_spec

SPEC_PATH = Path(__file__).resolve().parents[2] / "service" / "http" / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
SCHEMA = schemathesis.openapi.from_path(SPEC_PATH)
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Connection refused at once: every database call of the app fails, quickly.
UNREACHABLE_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/nothing"
CONFORMANCE = [
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def backend() -> str:
    """SQLite only: these tests are about HTTP answers; test_api.py covers both backends."""
    return "sqlite"


def call(base_url: str, path: str, method: str, *, expect: int, **request: Any) -> Response:
    """Send one request described by the spec's ``method path``, check the answer has status
    ``expect`` and conforms to the spec (status declared, content type, headers, body)."""
    case: Case = SCHEMA[path][method].Case(**request)
    response = case.call(base_url=base_url)
    assert response.status_code == expect, response.text
    case.validate_response(response, checks=CONFORMANCE)
    return response


def header(response: Response, name: str) -> str | None:
    """One header of a schemathesis response (it keeps them lowercased, as lists)."""
    values = response.headers.get(name.lower())
    return values[0] if values else None


def assert_component(response: requests.Response, name: str, status: int) -> None:
    """``response`` is the spec's ``#/components/responses/<name>``, for paths the spec cannot
    list (an unknown path) or methods it does not (405)."""
    component = SPEC["components"]["responses"][name]
    assert response.status_code == status
    [(media_type, content)] = component["content"].items()
    assert response.headers["Content-Type"].split(";")[0] == media_type
    schema = SPEC["components"]["schemas"][content["schema"]["$ref"].rsplit("/", 1)[1]]
    jsonschema.validate(response.json(), schema)
    for header, spec in component.get("headers", {}).items():
        required = SPEC["components"]["headers"][spec["$ref"].rsplit("/", 1)[1]]["required"]
        assert not required or header in response.headers, f"{header} missing"


def test_spec_is_valid_openapi() -> None:
    validate(SPEC)
    assert SPEC["openapi"].startswith("3.")


def _spec_routes() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in SPEC["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def _app_routes(app: web.Application) -> set[tuple[str, str]]:
    # The operators' console is pages for a browser behind a sign-in, not the API the spec
    # describes (the README documents it).
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and not route.resource.canonical.startswith("/console")
    }
    # aiohttp answers HEAD wherever GET is (allow_head); the spec says so once, in its info.
    heads = {path for method, path in routes if method == "HEAD"}
    assert heads <= {path for method, path in routes if method == "GET"}
    return {(method, path) for method, path in routes if method != "HEAD"}


@pytest.mark.parametrize("relay", [False, True], ids=["no-relay", "relay"])
def test_spec_lists_exactly_the_routes_of_the_app(relay: bool) -> None:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"), relay=relay)
    assert _spec_routes() == _app_routes(app)


def test_every_operation_declares_its_statuses_as_problems() -> None:
    """Problem documents everywhere but on the Event API, whose SDKs read its own shape."""
    for path, item in SPEC["paths"].items():
        media_type = "application/json" if path == "/e/{key}" else "application/problem+json"
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    content = answer.get("content") or SPEC["components"]["responses"][
                        answer["$ref"].rsplit("/", 1)[1]
                    ].get("content")
                    assert list(content) == [media_type], (method, path, status)


def test_the_limits_the_document_names_are_the_settings_defaults() -> None:
    """Every "`VARIABLE` (N KiB by default)" of the document is what Settings() holds."""
    text = SPEC_PATH.read_text()
    named = re.findall(r"`([A-Z_]+)`[^`(]*\((\d+) KiB by\s+default", text)
    assert {name for name, _ in named} >= {"MAX_HEADER_BYTES", "EVENT_MAX_BYTES"}, named
    defaults = Settings.from_env({})
    values = {
        "MAX_HEADER_BYTES": defaults.max_header_bytes,
        "MAX_BODY_BYTES": defaults.max_body_bytes,
        "EVENT_MAX_BYTES": defaults.event_api.max_event_bytes,
    }
    for name, kib in named:
        assert values[name] == int(kib) * 1024, (name, kib)


async def test_the_app_serves_this_file(client: TestClient) -> None:
    response = await client.get("/openapi.yaml")
    assert response.status == 200
    assert response.content_type == "application/yaml"
    assert await response.text() == SPEC_PATH.read_text()


def test_accepted_and_replayed_answers_conform(live_url: str) -> None:
    headers = {**BEARER, "Idempotency-Key": "order 42/sync"}
    first = call(live_url, "/api", "POST", expect=200, headers=headers, body={"a": 1})
    assert header(first, "Idempotent-Replayed") is None
    again = call(live_url, "/api", "POST", expect=200, headers=headers)
    assert header(again, "Idempotent-Replayed") == "true"
    assert again.json() == first.json()


@pytest.mark.parametrize(
    "key", ["k" * 256, "caf\u00e9", "tab\there"], ids=["long", "latin1", "ctl"]
)
def test_a_malformed_idempotency_key_is_a_conforming_400(live_url: str, key: str) -> None:
    call(live_url, "/api", "POST", expect=400, headers={**BEARER, "Idempotency-Key": key})


def test_bad_bodies_are_conforming_400s(live_url: str) -> None:
    call(live_url, "/api", "POST", expect=400, headers=BEARER, body=[1, 2])
    call(live_url, "/api/settings", "PUT", expect=400, headers=BEARER, body="text")


def test_a_session_caller_gets_conforming_answers(live_url: str, settings: Settings) -> None:
    cookie = {settings.session_cookie_name: issue_cookie(settings, {"id": "u-1"})}
    call(live_url, "/api", "POST", expect=200, cookies=cookie)
    call(live_url, "/api/settings", "GET", expect=403, cookies=cookie)
    call(live_url, "/api/settings", "PUT", expect=403, cookies=cookie, body={"a": 1})


def test_a_next_auth_session_caller_gets_conforming_answers(
    settings: Settings, mint: Minter
) -> None:
    good, foreign = mint(cookie_spec("v5", claims={"sub": "u-1"}), cookie_spec("v4", OTHER_SECRET))
    app_settings = settings.replace(nextauth=NextAuthSettings(secrets=(APP_SECRET,)))
    with LiveServer(app_settings) as server:
        call(server.url, "/api", "POST", expect=200, cookies=good.jar)
        call(server.url, "/api", "POST", expect=200, cookies=good.jar, headers=BEARER)
        call(server.url, "/api/settings", "GET", expect=403, cookies=good.jar)
        call(server.url, "/api", "POST", expect=401, cookies=foreign.jar)
        call(server.url, "/api", "POST", expect=401, cookies=foreign.jar, headers=BEARER)


def test_the_next_auth_cookie_schemes_name_the_default_cookies() -> None:
    schemes = SPEC["components"]["securitySchemes"]
    assert schemes["authjsSession"]["name"] == nextauth.V5_NAMES[-1]
    assert schemes["nextAuthSession"]["name"] == nextauth.V4_NAMES[-1]
    [post] = [SPEC["paths"]["/api"]["post"]]
    assert {"internalToken": [], "authjsSession": []} in post["security"]


def test_oversized_bodies_are_conforming_413s(live_url: str, settings: Settings) -> None:
    big = {"x": "a" * settings.max_body_bytes}
    call(live_url, "/api", "POST", expect=413, headers=BEARER, body=big)
    call(live_url, "/api/settings", "PUT", expect=413, headers=BEARER, body=big)


def test_an_unreachable_database_gives_conforming_503s() -> None:
    with LiveServer(make_settings(UNREACHABLE_DATABASE)) as server:
        for path, method, body in (
            ("/api", "POST", None),
            ("/api/settings", "GET", None),
            ("/api/settings", "PUT", {"a": 1}),
        ):
            request: dict[str, Any] = {"headers": BEARER}
            if body is not None:
                request["body"] = body
            response = call(server.url, path, method, expect=503, **request)
            assert int(header(response, "Retry-After") or "-1") >= 0
        call(server.url, "/ready", "GET", expect=503)
        call(server.url, "/health", "GET", expect=200)
        call(server.url, "/metrics", "GET", expect=200)


def test_an_unmigrated_database_is_not_ready(tmp_path: Path) -> None:
    with LiveServer(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")) as server:
        response = call(server.url, "/ready", "GET", expect=503)
        assert "db upgrade" in response.json()["detail"]


def test_unknown_paths_and_methods_are_conforming_problems(live_url: str) -> None:
    assert_component(requests.get(f"{live_url}/nowhere", timeout=10), "NotFound", 404)
    for method, path in (("DELETE", "/api"), ("POST", "/health"), ("PATCH", "/api/settings")):
        response = requests.request(method, f"{live_url}{path}", timeout=10)
        assert_component(response, "MethodNotAllowed", 405)
        declared = {m.upper() for m in SPEC["paths"][path] if m in HTTP_METHODS}
        assert declared <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_event_api_answers_conform(settings: Settings) -> None:
    """The Event API's answers, in its own shape: accepted, refused, too large, off, down."""
    keyed = settings.replace(
        event_api=EventApiSettings(keys=("app-key",), max_body_bytes=2048, max_event_bytes=1024)
    )
    big = [{"name": "app/a", "data": {"x": "y" * 3000}}]
    cases = [
        (keyed, 200, "app-key", [{"name": "app/a"}, {"name": "app/b", "data": {"x": 1}}]),
        (keyed, 401, "other", {"name": "app/a"}),
        (keyed, 400, "app-key", [{"name": "inngest/x"}]),
        (keyed, 413, "app-key", big),
        (settings.replace(environment="production"), 404, "any", {"name": "app/a"}),
        (make_settings(UNREACHABLE_DATABASE), 503, "any", {"name": "app/a"}),
    ]
    for served, status, key, body in cases:
        with LiveServer(served) as server:
            call(
                server.url,
                "/e/{key}",
                "POST",
                expect=status,
                path_parameters={"key": key},
                body=body,
            )

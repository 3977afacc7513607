"""Every PromQL expression of the Grafana dashboard (deploy/grafana/outbox.json) and of the alert
rules (deploy/prometheus/alerts.yml) asks for metrics and labels that the service really
exports: what ``/metrics`` of a real ``service serve`` and of a real ``service relay`` answer
after a few events went through. A renamed metric or a misspelt label would otherwise match
nothing, silently: an empty panel, an alert that can never fire.

Expressions are parsed with promql-parser (a PromQL parser); a histogram's ``_bucket``,
``_sum`` and ``_count`` series count as its base name. ``up`` and the ``job`` and ``instance``
labels are Prometheus' own, and the jobs named must be the scrape jobs of prometheus.yml.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import bearer
from tests.fake_inngest import running_fake
from tests.processes import free_port, service_env, spawn, sqlite_copy, stop, wait_http
from tests.relay_harness import EVENT_KEY, eventually

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "outbox.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

# Grafana's interval variables, as Grafana substitutes them before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "6h"}
# What Prometheus adds to what it scrapes: ``up`` per target, ``job`` and ``instance`` on all.
TARGET_LABELS = frozenset({"job", "instance"})
PROMETHEUS_SERIES = {"up": TARGET_LABELS}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass
class Selection:
    """What an expression selects: metric names, each with the labels the expression uses on
    it (in matchers, or in the ``by``/``without`` of an aggregation around it), and the values
    it requires of ``job``."""

    labels: dict[str, set[str]] = field(default_factory=dict)
    jobs: set[str] = field(default_factory=set)


def selection(expression: str) -> Selection:
    """Parse ``expression`` (after Grafana's variables) and collect what it selects."""
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    assert "$" not in expression, f"an unknown Grafana variable in {expression}"
    found = Selection()

    def selectors(node: object) -> list[object]:
        inner: list[object] = []
        promql_parser.walk(
            node, lambda n: inner.append(n) if isinstance(n, promql_parser.VectorSelector) else None
        )
        return inner

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers.matchers
            name = node.name or next(m.value for m in matchers if m.name == "__name__")
            labels = found.labels.setdefault(name, set())
            for matcher in matchers:
                if matcher.name == "job":
                    found.jobs.update(matcher.value.split("|"))
                if matcher.name != "__name__":
                    labels.add(matcher.name)
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            for inner in selectors(node.expr):
                name = inner.name  # type: ignore[attr-defined]
                found.labels.setdefault(name, set()).update(node.modifier.labels)

    promql_parser.walk(promql_parser.parse(expression), visit)
    return found


def dashboard_expressions() -> dict[str, str]:
    """``"panel title / refId"`` -> expression, for every query of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        f"{panel['title']} / {target['refId']}": target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }


def rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def exported(expositions: list[str]) -> dict[str, set[str]]:
    """Series name -> label names, over every exposition; histograms also by base name."""
    names: dict[str, set[str]] = {}
    for exposition in expositions:
        for family in text_string_to_metric_families(exposition):
            for sample in family.samples:
                names.setdefault(sample.name, set()).update(sample.labels)
                if family.type == "histogram":
                    names.setdefault(family.name, set()).update(sample.labels)
    return names


def problems(expressions: dict[str, str], available: dict[str, set[str]]) -> list[str]:
    """Each metric an expression asks for that is not exported, or a label it does not carry."""
    found = []
    for where, expression in expressions.items():
        for name, labels in selection(expression).labels.items():
            if name in PROMETHEUS_SERIES:
                known = PROMETHEUS_SERIES[name]
            elif name in available:
                known = available[name] | TARGET_LABELS
            else:
                found.append(f"{where}: {name} is not exported")
                continue
            for label in sorted(labels - known):
                found.append(f"{where}: {name} has no label {label!r}")
    return found


# --- the parsing itself, on expressions with known answers ---------------------------------


def test_selection_finds_names_labels_and_jobs() -> None:
    found = selection(
        'sum by (le) (rate(a_seconds_bucket{outcome="ok"}[$__rate_interval]))'
        " / sum without (route) (b_total) or delta(max(c_rows)[1h:]) > 0"
        ' or up{job=~"api|relay"} == 0 or {__name__="d_total", zone="x"}'
    )
    assert found.labels == {
        "a_seconds_bucket": {"le", "outcome"},
        "b_total": {"route"},
        "c_rows": set(),
        "up": {"job"},
        "d_total": {"zone"},
    }
    assert found.jobs == {"api", "relay"}


def test_problems_reports_unknown_metrics_and_labels() -> None:
    available = exported(
        [
            "# TYPE x_seconds histogram\n"
            'x_seconds_bucket{le="1.0"} 1\nx_seconds_bucket{le="+Inf"} 1\n'
            "x_seconds_sum 0.5\nx_seconds_count 1\n"
            "# TYPE y counter\n"
            'y_total{outcome="ok"} 3\n'
        ]
    )
    assert "x_seconds" in available and available["x_seconds_bucket"] == {"le"}
    expressions = {
        "fine": "histogram_quantile(0.5, sum by (le, job) (rate(x_seconds_bucket[5m])))"
        ' + sum(rate(y_total{outcome="ok"}[5m])) + x_seconds_count + (up == 0)',
        "renamed": "rate(y_attempts_total[5m])",
        "misspelt": 'sum by (outcom) (rate(y_total{outcome="ok"}[5m]))',
    }
    assert problems(expressions, available) == [
        "renamed: y_attempts_total is not exported",
        "misspelt: y_total has no label 'outcom'",
    ]


# --- the files, against real processes --------------------------------------------------------


async def scrape_a_running_service(template: Path, tmp_path: Path) -> list[str]:
    """``/metrics`` of ``service serve --no-relay`` and of ``service relay``, sharing one
    database, once events went through the API, the relay and a stand-in Inngest."""
    api_port, relay_port = free_port(), free_port()
    async with running_fake() as fake:
        env = service_env(
            sqlite_copy(template, tmp_path),
            PORT=str(api_port),
            INNGEST_EVENT_API_BASE_URL=fake.origin,
            INNGEST_EVENT_KEY=EVENT_KEY,
            RELAY_METRICS_PORT=str(relay_port),
            RELAY_POLL_INTERVAL="100ms",
        )
        api = spawn(["serve", "--no-relay"], env, tmp_path / "api.log")
        relay = spawn(["relay"], env, tmp_path / "relay.log")
        api_url, relay_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{relay_port}"
        try:
            await wait_http(f"{api_url}/health", api)
            await wait_http(f"{relay_url}/health", relay)
            async with aiohttp.ClientSession() as session:
                for _ in range(3):
                    async with session.post(f"{api_url}/api", headers=bearer()) as response:
                        assert response.status == 200
                async with session.get(f"{api_url}/ready") as response:
                    assert response.status == 200

                async def delivered() -> bool:
                    return len(fake.received) >= 3

                await eventually(delivered, timeout=20)
                expositions = []
                for url in (api_url, relay_url):
                    async with session.get(f"{url}/metrics") as response:
                        assert response.status == 200
                        expositions.append(await response.text())
        finally:
            assert await stop(relay) == 0
            assert await stop(api) == 0
    return expositions


@pytest.mark.slow
async def test_dashboard_and_alerts_ask_only_for_exported_metrics(
    sqlite_template: Path, tmp_path: Path
) -> None:
    available = exported(await scrape_a_running_service(sqlite_template, tmp_path))
    # The run exported what the files are about (a broken scrape would vacuously pass).
    assert {"outbox_events_delivered_total", "relay_delivery_attempts_total"} <= set(available)
    assert {"route", "status"} <= available["http_requests_total"]
    expressions = {f"outbox.json: {k}": v for k, v in dashboard_expressions().items()}
    expressions |= {f"alerts.yml: {k}": v for k, v in rule_expressions().items()}
    assert problems(expressions, available) == []


def test_the_dashboard_has_the_panels_an_operator_looks_for() -> None:
    asked = {
        "pending rows": "outbox_pending_rows",
        "dead rows": "outbox_dead_rows",
        "oldest pending": "outbox_oldest_pending_age_seconds",
        "accepted": "outbox_events_accepted_total",
        "delivered": "outbox_events_delivered_total",
        "attempts by outcome": "relay_delivery_attempts_total",
        "delivery delay": "outbox_delivery_delay_seconds_bucket",
        "batch send time": "relay_batch_send_seconds_bucket",
        "http requests by status": "http_requests_total",
    }
    used = {name for e in dashboard_expressions().values() for name in selection(e).labels}
    assert set(asked.values()) <= used
    quantiles = [
        e for e in dashboard_expressions().values() if "outbox_delivery_delay_seconds" in e
    ]
    assert {re.search(r"histogram_quantile\((0\.\d+)", e).group(1) for e in quantiles} == {  # type: ignore[union-attr]
        "0.5",
        "0.99",
    }


def test_the_jobs_named_are_the_scrape_jobs() -> None:
    jobs = {job["job_name"] for job in yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"]}
    named = set()
    for expression in [*rule_expressions().values(), *dashboard_expressions().values()]:
        named |= selection(expression).jobs
    assert named and named <= jobs

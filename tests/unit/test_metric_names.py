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

import re

import yaml

from tests.promql_names import (
    SCRAPE_CONFIG,
    dashboard_expressions,
    exported,
    problems,
    rule_expressions,
    selection,
)


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

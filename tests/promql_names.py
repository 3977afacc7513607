"""The metric names and labels that PromQL expressions ask for (the dashboard's, the alert
rules'), and what a running service exports, for the tests that compare them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import promql_parser
import yaml
from prometheus_client.parser import text_string_to_metric_families

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

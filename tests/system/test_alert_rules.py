"""deploy/prometheus: the alert rules pass ``promtool check rules`` and their unit tests
(``promtool test rules alerts_test.yml``), every alert has a summary, a runbook naming the
command to run, and a case of firing and one of staying quiet; prometheus.yml passes
``promtool check config``.

promtool is Debian's ``prometheus`` package (``.ci/run`` installs it). Without it these tests
skip with the reason, except in CI (``CI=true``), where a skip would hide a broken rule.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "alerts_test.yml"
CONFIG = PROMETHEUS / "prometheus.yml"


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool not found (apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must check the alert rules")
        pytest.skip(reason)
    return path


def run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, check=False, timeout=120
    )


def test_the_rules_pass_promtool_check(promtool: str) -> None:
    result = run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_the_rules_pass_their_unit_tests(promtool: str) -> None:
    result = run(promtool, "test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_prometheus_config_passes_promtool_check(promtool: str) -> None:
    """The compose stack's scrape configuration, which loads alerts.yml beside it."""
    result = run(promtool, "check", "config", CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_the_checks_can_fail(promtool: str, tmp_path: Path) -> None:
    """A misspelt function fails the check; a wrong expectation fails the unit tests."""
    broken = tmp_path / "broken.yml"
    broken.write_text(RULES.read_text().replace("increase(", "increse(", 1))
    assert run(promtool, "check", "rules", broken).returncode != 0
    shutil.copy(RULES, tmp_path / RULES.name)
    tests = yaml.safe_load(RULE_TESTS.read_text())
    quiet = next(
        case
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if not case.get("exp_alerts")
    )
    quiet["exp_alerts"] = [{"exp_labels": {"severity": "critical"}}]
    (tmp_path / RULE_TESTS.name).write_text(yaml.safe_dump(tests))
    result = run(promtool, "test", "rules", tmp_path / RULE_TESTS.name)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_says_what_it_means_and_what_to_run(rule: dict[str, Any]) -> None:
    annotations = rule.get("annotations", {})
    assert annotations.get("summary"), "no summary"
    assert "`service outbox " in annotations.get("runbook", ""), "no `service outbox ...` to run"
    assert rule.get("labels", {}).get("severity") in ("critical", "warning")


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases: dict[str, set[bool]] = {rule["alert"]: set() for rule in alert_rules()}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test["alert_rule_test"]:
            assert case["alertname"] in cases, f"a test of no alert: {case['alertname']}"
            cases[case["alertname"]].add(bool(case.get("exp_alerts")))
    for name, fired in cases.items():
        assert fired == {True, False}, f"{name} needs a firing and a quiet case in alerts_test.yml"

"""docker-compose.yml's ``observability`` profile: Prometheus scraping the API and every relay
with the alert rules loaded, Grafana provisioned with the dashboard and Prometheus as its data
source; every file the compose file mounts exists. Nothing is started (no Docker engine in
CI): the wiring is read from the files, as tests/system/test_compose.py does for the rest."""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from service.config import Settings
from tests.system.test_compose import (
    COMPOSE,
    ROOT,
    SERVICES,
    environment,
    image_environment,
    running,
)

PROFILE = "observability"


def volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    """A service's volumes as (source, target), short or long form."""
    pairs = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        pairs.append((source, target))
    return pairs


def binds(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> the file or folder of this repository mounted there."""
    return {
        target: (ROOT / source).resolve()
        for source, target in volumes(service)
        if source.startswith((".", "/"))
    }


def mounted(service: dict[str, Any], container_path: str) -> Path:
    """The repository's file at ``container_path`` inside ``service``, through its mounts."""
    for target, source in sorted(binds(service).items(), key=lambda item: -len(item[0])):
        if container_path == target:
            return source
        if container_path.startswith(target.rstrip("/") + "/"):
            return source / posixpath.relpath(container_path, target)
    pytest.fail(f"nothing is mounted at {container_path}")


def flag(service: dict[str, Any], name: str, default: str) -> str:
    """The value of ``--name=value`` in a service's command, else the image's default."""
    for argument in service.get("command", []):
        if argument.startswith(f"--{name}="):
            return str(argument.split("=", 1)[1])
    return default


PROMETHEUS = SERVICES["prometheus"]
GRAFANA = SERVICES["grafana"]
PROMETHEUS_CONFIG_PATH = flag(PROMETHEUS, "config.file", "/etc/prometheus/prometheus.yml")
PROMETHEUS_CONFIG = yaml.safe_load(mounted(PROMETHEUS, PROMETHEUS_CONFIG_PATH).read_text())
GRAFANA_PROVISIONING = environment(GRAFANA).get(
    "GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"
)


def provisioned(kind: str) -> list[dict[str, Any]]:
    """Grafana's provisioning documents of ``kind`` (datasources, dashboards)."""
    folder = mounted(GRAFANA, f"{GRAFANA_PROVISIONING}/{kind}")
    documents = [yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.y*ml"))]
    assert documents, f"no {kind} provisioned"
    return documents


def test_the_profile_adds_prometheus_and_grafana_to_the_stack() -> None:
    profiled = {name for name, spec in SERVICES.items() if PROFILE in spec.get("profiles", [])}
    assert profiled == {"prometheus", "grafana"}
    # `docker compose up` without the profile still starts the whole service.
    for name, spec in SERVICES.items():
        assert name in profiled or not spec.get("profiles"), name


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_mounted_file_exists_and_every_volume_is_declared(name: str) -> None:
    service = SERVICES[name]
    for target, source in binds(service).items():
        assert source.exists(), f"{name} mounts {source} at {target}: no such file"
        assert source.is_relative_to(ROOT), f"{name} mounts {source} from outside the repository"
    for source, _target in volumes(service):
        if not source.startswith((".", "/")):
            assert source in COMPOSE["volumes"], f"{name}: volume {source} is not declared"


def test_prometheus_loads_the_alert_rules() -> None:
    config_dir = posixpath.dirname(PROMETHEUS_CONFIG_PATH)
    rules = [
        mounted(PROMETHEUS, posixpath.join(config_dir, path))
        for path in PROMETHEUS_CONFIG["rule_files"]
    ]
    assert rules == [ROOT / "deploy" / "prometheus" / "alerts.yml"]


def scrape_targets() -> dict[str, set[tuple[str, int]]]:
    """Job -> the (compose service, port) pairs its DNS discovery finds."""
    targets: dict[str, set[tuple[str, int]]] = {}
    for job in PROMETHEUS_CONFIG["scrape_configs"]:
        found = targets.setdefault(job["job_name"], set())
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for discovery in job.get("dns_sd_configs", []):
            # A records: one address per replica, so every replica is a target.
            assert discovery.get("type") == "A", job["job_name"]
            found |= {(name, int(discovery["port"])) for name in discovery["names"]}
    return targets


def test_prometheus_scrapes_the_api_and_every_relay_where_they_serve_metrics() -> None:
    scraped = set().union(*scrape_targets().values())
    for name, api in running("serve").items():
        settings = Settings.from_env({**image_environment(), **environment(api)})
        assert (name, settings.port) in scraped, f"{name}'s /metrics is not scraped"
    relays = running("relay")
    assert relays
    for name, relay in relays.items():
        settings = Settings.from_env({**image_environment(), **environment(relay)})
        assert settings.relay.metrics_port != 0, f"{name} serves no /metrics"
        assert (name, settings.relay.metrics_port) in scraped, f"{name} is not scraped"
    assert set(scrape_targets()) == {"api", "relay"}  # the jobs alerts.yml names


def test_grafana_reads_prometheus_and_shows_the_dashboard() -> None:
    [datasources] = provisioned("datasources")
    [source] = datasources["datasources"]
    assert source["type"] == "prometheus" and source.get("isDefault")
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus"
    assert url.port == int(flag(PROMETHEUS, "web.listen-address", ":9090").rsplit(":", 1)[1])
    assert GRAFANA["depends_on"]["prometheus"]["condition"] == "service_healthy"

    [dashboards] = provisioned("dashboards")
    [provider] = dashboards["providers"]
    assert provider["type"] == "file"
    folder = provider["options"]["path"]
    dashboard = mounted(GRAFANA, f"{folder}/outbox.json")
    assert dashboard == ROOT / "deploy" / "grafana" / "outbox.json"
    home = environment(GRAFANA)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert mounted(GRAFANA, home) == dashboard


def test_the_dashboard_is_a_grafana_dashboard_on_a_prometheus_source() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "outbox.json").read_text())
    [variable] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    chosen = {"type": "prometheus", "uid": f"${{{variable['name']}}}"}
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == chosen, panel["title"]
        targets = panel["targets"]
        assert targets and all(t["expr"] and t["datasource"] == chosen for t in targets)
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]

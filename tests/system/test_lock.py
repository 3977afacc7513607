"""The lock files (requirements/*.txt, written by ``make lock`` with pip-tools): every package
pinned with its hashes, in step with pyproject.toml's ranges, the runtime lock a subset of the
development one, and used where the README says: ``make`` installs from it, the image builds
from it, and this very test run is what it pins."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.system.test_compose import DOCKERFILE

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"
DEV_LOCK = ROOT / "requirements" / "dev.txt"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@dataclass(frozen=True)
class Pin:
    """One locked requirement: ``name==version [; marker]`` and its hashes."""

    requirement: Requirement
    hashes: frozenset[str]

    @property
    def version(self) -> str:
        [specifier] = self.requirement.specifier
        return specifier.version


def read_lock(path: Path) -> dict[str, Pin]:
    """The pins of a pip-tools lock file, by canonical name."""
    text = re.sub(r"\s*\\\n\s*", " ", path.read_text())  # join the continuation lines
    pins: dict[str, Pin] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("-"), f"{path.name}: an option in the lock: {line}"
        spec, *hashes = line.split(" --hash=")
        requirement = Requirement(spec)
        pins[canonicalize_name(requirement.name)] = Pin(requirement, frozenset(hashes))
    return pins


RUNTIME = read_lock(RUNTIME_LOCK)
DEV = read_lock(DEV_LOCK)


def declared(*groups: str) -> list[Requirement]:
    """pyproject.toml's requirements: the runtime ones, the extras named, ``build``'s."""
    project = PYPROJECT["project"]
    names = [*project["dependencies"]]
    for group in groups:
        names += project["optional-dependencies"][group]
    return [Requirement(name) for name in names]


BUILD = [Requirement(name) for name in PYPROJECT["build-system"]["requires"]]


@pytest.mark.parametrize("lock", [RUNTIME, DEV], ids=["runtime", "dev"])
def test_every_pin_is_exact_and_hashed(lock: dict[str, Pin]) -> None:
    assert lock
    for name, pin in lock.items():
        assert [s.operator for s in pin.requirement.specifier] == ["=="], name
        assert pin.hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes)


@pytest.mark.parametrize(
    ("lock", "requirements"),
    [(RUNTIME, [*declared(), *BUILD]), (DEV, [*declared("dev"), *BUILD])],
    ids=["runtime", "dev"],
)
def test_the_lock_pins_what_pyproject_asks_for(
    lock: dict[str, Pin], requirements: list[Requirement]
) -> None:
    """A range changed in pyproject.toml without ``make lock`` fails here."""
    for requirement in requirements:
        pin = lock.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement.name} is not locked: run `make lock`"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"{requirement} but the lock has {pin.version}: run `make lock`"
        )


def test_the_image_runs_what_the_tests_ran() -> None:
    """Every runtime pin is in the development lock with the same version and hashes."""
    for name, pin in RUNTIME.items():
        assert name in DEV, name
        assert (DEV[name].version, DEV[name].hashes) == (pin.version, pin.hashes), name


def test_this_environment_is_the_lock() -> None:
    """``make test`` runs in what the lock pins (``make`` reinstalls when the lock changes)."""
    for name, pin in DEV.items():
        if pin.requirement.marker is None or pin.requirement.marker.evaluate():
            assert importlib.metadata.version(name) == pin.version, name


def make(*args: str) -> str:
    result = subprocess.run(
        ["make", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=60
    )
    return result.stdout


def test_make_installs_the_lock_and_then_only_the_project() -> None:
    """What ``make install`` would run (``-n``: printed, not run; ``-B``: as if from nothing),
    and that a change of the lock makes the next ``make run``/``make test`` reinstall."""
    pips = [line for line in make("-n", "-B", "install").splitlines() if "pip install" in line]
    assert len(pips) == 2, pips
    assert re.search(r"--require-hashes -r requirements/dev\.txt$", pips[0]), pips[0]
    assert pips[1].endswith("--no-deps --no-build-isolation -e ."), pips[1]
    database = make("-p", "-q", "-n", "install")  # make's rules, variables left out

    def prerequisites(target: str) -> set[str]:
        [rule] = re.findall(rf"^{re.escape(target)}: (?!.*:=)(.*)$", database, re.MULTILINE)
        return set(rule.split())

    assert prerequisites(".venv/.installed") >= {"pyproject.toml", "requirements/dev.txt"}
    for target in ("run", "test", "lint"):
        assert ".venv/.installed" in prerequisites(target), target


def test_the_image_builds_from_the_runtime_lock() -> None:
    build = DOCKERFILE[: max(i for i, c in enumerate(DOCKERFILE) if c.cmd == "FROM")]
    runs = [c.value[0] for c in build if c.cmd == "RUN"]
    copied = [source for c in build if c.cmd == "COPY" for source in c.value[:-1]]
    assert "requirements/runtime.txt" in copied
    [locked] = [run for run in runs if "-r requirements/runtime.txt" in run]
    assert re.search(r"\bpip wheel\b.*--require-hashes", locked), locked
    # Anything else the build stage installs comes from those wheels, not from an index.
    for run in runs:
        if run != locked and re.search(r"\bpip (install|wheel)\b", run):
            assert "--no-index" in run, run

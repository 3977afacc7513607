"""The layout stays what the README's "Architecture" section says: packages by concern, imports
that point one way, small modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "service"
MAX_MODULE_LINES = 450
MAX_TOP_LEVEL_MODULES = 10
PROCESS_WIDE = {
    "config",
    "errors",
    "heap",
    "json_reader",
    "logs",
    "metrics",
    "telemetry",
    "timefmt",
}
# Which room may import which: the event knows nothing but errors, the store only
# configuration, errors, the event and the spans (``send_event`` writes in the app's), the
# relay the store, and the HTTP face and the command line sit on top.
ALLOWED = {
    "events": {"events", "errors"},
    "store": {"store", "config", "errors", "events", "telemetry"},
    "relay": {"relay", "store", "events", *PROCESS_WIDE},
    "http": {"http", "relay", "store", "events", *PROCESS_WIDE},
    "cli": {"cli", "http", "relay", "store", "events", *PROCESS_WIDE},
}
# What differs between SQLite and PostgreSQL is the backends' business alone.
BACKENDS = PACKAGE / "store" / "backends"
BACKEND_CHECKS = re.compile(r"\.dialect\.name|\bis_sqlite\b|get_backend_name\(")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Each module of ``service`` and the modules of ``service`` it imports, from its own code."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {target for target in imported if target in modules and target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for target in sorted(graph[module]):
            if cycle := visit(target, [*path, module]):
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        if cycle := visit(module, []):
            return cycle
    return None


def test_the_import_graph_has_no_cycle() -> None:
    assert find_cycle(import_graph()) is None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_each_room_imports_only_the_rooms_below_it() -> None:
    wrong = []
    for module, targets in import_graph().items():
        parts = module.split(".")
        room = parts[1] if len(parts) > 1 else None
        if room not in ALLOWED:
            continue
        for target in targets:
            target_parts = target.split(".")
            target_room = target_parts[1] if len(target_parts) > 1 else "service"
            if target_room not in ALLOWED[room]:
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_modules_are_small_and_few_stand_at_the_top() -> None:
    top_level = [path for path in PACKAGE.glob("*.py")]
    assert len(top_level) <= MAX_TOP_LEVEL_MODULES, sorted(p.name for p in top_level)
    for folder in (PACKAGE, ROOT / "bench"):
        for path in folder.rglob("*.py"):
            lines = len(path.read_text().splitlines())
            assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)}: {lines} lines"


def test_only_the_backends_tell_the_databases_apart() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in [*PACKAGE.rglob("*.py"), ROOT / "migrations" / "env.py"]
        if BACKENDS not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if BACKEND_CHECKS.search(line)
    ]
    assert wrong == []


def test_every_store_module_says_what_it_exports() -> None:
    silent = [
        str(path.relative_to(ROOT))
        for path in (PACKAGE / "store").rglob("*.py")
        if path.name != "__init__.py"
        and not any(
            isinstance(node, ast.Assign)
            and any(
                isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
            )
            for node in ast.parse(path.read_text()).body
        )
    ]
    assert silent == []

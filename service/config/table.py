"""The README's configuration table, rendered from the settings' declarations.

``python -m service.config.table README.md`` rewrites the table in place (``make docs``); a
test fails while the README's table differs from ``render()``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from service.config.settings import Settings
from service.config.variables import VARIABLE, VARIABLES, Variable

HEADER = "| variable | default | meaning |\n|---|---|---|\n"


def variables(cls: type = Settings) -> Iterator[Variable[Any]]:
    """Every variable of ``cls`` and of the settings classes it holds, in field order."""
    for f in dataclasses.fields(cls):
        if VARIABLE in f.metadata:
            yield f.metadata[VARIABLE]
        elif VARIABLES in f.metadata:
            yield from f.metadata[VARIABLES]
        elif f.default_factory is not dataclasses.MISSING:
            nested = f.default_factory()
            if dataclasses.is_dataclass(nested):
                yield from variables(type(nested))


def render() -> str:
    """The table: one row per variable, its default as the README states it, its meaning."""
    rows = (f"| `{v.name}` | {v.default_text} | {v.meaning} |\n" for v in variables())
    return HEADER + "".join(rows)


def replace_table(readme: str) -> str:
    """``readme`` with its configuration table (from the header to the first blank line after
    it) replaced by ``render()``."""
    start = readme.index(HEADER)
    end = readme.index("\n\n", start) + 1
    return readme[:start] + render() + readme[end:]


def main(argv: list[str]) -> None:
    """``python -m service.config.table README``: rewrite that file's table."""
    (path,) = argv
    readme = Path(path)
    readme.write_text(replace_table(readme.read_text()))


if __name__ == "__main__":
    main(sys.argv[1:])

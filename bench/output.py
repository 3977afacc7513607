"""What a bench prints: progress lines, warnings on stderr, rich tables and their cells."""

from __future__ import annotations

import datetime as dt
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def console() -> Any:
    from rich.console import Console

    # Wide enough for every table when the output is a file or a pipe (make, CI, tee).
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def warn(message: str) -> None:
    """One line on stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def say(message: str) -> None:
    """A progress line."""
    console().print(f"[dim]{dt.datetime.now():%H:%M:%S}[/dim] {message}")


def print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], labels: int = 1
) -> None:
    """A rich table on stdout: the first ``labels`` columns left-aligned, numbers right."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index < labels else "right")
    for row in rows:
        table.add_row(*row)
    console().print(table)


def fmt(value: float | int | None, digits: int = 1) -> str:
    """A number for a table cell: thousands separators, ``-`` for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def statuses_cell(counts: dict[str, int]) -> str:
    """A table cell of answers by status (``503: 4, 500: 1``), ``0`` when there were none."""
    return ", ".join(f"{status}: {n}" for status, n in counts.items()) or "0"

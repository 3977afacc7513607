"""Environment variables as the settings declare them: a name, a parser, a default and a
one-line meaning, read with one clear error that names the variable.

A parser takes the variable's text (stripped, never empty: an unset or blank variable takes
its default) and returns the value or raises ``ValueError`` with a sentence that says why;
``Variable.read`` turns that into a ``ConfigError`` naming the variable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Parser = Callable[[str], T]

# What a limit that may be switched off takes to say "no limit".
NO_LIMIT = ("never", "none", "off")
# The metadata key under which a dataclass field keeps the variable(s) it is read from.
VARIABLE = "variable"
VARIABLES = "variables"

_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001))


class ConfigError(ValueError):
    """A variable of the environment holds a value the service cannot use."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True)
class Variable(Generic[T]):
    """One environment variable: its name, its parser, its default and what it means.

    ``shown`` is how the README's table states the default (Markdown) when the value alone does
    not say it well (a default that depends on other settings, say); empty: the value."""

    name: str
    default: T
    parse: Parser[T]
    meaning: str
    shown: str = ""
    strip: bool = True  # False: the value is used exactly as the environment holds it

    def is_set(self, env: Mapping[str, str]) -> bool:
        """Whether the environment gives this variable a value (not unset, not blank)."""
        return bool(env.get(self.name, "").strip())

    def read(self, env: Mapping[str, str]) -> T:
        """The variable's value in ``env``, or its default when unset or blank."""
        raw = env.get(self.name, "")
        if not raw.strip():
            return self.default
        try:
            return self.parse(raw.strip() if self.strip else raw)
        except ConfigError:
            raise  # names its variable already
        except ValueError as exc:
            raise ConfigError(self.name, str(exc)) from None

    @property
    def default_text(self) -> str:
        """The default as the README states it (Markdown)."""
        return self.shown or show(self.default)


def setting(name: str, default: Any, parse: Parser[Any], meaning: str, *, shown: str = "") -> Any:
    """A dataclass field read from the variable ``name`` (see ``read_declared``); its type is
    the field's annotation, which the parser's values and the default must be."""
    variable = Variable(name, default, parse, meaning, shown)
    return dataclasses.field(default=default, metadata={VARIABLE: variable})


def declared(cls: type) -> dict[str, Variable[Any]]:
    """The fields of the settings class ``cls`` that one variable each fills, by field name."""
    return {f.name: f.metadata[VARIABLE] for f in dataclasses.fields(cls) if VARIABLE in f.metadata}


def declared_variable(cls: type, name: str) -> Variable[Any]:
    """The variable that fills the field ``name`` of the settings class ``cls``."""
    variable: Variable[Any] = _metadata(cls, name)[VARIABLE]
    return variable


def declared_variables(cls: type, name: str) -> tuple[Variable[Any], ...]:
    """The variables that together fill the field ``name`` of the settings class ``cls``."""
    variables: tuple[Variable[Any], ...] = _metadata(cls, name)[VARIABLES]
    return variables


def _metadata(cls: type, name: str) -> Mapping[str, Any]:
    return next(f.metadata for f in dataclasses.fields(cls) if f.name == name)


def read_declared(cls: type, env: Mapping[str, str]) -> dict[str, Any]:
    """The value of every field of ``cls`` that one variable fills, as ``env`` gives it."""
    return {name: variable.read(env) for name, variable in declared(cls).items()}


def show(value: object) -> str:
    """A default as the README states it (Markdown): durations in their largest whole unit."""
    if value is None or value in ("", ()):
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"`{format_duration(value)}`"
    return f"`{value}`"


def format_duration(seconds: float) -> str:
    """``86400`` -> ``1d``, ``0.25`` -> ``250ms``: the largest unit that divides it."""
    for suffix, scale in _UNITS:
        count = seconds / scale
        if count >= 1 and count == int(count):
            return f"{int(count)}{suffix}"
    return f"{seconds:g}s"


def parse_duration(text: str) -> float:
    """Parse ``90``, ``1.5s``, ``250ms``, ``10m``, ``6h`` or ``7d`` into seconds."""
    raw = text.strip().lower()
    # "ms" before "m" and "s": the longest suffix that fits.
    for suffix, unit in sorted(_UNITS, key=lambda unit: -len(unit[0])):
        if raw.endswith(suffix):
            number, scale = raw[: -len(suffix)], unit
            break
    else:
        number, scale = raw, 1.0
    try:
        seconds = float(number) * scale
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 10m, 7d)") from None
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"must not be negative: {text!r}")
    return seconds


# -- parsers ----------------------------------------------------------------------------------


def text(raw: str) -> str:
    """The value as given."""
    return raw


def integer(low: int, high: int) -> Parser[int]:
    """An integer from ``low`` to ``high``."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def optional_integer(low: int, high: int) -> Parser[int | None]:
    """An integer from ``low`` to ``high``, or None (no limit) for ``never``."""
    bounded = integer(low, high)
    return lambda raw: None if raw.lower() in NO_LIMIT else bounded(raw)


def duration(low: float = 0.0) -> Parser[float]:
    """A duration of at least ``low`` seconds."""

    def parse(raw: str) -> float:
        value = parse_duration(raw)
        if value < low:
            raise ValueError(f"must be at least {low:g}s, got {raw!r}")
        return value

    return parse


def optional_duration(low: float = 0.0) -> Parser[float | None]:
    """A duration, or None (no limit) for ``never``."""
    bounded = duration(low)
    return lambda raw: None if raw.lower() in NO_LIMIT else bounded(raw)


def choice(*choices: str, upper: bool = False) -> Parser[str]:
    """One of ``choices``, in any case (stored upper or lower case as they are written)."""

    def parse(raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def is_falsy(raw: str) -> bool:
    """``0``, ``false``, ``no``, ``off`` or blank."""
    return raw.strip().lower() in ("", *FALSE_WORDS)


def flag(raw: str) -> bool:
    """``1``, ``true``, ``yes``, ``on`` or their opposites, in any case; nothing else."""
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"takes one of {', '.join(TRUE_WORDS + FALSE_WORDS)}, got {raw!r}")


def comma_list(check: Callable[[str], None] | None = None) -> Parser[tuple[str, ...]]:
    """Comma-separated items, blanks dropped, repeats kept once; ``check`` vets each one."""

    def parse(raw: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
        if check is not None:
            for item in items:
                check(item)
        return items

    return parse

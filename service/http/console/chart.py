"""The overview's chart of the last hour, as SVG shapes the template draws: a bar per minute
of events delivered, a line of those accepted, and a line of the longest lag, each scaled to
its own largest value."""

from __future__ import annotations

from dataclasses import dataclass

from service.store.delivery_history import Minute

__all__ = ["Chart", "draw"]

WIDTH, HEIGHT = 720, 180
TOP, BOTTOM = 12, 20  # room above the largest bar, and for the time axis below


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # what a pointer's tooltip says


@dataclass(frozen=True)
class Chart:
    """Shapes in a ``WIDTH`` x ``HEIGHT`` box, and the largest values they are scaled to."""

    bars: list[Bar]
    accepted_points: str  # an SVG polyline's points
    lag_points: str
    lag_dots: list[tuple[float, float]]  # the same points, each marked (one alone draws no line)
    most_per_minute: int
    longest_lag_ms: int
    width: int = WIDTH
    height: int = HEIGHT
    baseline: float = HEIGHT - BOTTOM


def _y(value: float, top: float) -> float:
    """Where ``value`` of a scale up to ``top`` falls, 0 on the baseline."""
    usable = HEIGHT - TOP - BOTTOM
    return HEIGHT - BOTTOM - (value / top) * usable if top else HEIGHT - BOTTOM


def draw(minutes: list[Minute]) -> Chart:
    """The chart of ``minutes`` (oldest first)."""
    count = max(1, len(minutes))
    step = WIDTH / count
    most = max([m.delivered for m in minutes] + [m.accepted for m in minutes] + [0])
    longest = max([m.max_lag or 0 for m in minutes] + [0])
    bars, accepted, lags, dots = [], [], [], []
    for n, minute in enumerate(minutes):
        x = n * step
        y = _y(minute.delivered, most)
        lag = "" if minute.max_lag is None else f", longest lag {minute.max_lag / 1000:.1f}s"
        label = f"{minute.delivered} delivered, {minute.accepted} accepted{lag}"
        bars.append(Bar(x + 1, y, max(1.0, step - 2), HEIGHT - BOTTOM - y, label))
        middle = x + step / 2
        accepted.append(f"{middle:.1f},{_y(minute.accepted, most):.1f}")
        if minute.max_lag is not None:
            dot = (round(middle, 1), round(_y(minute.max_lag, longest), 1))
            dots.append(dot)
            lags.append(f"{dot[0]},{dot[1]}")
    return Chart(bars, " ".join(accepted), " ".join(lags), dots, most, longest)

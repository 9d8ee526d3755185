"""A ModelMonitor's trends, window by window, as small server-rendered SVG line charts.

The figures are the status's (`status.windows`: one `WindowSummary` per window kept, the last
one the latest window's), parsed with the API's own model, so the page draws what the
operator recorded. This module computes each chart's geometry (positions, ticks, labels); the
template (`_macros.html`, `chart`) writes the SVG, escaping every name that comes from the
resource. No script: each point carries its exact value in a `<title>` (the browser's
tooltip), and a point's label shows it to three significant figures.

The charts follow the monitor report's trends (jobs/fairpilot_jobs/reports/monitor_report.py,
drawn there by matplotlib, which the operator's image does not carry): drift (largest feature
PSI and prediction PSI against the PSI threshold; how many features drifted), each fairness
measure with one line per sensitive feature, and the model's score on labelled rows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from fairpilot.api.monitor import MonitorThresholds, WindowSummary

# The SVG's size in user units (it scales to the page's width) and the plot's margins: room
# for the y tick labels on the left, the window numbers and the legend below.
WIDTH, HEIGHT = 560.0, 220.0
LEFT, RIGHT, TOP, BOTTOM = 58.0, 14.0, 16.0, 62.0
# Colour-blind-safe (Okabe-Ito), as the reports' palette.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442")
# A value label's height and its distance from its point, in user units.
LABEL_HEIGHT, LABEL_GAP = 12.0, 8.0
# Above this many windows a point's value is its tooltip only (its labels would overlap).
LABELLED_WINDOWS = 15
# At most this many window numbers on the x axis.
X_TICKS = 20


def exact(value: float | int) -> str:
    """A number as the status holds it: Python's shortest round-trip text, no rounding."""
    return repr(value) if isinstance(value, float) else str(value)


def short(value: float | int) -> str:
    """A number in three significant figures, for a label on the chart."""
    return str(value) if isinstance(value, int) else f"{value:.3g}"


@dataclass(frozen=True)
class Point:
    window: int
    value: float | int
    x: float
    y: float
    label_y: float  # where its label goes: above the point, below where another's is close
    # The first window's label starts at its point and the last one's ends there: centred,
    # they would run into the y axis's numbers or out of the chart.
    anchor: str = "middle"

    @property
    def label(self) -> str:
        return short(self.value)

    @property
    def exact(self) -> str:
        return exact(self.value)


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    points: list[Point]
    # One polyline per run of windows with a value: a window without one leaves a gap.
    segments: list[str]


@dataclass(frozen=True)
class Reference:
    """A dashed horizontal line: a threshold."""

    label: str
    value: float
    y: float


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    ylabel: str
    series: list[Series]
    references: list[Reference] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    labelled: bool = True
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    right: float = WIDTH - RIGHT
    top: float = TOP
    bottom: float = HEIGHT - BOTTOM

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)

    @property
    def legend_y(self) -> float:
        return self.bottom + 50


def _nice_step(span: float, count: int) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `count` ticks over `span`."""
    raw = span / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _y_range(values: Sequence[float]) -> tuple[float, float]:
    """The data's range with a margin; not from zero, so that a small change shows."""
    low, high = min(values), max(values)
    if math.isclose(low, high):
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.12
    return low - pad, high + pad


def _labels_below(at: Mapping[tuple[str, int], float]) -> set[tuple[str, int]]:
    """The points (series, window) whose label goes below them: of two points of a window
    whose labels would overlap above them, the lower one's."""
    below: set[tuple[str, int]] = set()
    for window in {w for _, w in at}:
        column = sorted((y, name) for (name, w), y in at.items() if w == window)
        for (upper, _), (lower, name) in itertools.pairwise(column):
            if lower - upper < LABEL_HEIGHT:
                below.add((name, window))
    return below


def line_chart(
    title: str,
    ylabel: str,
    windows: Sequence[int],
    series: Mapping[str, Sequence[float | int | None]],
    references: Sequence[tuple[str, float]] = (),
) -> Chart:
    """One line per series over the windows (None: no value, a gap), a marker and a label on
    every point, dashed lines for the references."""
    drawn = [v for values in series.values() for v in values if v is not None]
    lines = [(label, value) for label, value in references if math.isfinite(value)]
    if not windows or not drawn:
        return Chart(title, ylabel, [Series(name, PALETTE[0], [], []) for name in series])
    low, high = _y_range([*drawn, *(value for _, value in lines)])
    first, last = min(windows), max(windows)

    def x_of(window: int) -> float:
        if first == last:
            return (LEFT + WIDTH - RIGHT) / 2
        return LEFT + (window - first) / (last - first) * (WIDTH - RIGHT - LEFT)

    def y_of(value: float) -> float:
        return (HEIGHT - BOTTOM) - (value - low) / (high - low) * (HEIGHT - BOTTOM - TOP)

    at = {
        (name, window): round(y_of(value), 2)
        for name, values in series.items()
        for window, value in zip(windows, values, strict=True)
        if value is not None and math.isfinite(value)
    }
    below = _labels_below(at)
    shown: list[Series] = []
    for index, (name, values) in enumerate(series.items()):
        points: list[Point] = []
        segments: list[str] = []
        run: list[str] = []
        for window, value in zip(windows, values, strict=True):
            if value is None or (name, window) not in at:
                if run:
                    segments.append(" ".join(run))
                run = []
                continue
            y = at[name, window]
            label_y = y + LABEL_GAP + 8 if (name, window) in below else y - LABEL_GAP
            anchor = "middle"
            if first != last:
                anchor = "start" if window == first else "end" if window == last else "middle"
            point = Point(window, value, round(x_of(window), 2), y, round(label_y, 2), anchor)
            points.append(point)
            run.append(f"{point.x},{point.y}")
        if run:
            segments.append(" ".join(run))
        shown.append(Series(name, PALETTE[index % len(PALETTE)], points, segments))
    step = _nice_step(high - low, 4)
    y_ticks = [
        Tick(round(y_of(k * step), 2), f"{k * step:.{max(0, -math.floor(math.log10(step)))}f}")
        for k in range(math.ceil(low / step), math.floor(high / step) + 1)
    ]
    every = max(1, math.ceil(len(windows) / X_TICKS))
    x_ticks = [Tick(round(x_of(w), 2), str(w)) for w in list(windows)[::every]]
    return Chart(
        title,
        ylabel,
        shown,
        [Reference(label, value, round(y_of(value), 2)) for label, value in lines],
        x_ticks,
        y_ticks,
        labelled=len(windows) <= LABELLED_WINDOWS,
    )


@dataclass(frozen=True)
class MonitorTrends:
    windows: list[WindowSummary]  # oldest first
    charts: list[Chart]
    skipped: int  # windows in the status that do not parse as a WindowSummary

    @property
    def last(self) -> WindowSummary | None:
        return self.windows[-1] if self.windows else None


def monitor_trends(
    spec: Mapping[str, Any], status: Mapping[str, Any], eval_metric: str | None = None
) -> MonitorTrends:
    """The monitor's windows and their charts, from its spec (thresholds) and status."""
    windows: list[WindowSummary] = []
    skipped = 0
    for raw in status.get("windows") or []:
        try:
            windows.append(WindowSummary.model_validate(raw))
        except ValidationError:
            skipped += 1  # written by another version; the others are still worth drawing
    windows.sort(key=lambda w: w.window)
    try:
        psi = MonitorThresholds.model_validate(spec.get("thresholds") or {}).psi
    except ValidationError:
        psi = MonitorThresholds().psi
    xs = [w.window for w in windows]
    charts = [
        line_chart(
            "Drift: largest feature PSI and prediction PSI",
            "PSI",
            xs,
            {
                "largest feature PSI": [w.max_psi for w in windows],
                "prediction PSI": [w.prediction_psi for w in windows],
            },
            [(f"PSI threshold {exact(psi)}", psi)],
        ),
        line_chart(
            "Features that drifted",
            "features",
            xs,
            {"features over the PSI threshold": [w.drifted_features for w in windows]},
        ),
    ]
    for title, measure in (
        ("Disparate impact per sensitive feature", "disparate_impact"),
        ("Statistical parity difference per sensitive feature", "statistical_parity_difference"),
    ):
        values: list[dict[str, float | None]] = [getattr(w, measure) for w in windows]
        features = list(dict.fromkeys(name for each in values for name in each))
        if features:
            per_feature = {name: [each.get(name) for each in values] for name in features}
            charts.append(line_chart(title, title.split(" per ")[0].lower(), xs, per_feature))
    metric = eval_metric or "score"
    scores = [w.score for w in windows]
    if any(score is not None for score in scores):
        charts.append(line_chart(f"{metric} on labelled rows", metric, xs, {metric: scores}))
    return MonitorTrends(windows, charts, skipped)

"""Charts as inline SVG strings, drawn with matplotlib, for self-contained HTML reports.

Every chart is a `matplotlib.figure.Figure` with its own Agg canvas: nothing here goes through
pyplot, switches the global backend or changes the global rcParams (styles are applied with
`rc_context`). The SVG that comes out has no XML prolog, no metadata and no id shared with any
other chart, so any number of charts can sit in one page. Text is drawn as paths, so a label
taken from user data can never become markup.
"""

from __future__ import annotations

import io
import math
import re
import sys
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from html import escape
from typing import Any, TypedDict

import matplotlib
import numpy as np
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import fontManager
from matplotlib.ticker import FuncFormatter, MaxNLocator

from fairpilot_jobs.reports.html import approx, format_value

__all__ = [
    "BASE_COLOUR",
    "GRID_COLOUR",
    "HIGHLIGHT_COLOUR",
    "LABEL_BOX",
    "MUTED_COLOUR",
    "PALETTE",
    "REFERENCE_COLOUR",
    "TEXT_COLOUR",
    "WIDTH",
    "bar_chart",
    "category_bars",
    "category_panels",
    "confusion_matrix_chart",
    "curve_chart",
    "distinct_labels",
    "dot_plot",
    "figure_to_svg",
    "finish",
    "frontier_chart",
    "grouped_bar_chart",
    "histogram",
    "histogram_panels",
    "line_chart",
    "new_figure",
    "short_label",
    "styled",
]

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
BASE_COLOUR = "#0072B2"  # blue
HIGHLIGHT_COLOUR = "#D55E00"  # vermillion: the pair blue/vermillion survives every CVD type
REFERENCE_COLOUR = "#3d4650"
TEXT_COLOUR = "#1f2328"
MUTED_COLOUR = "#57606a"
GRID_COLOUR = "#e4e8ec"

WIDTH = 8.0  # inches; 576 pt, about 770 CSS px: the report's figure width
MAX_LABEL = 42  # characters of a tick label before it is cut with an ellipsis

# Fonts with wide Unicode coverage, used as fallbacks where installed (matplotlib >= 3.6 falls
# back glyph by glyph); only installed ones are named, so matplotlib never warns about a family.
_FALLBACK_FONTS = (
    "Noto Sans",
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans Arabic",
    "Noto Sans Devanagari",
    "Droid Sans Fallback",
    "WenQuanYi Zen Hei",
)


def _font_families() -> list[str]:
    installed = {font.name for font in fontManager.ttflist}
    return ["DejaVu Sans", *(name for name in _FALLBACK_FONTS if name in installed), "sans-serif"]


_STYLE: dict[Any, Any] = {
    "font.family": _font_families(),
    "font.size": 9.5,
    "text.color": TEXT_COLOUR,
    "text.parse_math": False,  # "$50K-$100K" is a label, not TeX
    "text.usetex": False,
    "axes.titlesize": 11.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.titlepad": 12,
    "axes.titlecolor": TEXT_COLOUR,
    "axes.labelsize": 9.5,
    "axes.labelcolor": MUTED_COLOUR,
    "axes.edgecolor": "#8c959f",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.facecolor": "white",
    "axes.axisbelow": True,
    "axes.prop_cycle": cycler(color=PALETTE),
    "grid.color": GRID_COLOUR,
    "grid.linewidth": 0.8,
    "xtick.color": MUTED_COLOUR,
    "ytick.color": MUTED_COLOUR,
    "xtick.labelcolor": TEXT_COLOUR,
    "ytick.labelcolor": TEXT_COLOUR,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "figure.facecolor": "white",
    "figure.dpi": 100,
    "svg.fonttype": "path",
}

# Value labels stay readable where a reference line crosses them.
LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 0.6}
_GLYPH_WARNING = r"Glyph .* missing from font"
_STYLE_RULE = re.compile(r"<style[^>]*>\s*\*\s*\{([^}]*)\}\s*</style>")


@contextmanager
def styled() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_GLYPH_WARNING)
        with matplotlib.rc_context(_STYLE):
            yield


def new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def short_label(value: object, width: int = MAX_LABEL) -> str:
    text = " ".join(str(value).split())  # newlines and tabs would break the layout
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _number(value: object) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _thousands(value: float, _position: int | None = None) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def _accessible_name(fig: Figure) -> str:
    suptitle = fig.get_suptitle()
    if suptitle:
        return suptitle
    for ax in fig.axes:
        for loc in ("left", "center", "right"):
            title = ax.get_title(loc=loc)
            if title:
                return title
    return "chart"


def figure_to_svg(fig: Figure) -> str:
    """The figure as one inline `<svg>` element, then closes it.

    The XML prolog, doctype and RDF metadata go; every id (clip paths, glyphs, markers) and
    every reference to one gets a prefix unique to this call, so charts never clash in a page;
    matplotlib's global `*{...}` style rule is scoped to this SVG. Also takes figures drawn
    through pyplot (SHAP's plots): they are closed in pyplot too.
    """
    prefix = f"fp{uuid.uuid4().hex[:12]}"
    name = _accessible_name(fig)
    _tag_marks(fig)
    buffer = io.StringIO()
    try:
        with (
            warnings.catch_warnings(),
            matplotlib.rc_context({"svg.hashsalt": prefix, "svg.fonttype": "path"}),
        ):
            warnings.filterwarnings("ignore", message=_GLYPH_WARNING)
            fig.savefig(
                buffer,
                format="svg",
                bbox_inches="tight",
                pad_inches=0.1,
                facecolor="white",
                metadata={"Date": None, "Creator": None},
            )
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(fig)  # a no-op for figures pyplot does not manage
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    svg = re.sub(r'((?:xlink:)?href)="#([^"]+)"', rf'\1="#{prefix}-\2"', svg)
    svg = _STYLE_RULE.sub(rf'<style type="text/css">#{prefix} *{{\1}}</style>', svg)
    return svg.replace(
        "<svg ",
        f'<svg id="{prefix}" class="fp-chart" role="img" aria-label="{escape(name)}" ',
        1,
    ).strip()


MARK_ID = "mark"  # the SVG group of a drawn datum is `{chart id}-mark-{n}` (see `_tag_marks`)


def _tag_marks(fig: Figure) -> None:
    """Give every data artist (bars, lines, points, areas, images; not the axes, their
    background, spines or ticks) an SVG id `mark-N`, so that a browser test can tell a chart
    that draws something from an empty frame. Artists with an id of their own keep it."""
    count = 0
    for ax in fig.axes:
        artists: list[Any] = [*ax.patches, *ax.lines, *ax.collections, *ax.images]
        for artist in artists:
            if artist.get_gid() is None:
                count += 1
                artist.set_gid(f"{MARK_ID}-{count}")


def finish(ax: Axes, title: str) -> None:
    if title:  # aligned with the figure's left edge, above long tick labels too
        ax.figure.suptitle(
            short_label(title, 90),
            x=0.0,
            ha="left",
            fontsize=_STYLE["axes.titlesize"],
            fontweight=_STYLE["axes.titleweight"],
            color=TEXT_COLOUR,
        )
    ax.tick_params(length=3, width=0.8)


def _crowded(names: Sequence[str], width: float, limit: int) -> bool:
    """Whether horizontal tick labels would touch: about 0.075 inch a character at 9 pt."""
    longest = max(len(short_label(name, limit)) for name in names)
    return longest * 0.075 > 0.85 * (width - 1.2) / len(names)


def _no_data(ax: Axes, message: str = "no data") -> None:
    ax.text(
        0.5,
        0.5,
        message,
        transform=ax.transAxes,
        ha="center",
        va="center",
        color=MUTED_COLOUR,
        fontsize=10,
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _limits(values: Sequence[float], reference: float | None) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if reference is not None and math.isfinite(reference):
        finite.append(reference)
    low, high = min([0.0, *finite]), max([0.0, *finite])
    if low == high:  # nothing but zeros (or no data)
        return 0.0, 1.0
    span = (high - low) or 1.0
    # Room for the value labels at the end of each bar.
    return low - (0.16 * span if low < 0 else 0.0), high + (0.16 * span if high > 0 else 0.0)


def _format_values(values: Sequence[float], value_format: str | None) -> list[str]:
    """Bar labels: counts and other whole numbers exactly ("99,999"), other values to 3
    significant digits; `value_format` (a str.format pattern) overrides that. A label that is
    not exactly its value is marked as rounded ("≈0.857")."""
    finite = [v for v in values if math.isfinite(v)]
    if value_format is None:
        whole = all(float(v).is_integer() for v in finite)
        value_format = "{:,.0f}" if whole else "{:.3g}"
    labels = []
    for value in values:
        if not math.isfinite(value):
            labels.append("n/a")
            continue
        try:
            text = value_format.format(value)
        except (ValueError, TypeError):
            text = f"{value:.3g}"
        labels.append(approx(value, text))
    return labels


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str = "",
    xlabel: str = "",
    reference: float | None = None,
    reference_label: str | None = None,
    highlight: Sequence[str] = (),
    horizontal: bool = True,
    value_format: str | None = None,
) -> str:
    """One bar per label, its value written at its end.

    Bars whose label is in `highlight` are vermillion, the rest blue; `reference` draws a
    dashed line (named in a legend when `reference_label` is given). Horizontal charts grow
    in height with the number of bars; a vertical chart of more than 25 bars is drawn
    horizontally, where the labels stay readable. Value labels: see `_format_values`.
    """
    names = [str(label) for label in labels]
    numbers = [_number(value) for value in values]
    if len(names) != len(numbers):
        raise ValueError(f"{len(names)} labels but {len(numbers)} values")
    marked = {str(h) for h in highlight}
    colours = [HIGHLIGHT_COLOUR if name in marked else BASE_COLOUR for name in names]
    heights = [v if math.isfinite(v) else 0.0 for v in numbers]
    texts = _format_values(numbers, value_format)
    horizontal = horizontal or len(names) > 25
    with styled():
        if horizontal:
            fig, ax = new_figure(WIDTH, max(1.9, 0.3 * len(names) + 1.1))
        else:
            fig, ax = new_figure(min(11.0, max(4.8, 0.6 * len(names) + 1.8)), 3.8)
        if not names:
            _no_data(ax)
        elif horizontal:
            positions = np.arange(len(names))[::-1]
            bars = ax.barh(positions, heights, height=0.68, color=colours)
            ax.set_yticks(positions, [short_label(name) for name in names])
            ax.tick_params(axis="y", length=0)
            ax.bar_label(bars, texts, padding=3, fontsize=8.5, color=TEXT_COLOUR, bbox=LABEL_BOX)
            ax.set_xlim(*_limits(numbers, reference))
            ax.set_ylim(-0.6, len(names) - 0.4)
            ax.xaxis.grid(True)
            ax.spines["left"].set_color("#8c959f")
            if reference is not None:
                ax.axvline(
                    reference, color=REFERENCE_COLOUR, ls=(0, (4, 3)), lw=1.2, label=reference_label
                )
            ax.set_xlabel(xlabel)
        else:
            positions = np.arange(len(names))
            bars = ax.bar(positions, heights, width=0.68, color=colours)
            crowded = _crowded(names, fig.get_figwidth(), 24)
            ax.set_xticks(
                positions,
                [short_label(name, 24) for name in names],
                rotation=35 if crowded else 0,
                ha="right" if crowded else "center",
                rotation_mode="anchor",
            )
            ax.tick_params(axis="x", length=0)
            ax.bar_label(bars, texts, padding=2, fontsize=8.5, color=TEXT_COLOUR, bbox=LABEL_BOX)
            ax.set_ylim(*_limits(numbers, reference))
            ax.yaxis.grid(True)
            if reference is not None:
                ax.axhline(
                    reference, color=REFERENCE_COLOUR, ls=(0, (4, 3)), lw=1.2, label=reference_label
                )
            ax.set_ylabel(xlabel)
        if names and all(float(v).is_integer() for v in numbers if math.isfinite(v)):
            axis = ax.xaxis if horizontal else ax.yaxis  # counts: 1,000 rather than 1000
            axis.set_major_formatter(FuncFormatter(_thousands))
        if names and reference is not None and reference_label:
            ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), borderaxespad=0.2)
        finish(ax, title)
        return figure_to_svg(fig)


def grouped_bar_chart(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
    ylabel: str = "",
    reference: float | None = None,
) -> str:
    """Bars side by side per category, one colour per series; None leaves a gap."""
    names = [str(c) for c in categories]
    data = {str(k): [_number(v) for v in values] for k, values in series.items()}
    for key, values in data.items():
        if len(values) != len(names):
            raise ValueError(f"series {key!r} has {len(values)} values for {len(names)} categories")
    count = max(1, len(data))
    with styled():
        width = min(11.0, max(4.8, 0.42 * len(names) * count + 2.2))
        fig, ax = new_figure(width, 3.9)
        if not names or not data:
            _no_data(ax)
        else:
            bar_width = 0.8 / count
            x = np.arange(len(names))
            labelled = len(names) * count <= 18
            for i, (key, values) in enumerate(data.items()):
                heights = [v if math.isfinite(v) else np.nan for v in values]
                bars = ax.bar(
                    x + (i - (count - 1) / 2) * bar_width,
                    heights,
                    bar_width * 0.92,
                    label=short_label(key, 40),
                    color=PALETTE[i % len(PALETTE)],
                )
                if labelled:
                    ax.bar_label(
                        bars,
                        ["" if text == "n/a" else text for text in _format_values(values, None)],
                        padding=2,
                        fontsize=7.5,
                        color=MUTED_COLOUR,
                    )
            if reference is not None:
                ax.axhline(reference, color=REFERENCE_COLOUR, ls=(0, (4, 3)), lw=1.2)
            crowded = _crowded(names, width, 24)
            ax.set_xticks(
                x,
                [short_label(n, 24) for n in names],
                rotation=30 if crowded else 0,
                ha="right" if crowded else "center",
                rotation_mode="anchor",
            )
            ax.tick_params(axis="x", length=0)
            ax.set_ylim(*_limits([v for vs in data.values() for v in vs], reference))
            ax.yaxis.grid(True)
            ax.set_ylabel(ylabel)
            ax.legend(
                loc="lower left",
                bbox_to_anchor=(0.0, 1.02),
                borderaxespad=0.0,
                ncols=min(len(data), 3),
            )
        finish(ax, title)
        return figure_to_svg(fig)


def histogram(values: Iterable[float], *, bins: int = 30, title: str = "", xlabel: str = "") -> str:
    """Distribution of the finite values, with the median marked; integers get one bar each
    when they span fewer values than `bins`."""
    data = np.asarray([_number(v) for v in values], dtype="float64")
    data = data[np.isfinite(data)]
    with styled():
        fig, ax = new_figure(WIDTH, 3.2)
        if data.size == 0:
            _no_data(ax, "no finite values")
        else:
            low, high = float(data.min()), float(data.max())
            edges: int | list[float] = max(1, int(bins))
            if np.all(np.mod(data, 1) == 0) and high - low < bins:
                edges = np.arange(low - 0.5, high + 1.5).tolist()
            ax.hist(data, bins=edges, color=BASE_COLOUR, edgecolor="white", linewidth=0.6)
            median = float(np.median(data))
            ax.axvline(
                median,
                color=HIGHLIGHT_COLOUR,
                ls=(0, (4, 3)),
                lw=1.4,
                label=f"median {format_value(median)}",
            )
            ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), borderaxespad=0.2)
            ax.yaxis.grid(True)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
            ax.set_ylabel("rows")
            ax.set_xlabel(xlabel)
        finish(ax, title)
        return figure_to_svg(fig)


def category_bars(counts: Mapping[str, int], *, title: str = "", top: int = 15) -> str:
    """The `top` most frequent categories as horizontal bars, largest first."""
    items = sorted(counts.items(), key=lambda item: -_number(item[1]))
    shown = items[: max(1, top)]
    label = "rows" if len(items) <= len(shown) else f"rows (top {len(shown)} of {len(items):,})"
    return bar_chart([str(k) for k, _ in shown], [v for _, v in shown], title=title, xlabel=label)


class _MarkerStyle(TypedDict):
    color: str
    marker: str
    markersize: float


# The styles of `frontier_chart`'s marked points, in order: the first is the one chosen.
_MARKED_STYLES: tuple[_MarkerStyle, ...] = (
    {"color": HIGHLIGHT_COLOUR, "marker": "D", "markersize": 8.5},
    {"color": TEXT_COLOUR, "marker": "s", "markersize": 7.5},
    {"color": PALETTE[2], "marker": "^", "markersize": 8.5},
    {"color": PALETTE[3], "marker": "v", "markersize": 8.5},
)
_EXCLUDED = "#eef0f3"  # the side of a bound that fails it


def frontier_chart(
    x: Sequence[float | None],
    y: Sequence[float | None],
    *,
    optimal: Sequence[bool] = (),
    marked: Mapping[str, tuple[float | None, float | None]] | None = None,
    margins: Mapping[str, float | None] | None = None,
    margin_label: str = "margin of sampling error",
    bound_min: float | None = None,
    bound_max: float | None = None,
    bound_label: str | None = None,
    points_label: str = "operating points",
    front_label: str = "Pareto front",
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
) -> str:
    """A trade-off between two measures: one small point per option (x, y), the options that
    are `optimal` (the Pareto front) joined in order of x.

    `marked` (label: (x, y)) are drawn large and named in the legend: the first in vermillion
    (the option chosen), the second in black (a baseline), then other colours; `margins`
    (label: x) draws a whisker from a marked point to that x, e.g. the cautious end of its
    sampling error. `bound_min` / `bound_max` draw dashed vertical lines and shade the x
    outside them: what a constraint rules out. Points without a finite x and y are not
    drawn. In the SVG the small points are the group `frontier-points` (one `<use>` each),
    the front `frontier-front`, the marked ones `frontier-marked-<i>`.
    """
    xs = [_number(v) for v in x]
    ys = [_number(v) for v in y]
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} x values but {len(ys)} y values")
    best = list(optimal) or [False] * len(xs)
    if len(best) != len(xs):
        raise ValueError(f"{len(best)} optimal flags for {len(xs)} points")
    marks = {str(k): (_number(a), _number(b)) for k, (a, b) in (marked or {}).items()}
    whiskers = {str(k): _number(v) for k, v in (margins or {}).items() if str(k) in marks}
    drawn = [(a, b, o) for a, b, o in zip(xs, ys, best, strict=True) if _finite(a, b)]
    shown = {k: p for k, p in marks.items() if _finite(*p)}
    with styled():
        fig, ax = new_figure(WIDTH, 4.4)
        if not drawn and not shown:
            _no_data(ax)
            finish(ax, title)
            return figure_to_svg(fig)
        all_x = [a for a, _, _ in drawn] + [p[0] for p in shown.values()]
        all_x += [v for v in whiskers.values() if math.isfinite(v)]
        all_x += [b for b in (bound_min, bound_max) if b is not None and math.isfinite(b)]
        all_y = [b for _, b, _ in drawn] + [p[1] for p in shown.values()]
        left, right = _padded(all_x, 0.06)
        bottom, top = _padded(all_y, 0.08)
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
        bounds = [b for b in (bound_min, bound_max) if b is not None and math.isfinite(b)]
        if bound_min is not None and math.isfinite(bound_min) and bound_min > left:
            ax.axvspan(left, bound_min, color=_EXCLUDED, lw=0, zorder=0)
        if bound_max is not None and math.isfinite(bound_max) and bound_max < right:
            ax.axvspan(bound_max, right, color=_EXCLUDED, lw=0, zorder=0)
        if drawn:
            ax.plot(
                [a for a, _, _ in drawn],
                [b for _, b, _ in drawn],
                ls="none",
                marker="o",
                markersize=4.5,
                color=BASE_COLOUR,
                alpha=0.45,
                markeredgewidth=0,
                label=points_label,
                gid="frontier-points",
                zorder=2,
            )
        front = sorted((a, b) for a, b, o in drawn if o)
        if front:
            ax.plot(
                [a for a, _ in front],
                [b for _, b in front],
                color=BASE_COLOUR,
                lw=1.6,
                marker="o",
                markersize=5,
                label=front_label,
                gid="frontier-front",
                zorder=3,
            )
        # In the legend's order: each marked point, then its whisker; the bound last.
        for i, (label, (a, b)) in enumerate(shown.items()):
            style = _MARKED_STYLES[i % len(_MARKED_STYLES)]
            ax.plot(
                [a],
                [b],
                ls="none",
                markeredgecolor="white",
                markeredgewidth=1.0,
                label=short_label(label, 70),
                gid=f"frontier-marked-{i}",
                zorder=5,
                **style,
            )
            end = whiskers.get(label)
            if end is not None and math.isfinite(end):
                ax.plot(
                    [a, end],
                    [b, b],
                    color=style["color"],
                    lw=1.4,
                    marker="|",
                    markevery=[1],
                    markersize=9,
                    markeredgewidth=1.6,
                    label=margin_label,
                    zorder=4,
                )
        for i, bound in enumerate(bounds):
            ax.axvline(
                bound,
                color=REFERENCE_COLOUR,
                ls=(0, (4, 3)),
                lw=1.2,
                label=(bound_label or "bound") if i == 0 else None,
                zorder=1,
            )
        ax.grid(True)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.02), borderaxespad=0.0, ncols=2)
        finish(ax, title)
        return figure_to_svg(fig)


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _padded(values: Sequence[float], share: float) -> tuple[float, float]:
    """The range of the finite `values`, widened by `share` of it on each side."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    span = high - low or max(abs(high), 1.0) * 0.1
    return low - share * span, high + share * span


class Reference(TypedDict, total=False):
    """A horizontal line of `line_chart`: a threshold or a baseline."""

    label: str  # named in the legend
    value: float
    series: str  # drawn in that series' colour (else the reference colour)


def line_chart(
    x: Sequence[float | int],
    series: Mapping[str, Sequence[float | None]],
    *,
    references: Sequence[Reference] = (),
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    highlight_last: bool = True,
) -> str:
    """A trend: one line per series over `x` (e.g. window numbers), a marker on every point,
    None leaving a gap; `references` are dashed horizontal lines (thresholds, baselines),
    named in the legend. The y axis spans the data and the references with a margin, not
    from zero, so that a small change shows; whole x values get whole ticks. With
    `highlight_last`, the last point of each series is drawn larger: the newest window."""
    xs = [_number(v) for v in x]
    data = {str(k): [_number(v) for v in values] for k, values in series.items()}
    for key, values in data.items():
        if len(values) != len(xs):
            raise ValueError(f"series {key!r} has {len(values)} values for {len(xs)} points")
    lines = [r for r in references if math.isfinite(_number(r.get("value")))]
    colours = {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(data)}
    drawn = [v for values in data.values() for v in values if math.isfinite(v)]
    with styled():
        fig, ax = new_figure(WIDTH, 3.4)
        if not xs or not drawn:
            _no_data(ax)
            finish(ax, title)
            return figure_to_svg(fig)
        for key, values in data.items():
            ax.plot(
                xs,
                values,
                color=colours[key],
                lw=1.8,
                marker="o",
                markersize=4.5,
                label=short_label(key, 40),
                zorder=3,
            )
            last = [i for i, v in enumerate(values) if math.isfinite(v)]
            if highlight_last and last:
                ax.plot(
                    [xs[last[-1]]],
                    [values[last[-1]]],
                    ls="none",
                    marker="o",
                    markersize=8,
                    color=colours[key],
                    markeredgecolor="white",
                    markeredgewidth=1.2,
                    zorder=4,
                )
        dashes = [(0, (4, 3)), (0, (1, 2)), (0, (6, 2, 1, 2))]
        for i, line in enumerate(lines):
            owner = line.get("series")
            colour = colours.get(owner, REFERENCE_COLOUR) if owner else REFERENCE_COLOUR
            ax.axhline(
                _number(line.get("value")),
                color=colour,
                ls=dashes[i % len(dashes)] if not owner else (0, (4, 3)),
                lw=1.2,
                label=short_label(line.get("label", "reference"), 60),
                zorder=2,
            )
        bottom, top = _padded(drawn + [_number(r.get("value")) for r in lines], 0.12)
        ax.set_ylim(bottom, top)
        finite_x = [v for v in xs if math.isfinite(v)]
        low, high = min(finite_x), max(finite_x)
        margin = 0.5 if low == high else 0.04 * (high - low)
        ax.set_xlim(low - margin, high + margin)
        if all(float(v).is_integer() for v in finite_x):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(
            loc="lower left",
            bbox_to_anchor=(0.0, 1.02),
            borderaxespad=0.0,
            ncols=min(3, len(data) + len(lines)),
        )
        finish(ax, title)
        return figure_to_svg(fig)


def distinct_labels(values: Sequence[float], least: int = 4, most: int = 8) -> list[str]:
    """Value labels to the fewest significant digits (at least `least`, as in tables) at
    which values that differ read differently ("0.9281" and "0.9279", but "0.92811" and
    "0.92809"), each marked "≈" where rounded."""
    numbers = [_number(v) for v in values]
    finite = sorted({v for v in numbers if math.isfinite(v)})
    digits = least
    while digits < most:
        texts = {format_value(v, rounded=True, digits=digits) for v in finite}
        if len(texts) == len(finite):
            break
        digits += 1
    return [
        approx(v, format_value(v, rounded=True, digits=digits)) if math.isfinite(v) else "n/a"
        for v in numbers
    ]


def dot_plot(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str = "",
    xlabel: str = "",
    highlight: Sequence[str] = (),
) -> str:
    """One dot per label on an axis fitted to the values (not from zero), so that 0.934 and
    0.928 sit visibly apart; a dot plot has no bar whose length would suggest a zero. Each dot
    has its value beside it, to the digits that tell the values apart (`distinct_labels`);
    the axis label says where the axis starts."""
    names = [str(label) for label in labels]
    numbers = [_number(value) for value in values]
    if len(names) != len(numbers):
        raise ValueError(f"{len(names)} labels but {len(numbers)} values")
    marked = {str(h) for h in highlight}
    texts = distinct_labels(numbers)
    with styled():
        fig, ax = new_figure(WIDTH, max(1.9, 0.3 * len(names) + 1.2))
        finite = [v for v in numbers if math.isfinite(v)]
        if not finite:
            _no_data(ax)
        else:
            low, high = _padded(finite, 0.08)
            high += 0.14 * (high - low)  # room for the value labels right of the dots
            positions = np.arange(len(names))[::-1]
            for y, name, value, text in zip(positions, names, numbers, texts, strict=True):
                if not math.isfinite(value):
                    continue
                colour = HIGHLIGHT_COLOUR if name in marked else BASE_COLOUR
                ax.plot([low, value], [y, y], color=GRID_COLOUR, lw=1.2, zorder=1)
                ax.plot([value], [y], ls="none", marker="o", markersize=7, color=colour, zorder=3)
                ax.annotate(
                    text,
                    (value, y),
                    xytext=(7, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8.5,
                    color=TEXT_COLOUR,
                )
            ax.set_yticks(positions, [short_label(name) for name in names])
            ax.tick_params(axis="y", length=0)
            ax.set_ylim(-0.6, len(names) - 0.4)
            ax.set_xlim(low, high)
            ax.xaxis.grid(True)
            start = approx(low, format_value(low, rounded=True))
            note = f"axis starts at {start}, not 0: it shows the differences"
            ax.set_xlabel(f"{xlabel} ({note})" if xlabel else note)
        finish(ax, title)
        return figure_to_svg(fig)


def confusion_matrix_chart(
    counts: Sequence[Sequence[int]], class_names: Sequence[str], *, title: str = ""
) -> str:
    """A square matrix of counts, rows the actual class and columns the predicted one, each
    cell with its count exactly and its share of the row (the class's rate)."""
    matrix = np.asarray(counts, dtype="float64")
    names = [short_label(n, 24) for n in class_names]
    with styled():
        fig, ax = new_figure(4.6, 3.8)
        if matrix.size == 0:
            _no_data(ax)
        else:
            totals = matrix.sum(axis=1, keepdims=True)
            shares = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
            ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
            for (row, column), value in np.ndenumerate(matrix):
                share = shares[row, column]
                ax.text(
                    column,
                    row,
                    f"{int(value):,}\n{approx(share, f'{share:.1%}')} of row",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if share > 0.6 else TEXT_COLOUR,
                )
            ticks = np.arange(len(names))
            ax.set_xticks(ticks, names)
            ax.set_yticks(ticks, names)
            ax.set_xlabel("predicted")
            ax.set_ylabel("actual")
            ax.tick_params(length=0)
            for spine in ax.spines.values():
                spine.set_visible(False)
        finish(ax, title)
        return figure_to_svg(fig)


def curve_chart(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    diagonal: str | None = None,
    baseline: tuple[float, str] | None = None,
    markers: bool = False,
) -> str:
    """Curves on the unit square (ROC, precision-recall, reliability): one line per entry of
    `curves`, each (x values, y values); `diagonal` names a dashed y = x line (chance, perfect
    calibration), `baseline` a dashed horizontal line (value, name)."""
    with styled():
        fig, ax = new_figure(5.6, 4.4)
        drawn = False
        for i, (name, (xs, ys)) in enumerate(curves.items()):
            if len(xs) != len(ys):
                raise ValueError(f"curve {name!r} has {len(xs)} x and {len(ys)} y values")
            if not len(xs):
                continue
            drawn = True
            ax.plot(
                [_number(v) for v in xs],
                [_number(v) for v in ys],
                color=PALETTE[i % len(PALETTE)],
                lw=1.8,
                marker="o" if markers else None,
                markersize=4.5,
                label=short_label(name, 60),
                zorder=3,
            )
        if not drawn:
            _no_data(ax)
            finish(ax, title)
            return figure_to_svg(fig)
        if diagonal:
            ax.plot([0, 1], [0, 1], color=REFERENCE_COLOUR, ls=(0, (4, 3)), lw=1.1, label=diagonal)
        if baseline is not None:
            ax.axhline(
                baseline[0], color=REFERENCE_COLOUR, ls=(0, (1, 2)), lw=1.2, label=baseline[1]
            )
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.02)
        ax.set_aspect("equal")
        ax.grid(True)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.02), borderaxespad=0.0, ncols=1)
        finish(ax, title)
        return figure_to_svg(fig)


def _panel_grid(count: int, columns: int, height: float) -> tuple[Figure, list[Axes]]:
    rows = max(1, math.ceil(count / columns))
    fig = Figure(figsize=(WIDTH, height * rows), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(rows, columns, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def histogram_panels(
    panels: Mapping[str, tuple[Sequence[float], Sequence[int]]],
    *,
    title: str = "",
    columns: int = 3,
) -> str:
    """Small multiples: one histogram per entry, from precomputed bin `edges` and `counts`
    (len(edges) == len(counts) + 1), each panel with its own axes."""
    with styled():
        if not panels:
            fig, ax = new_figure(WIDTH, 2.0)
            _no_data(ax)
            finish(ax, title)
            return figure_to_svg(fig)
        fig, axes = _panel_grid(len(panels), columns, 1.9)
        for ax, (name, (edges, counts)) in zip(axes, panels.items(), strict=True):
            ax.set_title(short_label(name, 30), fontsize=9.5, loc="left", pad=4)
            if len(edges) != len(counts) + 1 or not len(counts):
                _no_data(ax, "no finite values")
                continue
            widths = np.diff(np.asarray(edges, dtype="float64"))
            ax.bar(edges[:-1], counts, width=widths, align="edge", color=BASE_COLOUR, lw=0)
            ax.yaxis.set_major_locator(MaxNLocator(3, integer=True))
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.yaxis.set_major_formatter(FuncFormatter(_compact))
            ax.xaxis.set_major_formatter(FuncFormatter(_compact))
            ax.tick_params(labelsize=7.5, length=2)
            ax.yaxis.grid(True)
        if title:
            fig.suptitle(short_label(title, 90), x=0.0, ha="left", fontsize=11.5, fontweight="bold")
        return figure_to_svg(fig)


def _compact(value: float, _position: int | None = None) -> str:
    """A tick label that fits a small panel: 1.2k, 3.4M."""
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def category_panels(
    panels: Mapping[str, Mapping[str, int]],
    *,
    title: str = "",
    top: int = 5,
    columns: int = 2,
) -> str:
    """Small multiples: the `top` most frequent categories of each entry as horizontal bars,
    each with its count exactly."""
    with styled():
        if not panels:
            fig, ax = new_figure(WIDTH, 2.0)
            _no_data(ax)
            finish(ax, title)
            return figure_to_svg(fig)
        fig, axes = _panel_grid(len(panels), columns, 0.26 * top + 0.8)
        for ax, (name, counts) in zip(axes, panels.items(), strict=True):
            items = sorted(counts.items(), key=lambda item: -_number(item[1]))[:top]
            ax.set_title(short_label(name, 40), fontsize=9.5, loc="left", pad=4)
            if not items:
                _no_data(ax)
                continue
            positions = top - 1 - np.arange(len(items))  # from the top, however few
            values = [_number(v) for _, v in items]
            bars = ax.barh(positions, values, height=0.7, color=BASE_COLOUR)
            ax.set_yticks(positions, [short_label(k, 18) for k, _ in items])
            ax.bar_label(bars, _format_values(values, None), padding=2, fontsize=7.5)
            ax.set_xlim(0, max(values) * 1.3 if max(values) > 0 else 1)
            ax.set_ylim(-0.6, top - 0.4)
            ax.set_xticks([])
            ax.spines["bottom"].set_visible(False)
            ax.spines["left"].set_bounds(positions[-1] - 0.45, positions[0] + 0.45)
            ax.tick_params(axis="y", length=0, labelsize=8)
        if title:
            fig.suptitle(short_label(title, 90), x=0.0, ha="left", fontsize=11.5, fontweight="bold")
        return figure_to_svg(fig)

"""Charts as inline SVG strings, drawn with matplotlib, for self-contained reports."""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display in a pod; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
BASE_COLOUR, HIGHLIGHT_COLOUR, REFERENCE_COLOUR = "#0072B2", "#D55E00", "#555555"
_ids = itertools.count()


def _style(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)


def _short(label: Any, width: int = 32) -> str:
    text = str(label)
    return text if len(text) <= width else text[: width - 1] + "…"


def figure_to_svg(fig: Any) -> str:
    """The figure as an <svg> element (no XML prolog), with ids unique in the page."""
    buffer = io.StringIO()
    salt = f"fp{next(_ids)}"
    with plt.rc_context({"svg.hashsalt": salt, "svg.fonttype": "path"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    # matplotlib names clip paths and glyphs with ids that repeat across figures: prefix them.
    svg = re.sub(r'id="([^"]+)"', rf'id="{salt}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{salt}-\1)", svg)
    svg = re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{salt}-\1"', svg)
    return svg


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
    value_format: str = "{:.3g}",
) -> str:
    labels = [str(label) for label in labels]
    values = [float(v) if v is not None else np.nan for v in values]
    colours = [HIGHLIGHT_COLOUR if label in set(highlight) else BASE_COLOUR for label in labels]
    if horizontal:
        fig, ax = plt.subplots(figsize=(7.5, max(1.6, 0.32 * len(labels) + 0.9)))
        positions = np.arange(len(labels))[::-1]
        ax.barh(positions, values, color=colours)
        ax.set_yticks(positions, [_short(label) for label in labels])
        for position, value in zip(positions, values, strict=True):
            if np.isfinite(value):
                ax.text(value, position, " " + value_format.format(value), va="center", fontsize=8)
        if reference is not None:
            ax.axvline(reference, color=REFERENCE_COLOUR, ls="--", lw=1, label=reference_label)
        ax.set_xlabel(xlabel)
        ax.margins(x=0.15)
    else:
        fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(labels) + 2), 3.6))
        ax.bar(range(len(labels)), values, color=colours)
        ax.set_xticks(
            range(len(labels)), [_short(label, 18) for label in labels], rotation=45, ha="right"
        )
        if reference is not None:
            ax.axhline(reference, color=REFERENCE_COLOUR, ls="--", lw=1, label=reference_label)
        ax.set_ylabel(xlabel)
    if reference is not None and reference_label:
        ax.legend(fontsize=8, frameon=False, loc="best")
    ax.set_title(title, fontsize=11, loc="left")
    _style(ax)
    return figure_to_svg(fig)


def grouped_bar_chart(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
    ylabel: str = "",
    reference: float | None = None,
) -> str:
    categories = [str(c) for c in categories]
    fig, ax = plt.subplots(
        figsize=(max(5.0, 0.9 * len(categories) * max(1, len(series)) / 2 + 2), 3.8)
    )
    width = 0.8 / max(1, len(series))
    x = np.arange(len(categories))
    for i, (name, values) in enumerate(series.items()):
        heights = [float(v) if v is not None else np.nan for v in values]
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            heights,
            width,
            label=name,
            color=PALETTE[i % len(PALETTE)],
        )
    if reference is not None:
        ax.axhline(reference, color=REFERENCE_COLOUR, ls="--", lw=1)
    ax.set_xticks(
        x,
        [_short(c, 18) for c in categories],
        rotation=30 if len(categories) > 4 else 0,
        ha="right" if len(categories) > 4 else "center",
    )
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11, loc="left")
    ax.legend(fontsize=8, frameon=False)
    _style(ax)
    return figure_to_svg(fig)


def histogram(values: Sequence[float], *, bins: int = 30, title: str = "", xlabel: str = "") -> str:
    data = np.asarray(values, dtype="float64")
    data = data[np.isfinite(data)]
    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    ax.hist(data, bins=bins, color=BASE_COLOUR)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.set_title(title, fontsize=11, loc="left")
    _style(ax)
    return figure_to_svg(fig)


def category_bars(counts: Mapping[str, int], *, title: str = "", top: int = 15) -> str:
    items = sorted(counts.items(), key=lambda item: -item[1])[:top]
    return bar_chart(
        [k for k, _ in items],
        [v for _, v in items],
        title=title,
        xlabel="rows",
        value_format="{:,.0f}",
    )

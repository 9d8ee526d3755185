"""SHAP's standard plots, drawn in the reports' own style (charts.py): beeswarm, waterfall,
dependence with interaction colouring, and mean SHAP per group of a sensitive feature.

The numbers each chart draws come from the small pure functions here (`waterfall_steps`,
`category_order`, `strongest_interaction`, `shap_by_group`), which the tests check against
their definitions and against the shap library's own functions.

Categorical features are shown by what they do, not by an arbitrary code: their categories are
ordered by their mean SHAP value (`category_order`), so that in the beeswarm the colour scale
runs from the category that lowers the prediction most (blue) to the one that raises it most
(red), both named beside the row; in a dependence plot the categories stand on the x axis in
that order, and a categorical interaction feature gets a categorical palette with a legend of
its most frequent categories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap

from fairpilot_jobs.reports.charts import (
    BASE_COLOUR,
    GRID_COLOUR,
    HIGHLIGHT_COLOUR,
    LABEL_BOX,
    MUTED_COLOUR,
    PALETTE,
    REFERENCE_COLOUR,
    TEXT_COLOUR,
    WIDTH,
    figure_to_svg,
    finish,
    new_figure,
    short_label,
    styled,
)
from fairpilot_jobs.reports.html import ROUNDED_MARK, approx, format_value, shows_exactly

__all__ = [
    "VALUE_COLOURS",
    "WaterfallStep",
    "beeswarm_chart",
    "category_order",
    "decision_chart",
    "decision_paths",
    "dependence_chart",
    "encoded",
    "group_chart",
    "is_categorical",
    "readable",
    "shap_by_group",
    "strongest_interaction",
    "value_text",
    "waterfall_chart",
    "waterfall_steps",
]

# Low feature values blue, high ones vermillion (the pair survives every colour-vision type).
VALUE_COLOURS = LinearSegmentedColormap.from_list(
    "fp_value", [BASE_COLOUR, "#b7a8c9", HIGHLIGHT_COLOUR]
)
MISSING_COLOUR = "#b8bfc6"
LEGEND_CATEGORIES = 6  # a categorical interaction's legend: its most frequent categories
OTHER_COLOUR = "#8c959f"


def readable(name: object) -> str:
    """A column name as a person reads it: 'education_num' as 'education num'."""
    return " ".join(str(name).replace("_", " ").split())


def is_categorical(column: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def category_order(column: pd.Series, shap: np.ndarray) -> list[Any]:
    """The categories of a column, from the lowest mean SHAP value to the highest (missing
    values left out): the order a categorical feature is drawn in."""
    means = pd.Series(np.asarray(shap, dtype="float64"), index=column.index).groupby(
        column.astype("object"), dropna=True, sort=False
    )
    ordered = means.mean().sort_values(kind="stable")
    return list(ordered.index)


def encoded(rows: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
    """Every column as numbers: numeric ones as they are, categorical ones as the rank of their
    category in `category_order` (0 = the category with the lowest mean SHAP), missing as NaN."""
    data = {}
    for i, name in enumerate(rows.columns):
        column = rows[name]
        if is_categorical(column):
            ranks = {c: r for r, c in enumerate(category_order(column, values[:, i]))}
            data[name] = column.astype("object").map(ranks).astype("float64")
        else:
            data[name] = column.astype("float64")
    return pd.DataFrame(data, index=rows.index)


def value_text(value: object) -> str:
    """A feature's value in a label: floats to 4 significant digits, marked "≈" if rounded."""
    if isinstance(value, float | np.floating) and not math.isnan(value):
        return approx(value, format_value(float(value), rounded=True))
    return format_value(value)


# -- waterfall --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaterfallStep:
    label: str  # "age = 52", or "7 other features"
    shap: float  # how far it moves the prediction
    start: float  # the running total before it


def waterfall_steps(
    row: pd.Series, shap: np.ndarray, base: float, most: int = 10
) -> list[WaterfallStep]:
    """The bars of a waterfall, first the one drawn at the bottom: the `most - 1` features with
    the largest |SHAP| (the largest last, at the top) and one bar for all the others; each
    starts where the previous one ends, the first at `base`, so the last ends at
    base + sum(shap): the row's prediction."""
    shap = np.asarray(shap, dtype="float64")
    order = list(np.argsort(-np.abs(shap), kind="stable"))
    shown = order if len(order) <= most else order[: most - 1]
    rest = [i for i in order if i not in set(shown)]
    steps: list[tuple[str, float]] = []
    if rest:
        steps.append((f"{len(rest)} other features", float(shap[rest].sum())))
    for i in reversed(shown):
        steps.append((f"{readable(row.index[i])} = {value_text(row.iloc[i])}", float(shap[i])))
    result, total = [], float(base)
    for label, value in steps:
        result.append(WaterfallStep(label, value, total))
        total += value
    return result


def _signed(value: float) -> str:
    """A SHAP value with its sign, to 3 significant digits, marked "≈" where rounded."""
    text = format_value(abs(value), rounded=True, digits=3)
    mark = "" if shows_exactly(abs(value), text) else ROUNDED_MARK
    return f"{mark}{'−' if value < 0 else '+'}{text}"


def waterfall_chart(
    row: pd.Series, shap: np.ndarray, base: float, *, title: str = "", most: int = 10
) -> str:
    """One row's prediction built up from the average prediction E[f(X)]: a bar per feature
    (red raises, blue lowers), each labelled with its SHAP value."""
    steps = waterfall_steps(row, shap, base, most)
    output = steps[-1].start + steps[-1].shap if steps else float(base)
    with styled():
        fig, ax = new_figure(WIDTH, 0.36 * len(steps) + 1.6)
        ends = [s.start + s.shap for s in steps] + [float(base)]
        low, high = min(ends), max(ends)
        span = (high - low) or 1.0
        for y, step in enumerate(steps):
            colour = HIGHLIGHT_COLOUR if step.shap >= 0 else BASE_COLOUR
            ax.barh(y, step.shap, left=step.start, height=0.62, color=colour, lw=0)
            end = step.start + step.shap
            ax.annotate(
                _signed(step.shap),
                (max(step.start, end), y),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8.5,
                color=TEXT_COLOUR,
                bbox=LABEL_BOX,
                zorder=4,
            )
        ax.axvline(base, color=REFERENCE_COLOUR, ls=(0, (4, 3)), lw=1)
        ax.axvline(output, color=TEXT_COLOUR, lw=1)
        ax.set_yticks(range(len(steps)), [short_label(s.label, 48) for s in steps])
        ax.tick_params(axis="y", length=0)
        ax.set_xlim(low - 0.05 * span, high + 0.2 * span)
        ax.set_ylim(-0.6, len(steps) - 0.4)
        ax.xaxis.grid(True)
        average = value_text(float(base)).replace("-", "−")
        predicted = value_text(float(output)).replace("-", "−")
        ax.set_xlabel(
            f"dashed: the average prediction E[f(X)] = {average}; "
            f"solid: this row's prediction f(x) = {predicted}"
        )
        finish(ax, title)
        return figure_to_svg(fig)


# -- decision plot ----------------------------------------------------------------------------
def decision_paths(
    values: np.ndarray, base: np.ndarray, *, top: int = 12
) -> tuple[list[int], np.ndarray]:
    """The features a decision plot names (most important first) and each row's path: its
    prediction after each step, starting at its base value E[f(X)], first adding the features
    not named (one step), then the named ones from the least important up, so the last point
    is base + sum of the row's SHAP values: its prediction. Shape (rows, named + 2)."""
    values = np.asarray(values, dtype="float64")
    importance = np.abs(values).mean(axis=0)
    order = list(np.argsort(-importance, kind="stable"))
    named = order[:top]
    rest = values[:, order[top:]].sum(axis=1) if len(order) > top else np.zeros(len(values))
    steps = np.column_stack([rest, values[:, list(reversed(named))]])
    start = np.asarray(base, dtype="float64").reshape(len(values), 1)
    return named, np.hstack([start, start + np.cumsum(steps, axis=1)])


def decision_chart(
    rows: pd.DataFrame,
    values: np.ndarray,
    base: np.ndarray,
    *,
    top: int = 12,
    lines: int = 40,
    title: str = "",
) -> str:
    """shap's decision plot: one line per row (up to `lines`, spread over the range of
    predictions), climbing from the average prediction at the bottom through each feature's
    SHAP value to the row's prediction at the top, coloured by that prediction."""
    named, paths = decision_paths(values, base, top=top)
    ranked = np.argsort(paths[:, -1], kind="stable")
    spread = np.linspace(0, len(ranked) - 1, min(lines, len(ranked))).round().astype(int)
    picked = ranked[np.unique(spread)]
    labels = [short_label(readable(rows.columns[i]), 30) for i in reversed(named)]
    if values.shape[1] > top:
        labels.insert(0, "other features")
    else:  # every feature named: no step for the others
        paths = np.delete(paths, 1, axis=1)
    ends = paths[picked, -1]
    low, high = float(ends.min()), float(ends.max())
    with styled():
        fig, ax = new_figure(WIDTH, 0.36 * len(labels) + 1.8)
        y = np.arange(paths.shape[1]) - 0.5
        for row in picked:
            colour = VALUE_COLOURS((paths[row, -1] - low) / ((high - low) or 1.0))
            ax.plot(paths[row], y, color=colour, lw=1, alpha=0.8)
        average = float(np.mean(np.asarray(base, dtype="float64")))
        ax.axvline(average, color=REFERENCE_COLOUR, ls=(0, (4, 3)), lw=1)
        ax.set_yticks(np.arange(len(labels)), labels)
        ax.set_ylim(-0.5, len(labels) - 0.5)
        ax.tick_params(axis="y", length=0)
        ax.xaxis.grid(True)
        ax.yaxis.grid(True)
        ax.set_xlabel(
            f"model output; dashed: the average prediction E[f(X)] = "
            f"{value_text(average).replace('-', '−')}"
        )
        finish(ax, title)
        return figure_to_svg(fig)


# -- beeswarm ---------------------------------------------------------------------------------


def _swarm(x: np.ndarray, width: float = 0.4, bins: int = 100) -> np.ndarray:
    """Vertical offsets that pile up dots with nearly the same x, as shap's beeswarm does."""
    offsets = np.zeros(len(x))
    if len(x) == 0:
        return offsets
    low, high = float(np.nanmin(x)), float(np.nanmax(x))
    cells = np.round((x - low) / ((high - low) or 1.0) * bins).astype(int)
    layer = np.zeros(len(x))
    for cell in np.unique(cells):
        members = np.flatnonzero(cells == cell)
        for k, i in enumerate(members):
            layer[i] = (k + 1) // 2 * (1 if k % 2 else -1)
    most = max(1.0, float(np.abs(layer).max()))
    offsets = layer / most * width
    return offsets


def _value_colours(column: pd.Series, shap: np.ndarray) -> tuple[np.ndarray, str]:
    """Each row's colour position in [0, 1] (NaN: missing) and, for a categorical feature, a
    note naming its extreme categories."""
    if is_categorical(column):
        order = category_order(column, shap)
        ranks = {c: r for r, c in enumerate(order)}
        scale = max(1, len(order) - 1)
        positions = column.astype("object").map(ranks).astype("float64").to_numpy() / scale
        if len(order) >= 2:
            note = f"blue {short_label(order[0], 18)} … red {short_label(order[-1], 18)}"
        else:
            note = short_label(order[0], 30) if order else ""
        return positions, note
    numbers = column.astype("float64").to_numpy()
    finite = numbers[np.isfinite(numbers)]
    if not len(finite):
        return numbers, ""
    low, high = np.percentile(finite, [5, 95])
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    return np.clip((numbers - low) / ((high - low) or 1.0), 0, 1), ""


def beeswarm_chart(
    rows: pd.DataFrame, values: np.ndarray, *, top: int = 15, title: str = ""
) -> str:
    """One line of dots per feature (the most important at the top), a dot per row at its SHAP
    value, coloured by the feature's value: numeric features from their low (blue) to their
    high (red) values; categorical ones by their categories' mean SHAP (`category_order`),
    from the category that lowers the prediction most (blue) to the one that raises it most
    (red), both named right of the row."""
    importance = np.abs(values).mean(axis=0)
    order = list(np.argsort(-importance, kind="stable")[:top])
    with styled():
        fig, ax = new_figure(WIDTH, 0.42 * len(order) + 1.4)
        notes = []
        for y, i in enumerate(reversed(order)):
            column = rows.iloc[:, i]
            shap = values[:, i]
            positions, note = _value_colours(column, shap)
            notes.append(note)
            offsets = _swarm(shap)
            missing = np.isnan(positions)
            if missing.any():
                ax.scatter(shap[missing], y + offsets[missing], s=7, color=MISSING_COLOUR, lw=0)
            ax.scatter(
                shap[~missing],
                y + offsets[~missing],
                s=7,
                c=positions[~missing],
                cmap=VALUE_COLOURS,
                vmin=0,
                vmax=1,
                lw=0,
                rasterized=False,
            )
        names = [short_label(readable(rows.columns[i]), 30) for i in reversed(order)]
        ax.set_yticks(range(len(order)), names)
        ax.tick_params(axis="y", length=0)
        ax.set_ylim(-0.7, len(order) - 0.3)
        ax.axvline(0, color=GRID_COLOUR, lw=1, zorder=0)
        ax.xaxis.grid(True)
        ax.set_xlabel("SHAP value (how far the feature moves this row's prediction)")
        if any(notes):
            right = ax.twinx()
            right.set_ylim(ax.get_ylim())
            right.set_yticks(range(len(order)), notes)
            right.tick_params(axis="y", length=0, labelsize=7.5, labelcolor=MUTED_COLOUR)
            for spine in right.spines.values():
                spine.set_visible(False)
        bar = fig.colorbar(
            ax.collections[-1], ax=ax, location="bottom", shrink=0.35, aspect=30, pad=0.02
        )
        bar.set_ticks([0, 1], labels=["low", "high"])
        bar.set_label("feature value (categories: by their mean SHAP)", fontsize=8.5)
        bar.outline.set_visible(False)
        finish(ax, title)
        return figure_to_svg(fig)


# -- dependence -------------------------------------------------------------------------------


def strongest_interaction(rows: pd.DataFrame, values: np.ndarray, feature: str) -> str | None:
    """The feature whose value best explains the spread of `feature`'s SHAP values at equal
    values of `feature`: shap's `approximate_interactions` over the columns as `encoded`."""
    from shap.utils import approximate_interactions

    if rows.shape[1] < 2:
        return None
    index = list(rows.columns).index(feature)
    data = encoded(rows, values)
    ranked = approximate_interactions(index, values, data.to_numpy())
    return str(rows.columns[int(ranked[0])])


def dependence_chart(
    rows: pd.DataFrame,
    values: np.ndarray,
    feature: str,
    interaction: str | None,
    *,
    title: str = "",
) -> str:
    """SHAP of `feature` against its value, a dot per row coloured by `interaction`'s value.
    Categories of a categorical feature stand on the x axis by their mean SHAP."""
    column = list(rows.columns).index(feature)
    x_data, shap = rows[feature], values[:, column]
    with styled():
        fig, ax = new_figure(WIDTH, 3.6)
        if is_categorical(x_data):
            order = category_order(x_data, shap)
            ranks = {c: r for r, c in enumerate(order)}
            x = x_data.astype("object").map(ranks).astype("float64").to_numpy()
            x = x + np.random.default_rng(0).uniform(-0.22, 0.22, len(x))
            ax.set_xticks(
                range(len(order)),
                [short_label(c, 20) for c in order],
                rotation=35 if len(order) > 5 else 0,
                ha="right" if len(order) > 5 else "center",
                fontsize=8,
            )
        else:
            x = x_data.astype("float64").to_numpy()
        kept = np.isfinite(x)
        if interaction is None:
            ax.scatter(x[kept], shap[kept], s=8, color=BASE_COLOUR, lw=0, alpha=0.7)
        elif is_categorical(rows[interaction]):
            other = rows[interaction].astype("object")
            frequent = list(other.value_counts().index[:LEGEND_CATEGORIES])
            rest = kept & ~other.isin(frequent).to_numpy()
            if rest.any():
                ax.scatter(
                    x[rest], shap[rest], s=8, color=OTHER_COLOUR, lw=0, alpha=0.6, label="other"
                )
            for k, category in enumerate(frequent):
                chosen = kept & (other == category).to_numpy()
                ax.scatter(
                    x[chosen],
                    shap[chosen],
                    s=8,
                    color=PALETTE[k % len(PALETTE)],
                    lw=0,
                    alpha=0.8,
                    label=short_label(category, 22),
                )
            ax.legend(
                title=short_label(readable(interaction), 30),
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                markerscale=1.8,
                fontsize=8,
                title_fontsize=8.5,
            )
        else:
            colours = rows[interaction].astype("float64").to_numpy()
            has = kept & np.isfinite(colours)
            if (kept & ~has).any():
                ax.scatter(x[kept & ~has], shap[kept & ~has], s=8, color=MISSING_COLOUR, lw=0)
            finite = colours[has]
            low, high = np.percentile(finite, [5, 95]) if len(finite) else (0.0, 1.0)
            points = ax.scatter(
                x[has],
                shap[has],
                s=8,
                c=colours[has],
                cmap=VALUE_COLOURS,
                vmin=low,
                vmax=high if high > low else low + 1,
                lw=0,
            )
            bar = fig.colorbar(points, ax=ax, pad=0.01, aspect=25)
            bar.set_label(readable(interaction), fontsize=8.5)
            bar.outline.set_visible(False)
        ax.axhline(0, color=REFERENCE_COLOUR, lw=0.8, ls=(0, (4, 3)))
        ax.grid(True)
        ax.set_xlabel(readable(feature))
        ax.set_ylabel(f"SHAP value of {short_label(readable(feature), 24)}")
        finish(ax, title)
        return figure_to_svg(fig)


# -- sensitive features -------------------------------------------------------------------------


def shap_by_group(
    rows: pd.DataFrame, values: np.ndarray, output: np.ndarray, feature: str
) -> pd.DataFrame:
    """Per group of `feature` (missing values as their own group): its rows, the mean SHAP value
    of `feature` (how far belonging to the group moves the prediction on average), the mean
    |SHAP| and the mean prediction; largest groups first."""
    column = list(rows.columns).index(feature)
    groups = rows[feature].astype("object").where(rows[feature].notna(), "(missing)")
    frame = pd.DataFrame(
        {"group": groups.astype(str), "shap": values[:, column], "output": output},
        index=rows.index,
    )
    summary = frame.groupby("group", sort=False).agg(
        rows=("shap", "size"),
        mean_shap=("shap", "mean"),
        mean_abs=("shap", lambda s: float(np.abs(s).mean())),
        mean_output=("output", "mean"),
    )
    summary = summary.sort_values("rows", ascending=False, kind="stable").reset_index()
    return summary


def group_chart(table: pd.DataFrame, feature: str, *, title: str = "") -> str:
    """Mean SHAP of the feature per group, a horizontal bar each from 0 (red raises, blue
    lowers), labelled with the value and the group's row count."""
    labels = [
        f"{short_label(g, 28)} ({n:,} rows)"
        for g, n in zip(table["group"], table["rows"], strict=True)
    ]
    means = table["mean_shap"].astype("float64").to_numpy()
    with styled():
        fig, ax = new_figure(WIDTH, 0.34 * len(labels) + 1.3)
        positions = np.arange(len(labels))[::-1]
        colours = [HIGHLIGHT_COLOUR if m >= 0 else BASE_COLOUR for m in means]
        bars = ax.barh(positions, means, height=0.62, color=colours, lw=0)
        ax.bar_label(bars, [_signed(float(m)) for m in means], padding=3, fontsize=8.5)
        span = float(np.abs(means).max()) or 1.0
        ax.set_xlim(
            min(0.0, float(means.min())) - 0.3 * span, max(0.0, float(means.max())) + 0.3 * span
        )
        ax.set_yticks(positions, labels)
        ax.tick_params(axis="y", length=0)
        ax.axvline(0, color=REFERENCE_COLOUR, lw=0.8)
        ax.xaxis.grid(True)
        ax.set_xlabel(f"mean SHAP value of {short_label(readable(feature), 30)} in the group")
        finish(ax, title)
        return figure_to_svg(fig)

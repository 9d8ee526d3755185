"""One window of a ModelMonitor, the parts that need no model: reading the batches, the
streaming change detector, and turning measures into alerts.

Batches are read one by one. A batch that cannot be used is *rejected*, with a reason and a
message, and the window goes on with the others; nothing is moved or deleted, the data stays
where it is. Reasons:

- `BatchNotFound`: nothing at the batch's location (any more);
- `BatchUnreadable`: not readable as its format (or its format cannot be told from its name);
- `EmptyBatch`: no rows;
- `ColumnNotFound`: a feature the model uses (or the monitor's predictionColumn) is not a column;
- `WrongType`: a column the model reads as numbers holds text;
- a batch refused by the input rules or limits keeps the refusal's own reason: `InvalidURI` (a
  name with a control or invisible character, an S3 key with `?` or `#`: no URI FairPilot
  reads), `LocationNotAllowed` (outside what the namespace and user may read, links
  resolved), `UnsafePath`, `DecompressedTooLarge`, `ParquetMetadataTooLarge`,
  `TooManyRowGroups`, `TooManyColumns`, `HeaderTooLarge`.

A transient failure of the store (`StorageUnavailable`) is not a rejection: the window fails,
and its Job is retried, rather than let a batch go unmeasured.

ADWIN (Bifet and Gavaldà, 2007, `river.drift.ADWIN`) keeps a window of a stream's recent
values and drops its older part when the two parts' means differ by more than a bound that
holds with probability 1 - delta. The monitor feeds it the reference rows' values in a random
order (a stationary stream of what the model was trained on), then the window's values in row
order: a change found after the reference part has ended is one the new rows brought. A change
in the score stream is DriftDetected on "(score)"; a rise of the per-row error is
PerformanceDegraded on "(error)".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from fairpilot.api.common import DataLocation
from fairpilot.api.monitor import (
    MAX_HISTORY,
    AlertType,
    Batch,
    FairnessBaseline,
    MonitorThresholds,
    WindowSummary,
)
from fairpilot.api.validation import describe, invisible_characters
from fairpilot.errors import JobError
from fairpilot_jobs.monitor.drift import FeatureDrift, FeatureReference
from fairpilot_jobs.tables import read_table

# What read_table's reasons mean for one batch of a window.
_READ_REASONS = {"EmptyTable": "EmptyBatch", "DatasetNotFound": "BatchNotFound"}
# Refusals of the input rules and limits: the batch is rejected with the refusal's own reason
# (the same as a Dataset's), not as merely unreadable.
_KEPT_REASONS = frozenset(
    {
        "InvalidURI",
        "LocationNotAllowed",
        "UnsafePath",
        "DecompressedTooLarge",
        "ParquetMetadataTooLarge",
        "TooManyRowGroups",
        "TooManyColumns",
        "HeaderTooLarge",
    }
)
MAX_BAD_VALUES = 3  # examples of text in a numeric column, in a WrongType message
MAX_CHANGES = 20  # ADWIN detections listed per stream; the count is kept
SCORE, ERROR, PREDICTION = "(score)", "(error)", "(prediction)"


# -- batches ------------------------------------------------------------------------------------
@dataclass
class WindowRows:
    """The usable rows of a window, and what became of each batch."""

    rows: pd.DataFrame
    used: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    # Per optional column (label, sensitive features that are not features): which rows came
    # from batches that carry it. A batch without the column says nothing about it.
    carried: dict[str, np.ndarray] = field(default_factory=dict)


class Rejected(Exception):
    """A batch the window cannot use."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def read_window(
    batches: Sequence[Batch],
    references: Mapping[str, FeatureReference],
    *,
    optional: Sequence[str] = (),
    required: Mapping[str, str] | None = None,
) -> WindowRows:
    """Read every batch; keep the model's features (`references`), the `optional` columns
    where a batch has them, and the `required` ones (column -> the spec field that names it)."""
    required = dict(required or {})
    frames: list[pd.DataFrame] = []
    used: list[dict[str, Any]] = []
    rejected: list[dict[str, str]] = []
    for batch in batches:
        try:
            frame = read_batch(batch, references, optional, required)
        except Rejected as exc:
            rejected.append({"uri": batch.uri, "reason": exc.reason, "message": exc.message})
            continue
        frames.append(frame)
        used.append({"uri": batch.uri, "rows": len(frame), "modifiedAt": batch.modified_at})
    if not frames:
        return WindowRows(pd.DataFrame(columns=list(references)), used, rejected)
    rows = pd.concat(frames, ignore_index=True, sort=False)
    carried = {
        column: np.concatenate([np.full(len(f), column in f.columns) for f in frames])
        for column in optional
    }
    return WindowRows(rows, used, rejected, carried)


def read_batch(
    batch: Batch,
    references: Mapping[str, FeatureReference],
    optional: Sequence[str],
    required: Mapping[str, str],
) -> pd.DataFrame:
    """One batch's columns the window needs; raises Rejected when it cannot be used."""
    try:
        location = DataLocation.model_validate({"uri": batch.uri, "format": batch.format})
    except ValidationError as exc:
        # A name no URI FairPilot reads may hold: this batch is refused, the window goes on.
        shown = escaped(batch.uri)
        raise Rejected(
            "InvalidURI", f"batch {shown} is not a URI FairPilot reads: {describe(exc)}"
        ) from None
    try:
        frame = read_table(location, what="batch")
    except JobError as exc:
        if exc.transient:
            raise  # the store is down: the Job is retried, the batch is not given up
        reason = exc.reason if exc.reason in _KEPT_REASONS else "BatchUnreadable"
        raise Rejected(_READ_REASONS.get(exc.reason, reason), exc.message) from exc
    absent = [name for name in [*references, *required] if name not in frame.columns]
    if absent:
        named = ", ".join(
            f"{name!r}" + (f" ({required[name]})" if name in required else "") for name in absent
        )
        raise Rejected(
            "ColumnNotFound",
            f"batch {batch.uri} lacks column(s) the model needs: {named}; its columns are "
            f"{', '.join(map(str, list(frame.columns)[:30]))}",
        )
    kept = list(dict.fromkeys([*references, *required, *(c for c in optional if c in frame)]))
    frame = frame[kept].copy()
    for name, reference in references.items():
        if reference.kind == "numeric":
            frame[name] = numeric_column(frame[name], batch.uri)
    return frame


def escaped(text: str, limit: int = 200) -> str:
    """`text` with each control or invisible character written as its escape (`\\n`, `\\x00`),
    cut to `limit` characters: a message shows a hostile name on one printable line."""
    shown = "".join(
        char.encode("unicode_escape").decode("ascii") if invisible_characters(char) else char
        for char in text[:limit]
    )
    return shown + ("…" if len(text) > limit else "")


def numeric_column(column: pd.Series, uri: str) -> pd.Series:
    """A column the model reads as numbers, as numbers; text in it rejects the batch."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column
    present = column.dropna()
    if pd.api.types.is_bool_dtype(present):
        present = present.astype(int)
    converted = pd.to_numeric(present, errors="coerce")
    bad = present[converted.isna()]
    if len(bad):
        examples = ", ".join(repr(str(v)[:40]) for v in bad.drop_duplicates().head(MAX_BAD_VALUES))
        raise Rejected(
            "WrongType",
            f"batch {uri}: column {column.name!r} holds text where the model reads numbers "
            f"({len(bad):,} of {len(column):,} rows, e.g. {examples})",
        )
    return pd.to_numeric(column, errors="coerce")


def empty_window_message(
    window: int,
    rejected: Sequence[Mapping[str, str]],
    used: Sequence[Mapping[str, Any]],
    features: Sequence[str],
) -> str:
    """Why window `window` has nothing to measure, batch by batch, and what to fix."""
    parts = [f"{r['uri']}: {r['reason']}: {r['message']}" for r in rejected]
    parts += [f"{u['uri']}: no rows" for u in used]
    shown = ", ".join(features[:30]) + (
        f" and {len(features) - 30} more" if len(features) > 30 else ""
    )
    return (
        f"window {window} has no rows to measure: every batch was rejected or empty. "
        + "; ".join(parts)
        + f". Each batch needs the model's feature columns ({shown}), numbers where the model "
        "reads numbers, and at least one row; the batches were left where they are: write "
        "corrected ones as new batches"
    )


def newest(batches: Iterable[Batch]) -> str | None:
    """The newest modifiedAt (as the store listed it) of the batches; times that are not
    RFC 3339 are left out."""
    found: list[tuple[datetime, str]] = []
    for batch in batches:
        if not batch.modified_at:
            continue
        try:
            moment = datetime.fromisoformat(batch.modified_at.replace("Z", "+00:00"))
        except ValueError:
            continue
        if moment.tzinfo is None:
            continue  # no zone: not RFC 3339, and not comparable with the others
        found.append((moment, batch.modified_at))
    return max(found)[1] if found else None


# -- ADWIN --------------------------------------------------------------------------------------
def adwin_stream(
    name: str,
    reference: np.ndarray,
    window: np.ndarray,
    delta: float,
    seed: int,
    *,
    shuffle: bool = True,
) -> dict[str, Any]:
    """Feed ADWIN the reference values (in a random order), then the window's in row order;
    the changes it finds among the window's rows."""
    from river.drift import ADWIN

    reference = _finite_values(reference)
    window = _finite_values(window)
    if shuffle:
        reference = np.random.default_rng(seed).permutation(reference)
    detector = ADWIN(delta=delta)
    for value in reference:
        detector.update(float(value))
    changes: list[dict[str, Any]] = []
    found = 0
    for row, value in enumerate(window):
        detector.update(float(value))
        if detector.drift_detected:
            found += 1
            if len(changes) < MAX_CHANGES:
                # What ADWIN keeps after the cut: its recent values' mean and count.
                changes.append(
                    {"row": row, "mean": float(detector.estimation), "kept": int(detector.width)}
                )
    return {
        "stream": name,
        "delta": delta,
        "referenceRows": len(reference),
        "windowRows": len(window),
        "referenceMean": _mean(reference),
        "windowMean": _mean(window),
        "changeDetected": found > 0,
        "changes": changes,
        "changeCount": found,
        # Where the stream stands at the window's end: the mean of the values ADWIN kept
        # after its last cut (the newest regime), and how many they are.
        "currentMean": float(detector.estimation) if len(reference) + len(window) else None,
        "currentRows": int(detector.width),
    }


def _finite_values(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype="float64")
    return array[np.isfinite(array)]


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


# -- alerts -------------------------------------------------------------------------------------
def alert(
    kind: AlertType,
    feature: str | None,
    metric: str,
    value: float | None,
    baseline: float | None,
    threshold: float | None,
    message: str,
) -> dict[str, Any]:
    return {
        "type": kind.value,
        "feature": feature,
        "metric": metric,
        "value": value,
        "baseline": baseline,
        "threshold": threshold,
        "message": message,
    }


def drift_verdict(
    found: FeatureDrift, thresholds: MonitorThresholds
) -> tuple[str, float, float] | None:
    """(metric, value, threshold) when a feature drifted: PSI first, then the test's p-value."""
    if found.psi >= thresholds.psi:
        return "psi", found.psi, thresholds.psi
    if thresholds.p_value is not None:
        test, pvalue = (
            ("ksPValue", found.ks_pvalue)
            if found.kind == "numeric"
            else ("chi2PValue", found.chi2_pvalue)
        )
        if pvalue is not None and pvalue < thresholds.p_value:
            return test, pvalue, thresholds.p_value
    return None


def drift_alerts(
    drifts: Mapping[str, FeatureDrift], thresholds: MonitorThresholds
) -> list[dict[str, Any]]:
    """One DriftDetected alert per drifted feature, the largest PSI first."""
    out = []
    for found in sorted(drifts.values(), key=lambda d: -d.psi):
        verdict = drift_verdict(found, thresholds)
        if verdict is None:
            continue
        metric, value, bound = verdict
        if metric == "psi":
            message = (
                f"feature {found.name!r} drifted: PSI {value:.4g} against the training data, at "
                f"or above the threshold {bound:g}"
            )
        else:
            test = "Kolmogorov-Smirnov" if metric == "ksPValue" else "chi-squared"
            message = (
                f"feature {found.name!r} drifted: the {test} test's p-value {value:.3g} is below "
                f"{bound:g} (PSI {found.psi:.4g})"
            )
        out.append(alert(AlertType.DRIFT_DETECTED, found.name, metric, value, None, bound, message))
    return out


def prediction_alert(
    found: FeatureDrift | None, what: str, thresholds: MonitorThresholds
) -> dict[str, Any] | None:
    if found is None or found.psi < thresholds.psi:
        return None
    return alert(
        AlertType.DRIFT_DETECTED,
        PREDICTION,
        "psi",
        found.psi,
        None,
        thresholds.psi,
        f"the model's predictions drifted: PSI {found.psi:.4g} of the {what} against the "
        f"training data, at or above the threshold {thresholds.psi:g}",
    )


_STREAMS = {SCORE: "the model's score", ERROR: "the model's per-row error"}


def adwin_alert(stream: Mapping[str, Any]) -> dict[str, Any] | None:
    """A change ADWIN found among the window's rows: in the score stream, DriftDetected
    (either way); in the error stream, PerformanceDegraded, when the error rose (a model that
    errs less is no alert)."""
    if not stream["changeDetected"]:
        return None
    first = stream["changes"][0]
    reference, current = stream["referenceMean"], stream["currentMean"]
    kind = AlertType.DRIFT_DETECTED
    if stream["stream"] == ERROR:
        if current is None or reference is None or current <= reference:
            return None
        kind = AlertType.PERFORMANCE_DEGRADED
    more = f" ({stream['changeCount']:,} changes in all)" if stream["changeCount"] > 1 else ""
    return alert(
        kind,
        stream["stream"],
        "adwin",
        current,
        reference,
        stream["delta"],
        f"ADWIN (delta {stream['delta']:g}) found a change in {_STREAMS[stream['stream']]} at "
        f"row {first['row']:,} of the window{more}: its mean over the last "
        f"{stream['currentRows']:,} values is {current:.4g}, against {reference:.4g} on the "
        "reference rows",
    )


# The fairness measures compared with their post-training value: (key, the way that is worse,
# its name in words).
BIAS_MEASURES = (
    ("disparateImpact", -1, "disparate impact"),
    ("statisticalParityDifference", +1, "statistical parity difference"),
    ("equalOpportunityDifference", +1, "equal opportunity difference"),
)


def spread_interval(
    rates: Mapping[str, tuple[float, int]], ratio: bool, confidence: float
) -> list[float] | None:
    """The interval of the spread between the lowest and the highest of some groups' rates
    (rate, rows it is over): of their ratio (Katz's log method) or their difference (Wald's,
    with Agresti and Caffo's adjustment).

    The two groups are the extremes of several, so the interval is widened for the number of
    group pairs (Bonferroni): with five groups the largest of ten differences is compared, and
    a 99.9% interval for one pair would be a much weaker claim for the largest. A rate of 0 or
    1 gets half a row added (Haldane), so that a group nobody is chosen from still has one.
    """
    from scipy.stats import norm

    usable = {name: (rate, n) for name, (rate, n) in rates.items() if n > 0 and rate is not None}
    if len(usable) < 2:
        return None
    low = min(usable, key=lambda name: usable[name][0])
    high = max(usable, key=lambda name: usable[name][0])
    pairs = len(usable) * (len(usable) - 1) / 2
    z = float(norm.ppf(1 - (1 - confidence) / (2 * pairs)))
    (r1, n1), (r2, n2) = usable[low], usable[high]
    if ratio:
        k1, k2 = r1 * n1, r2 * n2
        if k2 == 0:
            return None  # nobody chosen anywhere: no ratio
        if k1 in (0, n1) or k2 == n2:
            k1, k2, n1, n2 = k1 + 0.5, k2 + 0.5, n1 + 1, n2 + 1
        p1, p2 = k1 / n1, k2 / n2
        error = z * math.sqrt((1 - p1) / (n1 * p1) + (1 - p2) / (n2 * p2))
        # The lowest rate over the highest is at most 1, whatever the interval's arithmetic says.
        return [p1 / p2 * math.exp(-error), min(1.0, p1 / p2 * math.exp(error))]
    # Agresti and Caffo: one success and one failure added to each group. Wald's own interval
    # is empty for a rate of 0 or 1 (6 of 6 positives found), which would make any change look
    # established; this one keeps its coverage down to a handful of rows.
    k1, k2 = r1 * n1 + 1, r2 * n2 + 1
    m1, m2 = n1 + 2, n2 + 2
    p1, p2 = k1 / m1, k2 / m2
    error = z * math.sqrt(p1 * (1 - p1) / m1 + p2 * (1 - p2) / m2)
    return [max(-1.0, p2 - p1 - error), min(1.0, p2 - p1 + error)]


def fairness_changes(
    feature: str,
    window: Mapping[str, Any],
    baseline: FairnessBaseline | None,
    thresholds: MonitorThresholds,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per measure: the window's value next to the training one (a table's rows), and the
    BiasDrift alerts.

    A measure raises one when its change is established, not merely seen: the window's
    interval at `thresholds.confidence` (`<measure>Bounds`, see spread_interval) lies wholly on
    the harmful side of the training value (the change is no noise), and reaches the alert
    line, training value -/+ disparateImpactDrop / parityDifferenceRise (a change that large
    is not ruled out). A window's point value alone would cross the line by chance in small
    groups on stationary data, and, for a change of exactly the threshold, only every other
    window (bench/bench_monitor.py).
    """
    rows, alerts = [], []
    for key, worse, words in BIAS_MEASURES:
        value = window.get(key)
        interval = window.get(f"{key}Bounds")
        before = getattr(baseline, _snake(key)) if baseline is not None else None
        allowed = (
            thresholds.disparate_impact_drop if worse < 0 else thresholds.parity_difference_rise
        )
        bound = None if before is None else before + worse * allowed
        change = None if value is None or before is None else value - before
        crossed = False
        if interval is not None and before is not None and bound is not None:
            low, high = interval
            if worse < 0:
                crossed = high < before and low <= bound
            else:
                crossed = low > before and high >= bound
        rows.append(
            {
                "measure": key,
                "window": value,
                "interval": interval,
                "training": before,
                "change": change,
                "bound": bound,
                "crossed": crossed,
            }
        )
        if crossed:
            assert value is not None and before is not None and change is not None
            assert interval is not None
            direction = "fell" if change < 0 else "rose"
            side = "below" if worse < 0 else "above"
            alerts.append(
                alert(
                    AlertType.BIAS_DRIFT,
                    feature,
                    key,
                    value,
                    before,
                    bound,
                    f"{words} of {feature!r} {direction} from {before:.4g} after training to "
                    f"{value:.4g} in this window ({change:+.4g}); its "
                    f"{thresholds.confidence:.1%} interval {interval[0]:.4g} to "
                    f"{interval[1]:.4g} lies {side} the training value and reaches the alert "
                    f"line {bound:.4g} (a {'fall' if worse < 0 else 'rise'} of {allowed:g})",
                )
            )
    return rows, alerts


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def relative_worsening(value: float, baseline: float, greater_is_better: bool) -> float | None:
    """How much worse `value` is than `baseline`, as a share of |baseline| (negative: better)."""
    if baseline == 0:
        return None
    worse = baseline - value if greater_is_better else value - baseline
    return worse / abs(baseline)


def performance_bound(baseline: float, drop: float, greater_is_better: bool) -> float:
    return baseline - drop * abs(baseline) if greater_is_better else baseline + drop * abs(baseline)


def performance_alert(
    metric: str,
    value: float | None,
    baseline: float | None,
    greater_is_better: bool,
    drop: float,
    split: str | None,
) -> dict[str, Any] | None:
    if value is None or baseline is None:
        return None
    worse = relative_worsening(value, baseline, greater_is_better)
    if worse is None or worse <= drop:
        return None
    held_out = f"held-out {split}" if split else "held-out"
    return alert(
        AlertType.PERFORMANCE_DEGRADED,
        None,
        metric,
        value,
        baseline,
        performance_bound(baseline, drop, greater_is_better),
        f"{metric} on this window's labelled rows is {value:.4g}, {worse:.1%} worse than "
        f"{baseline:.4g} on the {held_out} data (allowed: {drop:.1%})",
    )


# -- the window in a few numbers ---------------------------------------------------------------
def summary(
    window: int,
    rows: int,
    newest_at: str | None,
    drifts: Mapping[str, FeatureDrift],
    thresholds: MonitorThresholds,
    prediction: FeatureDrift | None,
    fairness: Mapping[str, Mapping[str, Any]],
    score: float | None,
    alerts: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The WindowSummary of this window (camelCase, as the status keeps it)."""
    top = max(drifts.values(), key=lambda d: d.psi, default=None)
    found = WindowSummary(
        window=window,
        rows=rows,
        newest_data_at=newest_at,
        max_psi=finite(top.psi) if top else None,
        max_psi_feature=top.name if top else None,
        drifted_features=sum(drift_verdict(d, thresholds) is not None for d in drifts.values()),
        prediction_psi=finite(prediction.psi) if prediction else None,
        disparate_impact={f: finite(m.get("disparateImpact")) for f, m in fairness.items()},
        statistical_parity_difference={
            f: finite(m.get("statisticalParityDifference")) for f, m in fairness.items()
        },
        score=finite(score),
        alerts=list(dict.fromkeys(a["type"] for a in alerts)),
    )
    return found.model_dump(by_alias=True, exclude={"run_id", "finished_at"})


def history(before: Sequence[WindowSummary], current: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The windows before this one and this one, oldest first, the last MAX_HISTORY; an earlier
    attempt at this same window (a retry) is replaced."""
    kept = [
        w.model_dump(by_alias=True, exclude_none=True)
        for w in before
        if w.window != current["window"]
    ]
    return [*kept, dict(current)][-MAX_HISTORY:]


def finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def plain(value: Any) -> Any:
    """A result made JSON-safe: numpy scalars as Python numbers, NaN and infinities as None."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

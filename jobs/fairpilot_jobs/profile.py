"""The profile stage: what is in the table, what to predict, and what looks wrong.

Profiling follows the seed's profiler (rows, columns, types, missing values, automatic target
detection) and adds the checks a data scientist does before training: constant and ID-like
columns, heavy missingness, and columns that give the label away.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fairpilot.api import ProfileJobSpec, TaskType
from fairpilot.artifacts import ArtifactStore
from fairpilot.errors import JobError
from fairpilot_jobs.tables import read_table, require_columns

log = logging.getLogger(__name__)

TOP_CATEGORIES = 10
HIGH_MISSING = 0.5
HISTOGRAM_BINS = 20
ZERO_INFLATED = 0.5  # a numeric column this share of whose values are 0 gets a warning
ASSOCIATION_LEVELS = 50  # categories kept per column for Cramér's V (the rest pooled)
LEAKAGE_PURITY = 0.99
LEAKAGE_CORRELATION = 0.95
MAX_MULTICLASS = 20

# Names that usually mean "this is what we predict", most telling first.
_TARGET_NAMES = re.compile(
    r"^(target|label|labels|class|y|outcome|result|response|income|churn|churned|default|"
    r"survived|fraud|is_fraud|diagnosis|two_year_recid|credit_risk|approved|price|salary)$",
    re.IGNORECASE,
)
_ID_NAMES = re.compile(r"(^id$|_id$|^id_|uuid|guid|^index$|^unnamed: ?0$)", re.IGNORECASE)


@dataclass
class ColumnProfile:
    name: str
    kind: str  # numeric, boolean, categorical, datetime, text
    dtype: str
    missing: int
    distinct: int
    numeric: dict[str, float] | None = None
    top_categories: list[dict[str, Any]] = field(default_factory=list)
    histogram: dict[str, list[float] | list[int]] | None = None

    def to_dict(self, rows: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.kind,
            "dtype": self.dtype,
            "missing": self.missing,
            "missingFraction": self.missing / rows if rows else 0.0,
            "distinct": self.distinct,
        }
        if self.numeric is not None:
            out["numeric"] = self.numeric
        if self.top_categories:
            out["topCategories"] = self.top_categories
        if self.histogram is not None:
            out["histogram"] = self.histogram
        return out


def profile_column(series: pd.Series) -> ColumnProfile:
    missing = int(series.isna().sum())
    non_null = series.dropna()
    distinct = int(non_null.nunique())
    kind = _column_kind(series, non_null, distinct)
    profile = ColumnProfile(str(series.name), kind, str(series.dtype), missing, distinct)
    if kind == "numeric" and len(non_null):
        values = non_null.astype("float64")
        quantiles = values.quantile([0.25, 0.5, 0.75]).to_numpy()
        profile.numeric = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()),
            "p25": float(quantiles[0]),
            "median": float(quantiles[1]),
            "p75": float(quantiles[2]),
            "max": float(values.max()),
            "zeros": int((values == 0).sum()),
        }
        profile.histogram = histogram(values.to_numpy())
    if kind in ("categorical", "boolean", "text") or (kind == "numeric" and distinct <= 10):
        counts = non_null.astype(str).value_counts().head(TOP_CATEGORIES)
        total = len(series)
        profile.top_categories = [
            {"value": value, "count": int(count), "fraction": float(count) / total}
            for value, count in counts.items()
        ]
    return profile


def histogram(values: np.ndarray, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """Counts of the finite values in at most `bins` equal-width bins (`edges` has one more
    entry than `counts`); whole numbers spanning fewer than `bins` values get one bin each."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"edges": [], "counts": []}
    low, high = float(finite.min()), float(finite.max())
    edges: Any = bins
    if np.all(np.mod(finite, 1) == 0) and high - low < bins:
        edges = np.arange(low - 0.5, high + 1.5)
    counts, found = np.histogram(finite, bins=edges)
    return {"edges": [float(e) for e in found], "counts": [int(c) for c in counts]}


def cramers_v(feature: pd.Series, target: pd.Series) -> float:
    """Cramér's V of two categorical columns (no bias correction), rows with both present;
    the `ASSOCIATION_LEVELS` most frequent categories of each kept, the rest pooled."""
    pair = pd.DataFrame({"x": _pooled(feature), "y": _pooled(target)}).dropna()
    table = pd.crosstab(pair["x"], pair["y"]).to_numpy(dtype="float64")
    if min(table.shape) < 2:
        return 0.0
    total = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / (total * (min(table.shape) - 1))))


def correlation_ratio(categories: pd.Series, values: pd.Series) -> float:
    """The correlation ratio η of a numeric column over the groups of a categorical one:
    the square root of the share of its variance between the groups."""
    pair = pd.DataFrame({"g": _pooled(categories), "v": values.astype("float64")}).dropna()
    if len(pair) < 2:
        return 0.0
    mean = pair["v"].mean()
    total = float(((pair["v"] - mean) ** 2).sum())
    if total == 0:
        return 0.0
    grouped = pair.groupby("g", observed=True)["v"]
    between = float((grouped.count() * (grouped.mean() - mean) ** 2).sum())
    return float(np.sqrt(between / total))


def _pooled(series: pd.Series) -> pd.Series:
    strings = series.astype("string")
    top = strings.value_counts().index[:ASSOCIATION_LEVELS]
    return strings.where(strings.isin(top) | strings.isna(), "(other)")


def target_associations(
    frame: pd.DataFrame, profiles: list[ColumnProfile], target: str, task: TaskType
) -> list[dict[str, Any]]:
    """How strongly each column goes with the target, strongest first: Cramér's V between
    categorical columns, the correlation ratio η between a numeric and a categorical one,
    Pearson's r (its absolute value ranks it) between numeric ones. All lie in [0, 1] (r in
    [-1, 1]); 0 is no association."""
    label = frame[target]
    numeric_target = task is TaskType.REGRESSION and pd.api.types.is_numeric_dtype(label)
    found = []
    for profile in profiles:
        if profile.name == target or profile.distinct <= 1 or profile.kind in ("datetime", "text"):
            continue
        series = frame[profile.name]
        numeric = profile.kind == "numeric"
        if numeric and numeric_target:
            pair = pd.DataFrame({"x": series, "y": label}).astype("float64").dropna()
            value = float(pair["x"].corr(pair["y"])) if len(pair) > 1 else 0.0
            measure = "pearson r"
        elif numeric:
            value, measure = correlation_ratio(label, series), "correlation ratio η"
        elif numeric_target:
            value, measure = correlation_ratio(series, label), "correlation ratio η"
        else:
            value, measure = cramers_v(series, label), "Cramér's V"
        if np.isfinite(value):
            found.append({"column": profile.name, "measure": measure, "value": value})
    return sorted(found, key=lambda item: -abs(item["value"]))


def _column_kind(series: pd.Series, non_null: pd.Series, distinct: int) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_numeric_dtype(series):
        return "boolean" if distinct == 2 and set(non_null.unique()) <= {0, 1} else "numeric"
    strings = non_null.astype(str)
    if distinct == 2 and set(strings.str.lower().unique()) <= {"true", "false", "yes", "no"}:
        return "boolean"
    sample = strings.head(200)
    if len(sample) and _looks_like_dates(sample):
        return "datetime"
    if len(sample) and sample.str.len().mean() > 40 and distinct > 0.5 * len(non_null):
        return "text"
    return "categorical"


def _looks_like_dates(sample: pd.Series) -> bool:
    if not sample.str.contains(r"\d{4}|\d{1,2}[/-]\d{1,2}", regex=True).all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= 0.9)


def infer_task_type(label: pd.Series) -> tuple[TaskType, str]:
    """Task type of a label column, with the reason in words."""
    non_null = label.dropna()
    distinct = int(non_null.nunique())
    if distinct <= 1:
        return TaskType.BINARY, "the label has a single value"
    numeric = pd.api.types.is_numeric_dtype(label) and not pd.api.types.is_bool_dtype(label)
    if distinct == 2:
        return TaskType.BINARY, "the label has exactly two values"
    if not numeric:
        return TaskType.MULTICLASS, f"the label is categorical with {distinct} values"
    integral = bool(np.all(np.mod(non_null.to_numpy(dtype="float64"), 1) == 0))
    if integral and distinct <= MAX_MULTICLASS:
        return TaskType.MULTICLASS, f"the label holds {distinct} whole-number values"
    return TaskType.REGRESSION, f"the label is numeric with {distinct} distinct values"


def _is_id_like(profile: ColumnProfile, rows: int) -> bool:
    if _ID_NAMES.search(profile.name) and profile.distinct >= 0.9 * (rows - profile.missing):
        return True
    unique_everywhere = rows > 20 and profile.missing == 0 and profile.distinct == rows
    integral_or_string = profile.kind in ("categorical", "text") or (
        profile.numeric is not None and profile.dtype.startswith(("int", "uint"))
    )
    return unique_everywhere and integral_or_string


def suggest_target(
    frame: pd.DataFrame, profiles: list[ColumnProfile]
) -> tuple[str, list[str], list[dict[str, Any]]]:
    """Score every column as a target; returns the best, its reasons, and the ranking."""
    rows = len(frame)
    last = frame.columns[-1]
    ranking: list[dict[str, Any]] = []
    for profile in profiles:
        score = 0.0
        reasons: list[str] = []
        if _TARGET_NAMES.match(profile.name):
            score += 3
            reasons.append(f"its name '{profile.name}' is a usual name for a label")
        if profile.name == last:
            score += 1
            reasons.append("it is the last column, where labels usually are")
        if 2 <= profile.distinct <= MAX_MULTICLASS:
            score += 1.5
            reasons.append(f"it has few distinct values ({profile.distinct}), like a class label")
        if profile.missing == 0:
            score += 0.5
            reasons.append("it has no missing values")
        if profile.distinct <= 1:
            score -= 5
            reasons.append("it is constant")
        if _is_id_like(profile, rows):
            score -= 5
            reasons.append("it looks like an identifier")
        if profile.kind in ("text", "datetime"):
            score -= 3
            reasons.append(f"it is a {profile.kind} column")
        ranking.append({"column": profile.name, "score": score, "reasons": reasons})
    ranking.sort(key=lambda item: -item["score"])
    best = ranking[0]
    return best["column"], best["reasons"], ranking[:5]


def leakage_candidates(frame: pd.DataFrame, target: str, task: TaskType) -> list[dict[str, Any]]:
    """Columns that predict the label (almost) perfectly on their own: likely leaks."""
    label = frame[target]
    keep = label.notna().to_numpy()
    found: list[dict[str, Any]] = []
    if not keep.any():
        return found  # a (suggested) target with no value: nothing to leak
    if task is TaskType.REGRESSION:
        y = label.to_numpy(dtype="float64")[keep]
        for column in frame.columns:
            series = frame[column]
            if column == target or not pd.api.types.is_numeric_dtype(series):
                continue
            x = series.to_numpy(dtype="float64")[keep]
            ok = ~np.isnan(x)
            if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
                continue
            corr = float(np.corrcoef(x[ok], y[ok])[0, 1])
            if abs(corr) >= LEAKAGE_CORRELATION:
                found.append(
                    {"column": column, "evidence": f"correlation {corr:.3f} with {target}"}
                )
        return found
    label_codes, label_values = pd.factorize(label[keep])
    n_labels = len(label_values)
    majority = np.bincount(label_codes).max() / len(label_codes)
    if majority >= LEAKAGE_PURITY:
        return found  # a label this skewed is predicted by anything
    for column in frame.columns:
        if column == target:
            continue
        codes, uniques = pd.factorize(frame[column][keep], use_na_sentinel=False)
        if len(uniques) > 0.5 * len(codes):
            continue  # an ID predicts anything on the rows it has seen
        joint = np.bincount(codes * n_labels + label_codes, minlength=len(uniques) * n_labels)
        purity = joint.reshape(len(uniques), n_labels).max(axis=1).sum() / len(codes)
        if purity >= LEAKAGE_PURITY:
            found.append(
                {
                    "column": column,
                    "evidence": f"its values alone predict {target} for {purity:.1%} of rows",
                }
            )
    return found


def profile_frame(frame: pd.DataFrame, spec: ProfileJobSpec) -> dict[str, Any]:
    """The whole profile as a JSON-ready dict (the stage result minus report and artifacts)."""
    rows = len(frame)
    named = {c: "sensitiveFeatures" for c in spec.sensitive_features}
    if spec.target:
        named[spec.target] = "target"
    require_columns(frame, named)
    if spec.target and frame[spec.target].dropna().empty:
        raise JobError("EmptyLabel", f"target {spec.target!r} has no values")
    profiles = [profile_column(frame[column]) for column in frame.columns]
    by_name = {p.name: p for p in profiles}

    ranking: list[dict[str, Any]]
    if spec.target:
        target, target_reasons, ranking = spec.target, ["given in the Dataset spec"], []
    else:
        target, target_reasons, ranking = suggest_target(frame, profiles)
    inferred_task, task_reason = infer_task_type(frame[target])
    task = spec.task_type or inferred_task
    if spec.task_type:
        task_reason = "given in the Dataset spec"

    warnings: list[dict[str, str]] = []
    for profile in profiles:
        if profile.distinct <= 1:
            warnings.append(
                _warning(
                    "ConstantColumn", profile.name, "has a single value; it carries no information"
                )
            )
        elif profile.name != target and _is_id_like(profile, rows):
            warnings.append(
                _warning(
                    "IdLikeColumn",
                    profile.name,
                    "looks like an identifier; exclude it from training",
                )
            )
        if rows and profile.missing / rows >= HIGH_MISSING:
            warnings.append(
                _warning(
                    "HighMissingness", profile.name, f"is {profile.missing / rows:.0%} missing"
                )
            )
        numbers = profile.numeric
        nonzero_rows = rows - profile.missing
        if numbers and profile.distinct > 1 and nonzero_rows:
            share = numbers["zeros"] / nonzero_rows
            if share >= ZERO_INFLATED:
                warnings.append(
                    _warning(
                        "ZeroInflated",
                        profile.name,
                        f"is 0 in {share:.1%} of its rows: consider a 'is zero' flag or "
                        "a model that handles the spike",
                    )
                )
    for leak in leakage_candidates(frame, target, task):
        warnings.append(
            _warning(
                "LabelLeakageCandidate", leak["column"], f"may leak the label: {leak['evidence']}"
            )
        )
    target_profile = by_name[target]
    if task is not TaskType.REGRESSION and target_profile.top_categories:
        minority = min(item["fraction"] for item in target_profile.top_categories)
        if minority < 0.05:
            warnings.append(
                _warning("ClassImbalance", target, f"rarest class is only {minority:.1%} of rows")
            )

    duplicates = int(frame.duplicated().sum())
    if duplicates:
        warnings.append(
            {
                "type": "DuplicateRows",
                "column": "",
                "message": f"{duplicates:,} rows ({duplicates / rows:.1%}) repeat an earlier row "
                "exactly: they weigh twice in training and may leak between train and test",
            }
        )
    sensitive = {feature: by_name[feature].top_categories for feature in spec.sensitive_features}
    return {
        "rows": rows,
        "columns": frame.shape[1],
        "duplicateRows": duplicates,
        "memoryBytes": int(frame.memory_usage(deep=True).sum()),
        "columnProfiles": [p.to_dict(rows) for p in profiles],
        "suggestion": {
            "target": target,
            "targetReasons": target_reasons,
            "taskType": str(task),
            "taskTypeReason": task_reason,
            "candidates": ranking,
        },
        "sensitiveFeatures": sensitive,
        "targetAssociation": target_associations(frame, profiles, target, task),
        "warnings": warnings,
    }


def _warning(kind: str, column: str, text: str) -> dict[str, str]:
    return {"type": kind, "column": column, "message": f"column {column!r} {text}"}


def run_profile(spec: ProfileJobSpec, store: ArtifactStore) -> dict[str, Any]:
    from fairpilot_jobs.reports.html import pipeline_links
    from fairpilot_jobs.reports.profile_report import build_profile_report

    frame = read_table(spec)
    log.info("profiling %d rows x %d columns", *frame.shape)
    result = profile_frame(frame, spec)
    here = store.root.child("report.html").uri
    links = pipeline_links(spec.pipeline_index, here, "Profile")
    report = build_profile_report(result, spec, links)
    result["reports"] = {"profile": store.write_text("report.html", report, "text/html")}
    result["dataset"] = {"uri": spec.uri, "format": str(spec.format) if spec.format else None}
    return result

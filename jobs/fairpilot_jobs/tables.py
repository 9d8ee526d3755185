"""Reading datasets (CSV, Parquet, JSON lines) into pandas, with errors a person can act on."""

from __future__ import annotations

import pandas as pd

from fairpilot.api.common import DataFormat, DataLocation
from fairpilot_jobs import artifacts
from fairpilot_jobs.errors import JobError

_EXTENSIONS = {
    ".csv": DataFormat.CSV,
    ".csv.gz": DataFormat.CSV,
    ".txt": DataFormat.CSV,
    ".parquet": DataFormat.PARQUET,
    ".pq": DataFormat.PARQUET,
    ".jsonl": DataFormat.JSONL,
    ".ndjson": DataFormat.JSONL,
    ".json": DataFormat.JSONL,
    ".jsonl.gz": DataFormat.JSONL,
}


def infer_format(uri: str) -> DataFormat:
    lower = uri.lower()
    for extension, fmt in sorted(_EXTENSIONS.items(), key=lambda item: -len(item[0])):
        if lower.endswith(extension):
            return fmt
    raise JobError(
        "UnknownFormat",
        f"cannot tell the format of {uri} from its name; set format to csv, parquet or jsonl",
    )


def read_table(location: DataLocation, *, what: str = "dataset") -> pd.DataFrame:
    """Read a whole table; raises JobError for a missing, unreadable or empty one."""
    fmt = location.format or infer_format(location.uri)
    try:
        with artifacts.local_file(location.uri) as path:
            frame = _read(path, fmt)
    except JobError as exc:
        if exc.reason == "NotFound":
            raise JobError("DatasetNotFound", f"{what} {location.uri} does not exist") from exc
        raise
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JobError(
            "UnreadableData", f"{what} {location.uri} is not readable as {fmt}: {first_line}"
        ) from exc
    except Exception as exc:  # pyarrow raises its own types for corrupt Parquet files
        raise JobError(
            "UnreadableData", f"{what} {location.uri} is not readable as {fmt}: {exc}"
        ) from exc
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise JobError(
            "EmptyTable",
            f"{what} {location.uri} has {frame.shape[0]} rows and {frame.shape[1]} columns",
        )
    frame.columns = [str(column) for column in frame.columns]
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise JobError("DuplicateColumns", f"{what} {location.uri} repeats columns {duplicated}")
    return frame


def _read(path, fmt: DataFormat) -> pd.DataFrame:
    if fmt is DataFormat.CSV:
        try:
            # `?` is the UCI convention for missing values (Adult, German credit...).
            return pd.read_csv(path, skipinitialspace=True, na_values=["?"], low_memory=False)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()
    if fmt is DataFormat.PARQUET:
        return pd.read_parquet(path)
    return pd.read_json(path, lines=True)


def require_columns(frame: pd.DataFrame, columns: dict[str, str], *, what: str = "dataset") -> None:
    """Fail with the list of existing columns when a named column is missing.

    `columns` maps each column to the spec field that named it, so the message says where the
    wrong name came from.
    """
    for column, field in columns.items():
        if column not in frame.columns:
            existing = ", ".join(map(str, frame.columns[:50]))
            more = f" (and {len(frame.columns) - 50} more)" if len(frame.columns) > 50 else ""
            reason = (
                "SensitiveFeatureNotFound" if field.startswith("sensitive") else "ColumnNotFound"
            )
            if field == "target":
                reason = "TargetNotFound"
            raise JobError(
                reason,
                f"{field} {column!r} is not a column of the {what}; columns are: {existing}{more}",
            )

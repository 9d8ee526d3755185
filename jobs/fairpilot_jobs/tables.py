"""Reading datasets (CSV, Parquet, JSON lines) into pandas, with errors a person can act on."""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import lzma
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pandas as pd

from fairpilot.api.common import DataFormat, DataLocation
from fairpilot_jobs import artifacts
from fairpilot_jobs.errors import JobError

MAX_COLUMNS_ENV = "FAIRPILOT_MAX_COLUMNS"
# AutoGluon and SHAP on more than this many features need more than a stage's pod has; wider
# tables are almost always a mistake (a transposed file, a one-hot encoding gone wrong).
DEFAULT_MAX_COLUMNS = 10_000
HEADER_BYTES_PER_COLUMN = 1024

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


def max_columns() -> int:
    """The widest table a stage reads (FAIRPILOT_MAX_COLUMNS, default 10,000)."""
    try:
        return max(1, int(os.environ.get(MAX_COLUMNS_ENV, DEFAULT_MAX_COLUMNS)))
    except ValueError:
        return DEFAULT_MAX_COLUMNS


def read_table(location: DataLocation, *, what: str = "dataset") -> pd.DataFrame:
    """Read a whole table; raises JobError for a missing, unreadable or empty one."""
    # Where before what: a URI that may not be read is refused as such, whatever its name.
    artifacts.parse_uri(location.uri)
    fmt = location.format or infer_format(location.uri)
    try:
        with artifacts.local_file(location.uri) as path:
            _check_header(path, fmt, location.uri, what)
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


def _opener(path: Path) -> Callable[..., IO[bytes]]:
    # pandas decompresses by extension; the header is read the same way.
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open
    if suffix == ".bz2":
        return bz2.open
    if suffix == ".xz":
        return lzma.open
    return open


def _first_line(path: Path, limit: int, where: str) -> bytes:
    with _opener(path)(path, "rb") as handle:
        line = handle.readline(limit + 1)
    if len(line) > limit and not line.endswith(b"\n"):
        raise JobError(
            "HeaderTooLarge",
            f"{where}: the first line is longer than {limit} bytes; a header of at most "
            f"{max_columns()} columns ({MAX_COLUMNS_ENV}) is expected",
        )
    return line


def _check_header(path: Path, fmt: DataFormat, uri: str, what: str) -> None:
    """Count the columns before pandas reads the body: a file of a million columns (or binary
    data) would otherwise take the memory and minutes before any error could be given."""
    limit = max_columns()
    if fmt is DataFormat.PARQUET:
        try:
            import pyarrow.parquet as pq

            count = len(pq.ParquetFile(path).schema_arrow.names)
        except Exception:
            return  # not Parquet at all: pandas says so, with its own words, below
    else:
        # Names are rarely longer than 256 characters (the specs' own limit for a column).
        line = _first_line(path, HEADER_BYTES_PER_COLUMN * limit, f"{what} {uri}")
        try:
            text = line.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise JobError(
                "UnreadableData",
                f"{what} {uri} is not UTF-8 text (byte {exc.start} of the first line: "
                f"{exc.reason}); save it as UTF-8 {fmt}",
            ) from None
        if "\x00" in text:
            raise JobError(
                "UnreadableData", f"{what} {uri} holds NUL bytes: binary data, not {fmt} text"
            )
        if fmt is DataFormat.JSONL:
            try:
                record = json.loads(text) if text.strip() else {}
            except (ValueError, RecursionError):
                return  # pandas gives the parse error below
            count = len(record) if isinstance(record, dict) else 0
        else:
            count = len(next(csv.reader([text]), []))
    if count > limit:
        raise JobError(
            "TooManyColumns",
            f"{what} {uri} has {count} columns, more than the limit of {limit} "
            f"({MAX_COLUMNS_ENV}); select the columns to learn from first",
        )


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

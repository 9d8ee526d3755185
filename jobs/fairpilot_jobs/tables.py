"""Reading datasets (CSV, Parquet, JSON lines) into pandas, with errors a person can act on.

Limits that hold under hostile data (each refusal is an input error: exit code 2):

* Compressed input (gzip, bz2, xz, zstd, zip, tar) is decompressed here, as a stream, counting
  bytes, never by pandas: pandas reads the decompressed stream with `compression=None`. Past
  `FAIRPILOT_MAX_DECOMPRESSED_BYTES` (default 4 GiB) the read stops: `DecompressedTooLarge`.
  The codec comes from the file's first bytes (a gzip file named .csv is still gzip), else
  from its name, as pandas' `compression="infer"` would take it. An archive (zip, tar) must
  hold exactly one file.
* Parquet: the footer's length is read from the last 8 bytes before pyarrow parses anything;
  a footer over `FAIRPILOT_MAX_PARQUET_METADATA_BYTES` (default 64 MiB) is refused
  (`ParquetMetadataTooLarge`), as is a file of more than `FAIRPILOT_MAX_PARQUET_ROW_GROUPS`
  row groups (default 100,000: `TooManyRowGroups`), one whose row groups declare more
  uncompressed bytes than the decompression limit, and one that decodes to more Arrow bytes
  than it (dictionary and run-length encoded pages expand without bound):
  `DecompressedTooLarge`.
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import gzip
import io
import json
import logging
import lzma
import os
import re
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any, cast

import pandas as pd

from fairpilot import artifacts
from fairpilot.api.common import DataFormat, DataLocation
from fairpilot.errors import JobError

log = logging.getLogger(__name__)

MAX_COLUMNS_ENV = "FAIRPILOT_MAX_COLUMNS"
# AutoGluon and SHAP on more than this many features need more than a stage's pod has; wider
# tables are almost always a mistake (a transposed file, a one-hot encoding gone wrong).
DEFAULT_MAX_COLUMNS = 10_000
HEADER_BYTES_PER_COLUMN = 1024

MAX_DECOMPRESSED_ENV = "FAIRPILOT_MAX_DECOMPRESSED_BYTES"
# The most bytes a stage decompresses (or, for Parquet, decodes) from one file. pandas holds
# 4.5 times a CSV's size for Adult-like columns (bench/bench_limits.py: 1 GiB of CSV, 4.8 GiB
# resident) and up to 17 times for rows of one-digit numbers, so 4 GiB of text is more than
# even a 16 GiB pod can parse: the limit refuses no table a stage could have read, and stops a
# bomb after seconds of decompression instead of hours (gzip reaches 1,000 to one, xz 7,000,
# bz2 nearly a million). In a pod of the default 4 GiB a bomb of short rows meets the memory
# limit first: lower this one with the pod's memory to get DecompressedTooLarge, not OOMKilled.
DEFAULT_MAX_DECOMPRESSED_BYTES = 4 * 2**30
MAX_PARQUET_METADATA_ENV = "FAIRPILOT_MAX_PARQUET_METADATA_BYTES"
# Real footers take about 100 bytes per column chunk (row groups x columns), and pyarrow holds
# about as many bytes of memory for them: 64 MiB is some 600,000 column chunks, e.g. 60 row
# groups of the widest table accepted, or 100,000 row groups of 6 columns.
DEFAULT_MAX_PARQUET_METADATA_BYTES = 64 * 2**20
MAX_ROW_GROUPS_ENV = "FAIRPILOT_MAX_PARQUET_ROW_GROUPS"
# Writers make row groups of 64 MiB to 1 GiB, or of about a million rows (pyarrow): 100,000 of
# them is terabytes. Only a file written a few rows at a time has that many, and reading one
# costs some 30 microseconds per row group and column before a value is used.
DEFAULT_MAX_ROW_GROUPS = 100_000

_CHUNK = 1 << 20  # bytes per read of a decompressed stream
_PARQUET_BATCH_ROWS = 65_536

_EXTENSIONS = {
    ".csv": DataFormat.CSV,
    ".txt": DataFormat.CSV,
    ".parquet": DataFormat.PARQUET,
    ".pq": DataFormat.PARQUET,
    ".jsonl": DataFormat.JSONL,
    ".ndjson": DataFormat.JSONL,
    ".json": DataFormat.JSONL,
}
# What a CSV or JSON lines file may come wrapped in (pandas' compression="infer" suffixes, and
# .tgz and its kind): suffix -> (codec, a tar archive inside); longest suffixes first.
_WRAPPERS: dict[str, tuple[str | None, bool]] = {
    ".tar.gz": ("gzip", True),
    ".tar.bz2": ("bz2", True),
    ".tar.xz": ("xz", True),
    ".tbz2": ("bz2", True),
    ".tgz": ("gzip", True),
    ".tbz": ("bz2", True),
    ".txz": ("xz", True),
    ".tar": (None, True),
    ".bz2": ("bz2", False),
    ".zst": ("zstd", False),
    ".zip": ("zip", False),
    ".gz": ("gzip", False),
    ".xz": ("xz", False),
}
# data.csv.gz, data.jsonl.zst...: the format from the name under the compression's suffix.
_ALL_EXTENSIONS = {
    **_EXTENSIONS,
    **{
        extension + suffix: fmt
        for extension, fmt in _EXTENSIONS.items()
        if fmt is not DataFormat.PARQUET
        for suffix, (_, tar) in _WRAPPERS.items()
        if not tar
    },
}


def infer_format(uri: str) -> DataFormat:
    lower = uri.lower()
    for extension, fmt in sorted(_ALL_EXTENSIONS.items(), key=lambda item: -len(item[0])):
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


_BYTES = re.compile(r"^\s*(\d+)\s*(?:([kmgt])(i?)b?|b?)\s*$", re.IGNORECASE)


def _byte_limit(env: str, default: int) -> int:
    """A byte count from the environment: 1073741824, 1Gi, 1GiB, or 1G and 1GB (10^9)."""
    raw = os.environ.get(env, "")
    if not raw.strip():
        return default
    match = _BYTES.match(raw)
    if match is None:
        log.warning("%s=%r is not a byte count; using %d", env, raw, default)
        return default
    number, unit, binary = int(match[1]), (match[2] or "").lower(), bool(match[3])
    power = " kmgt".index(unit) if unit else 0
    return max(1, number * (1024 if binary else 1000) ** power)


def max_decompressed_bytes() -> int:
    """The most bytes a stage decompresses, or decodes, from one dataset file
    (FAIRPILOT_MAX_DECOMPRESSED_BYTES, default 4 GiB)."""
    return _byte_limit(MAX_DECOMPRESSED_ENV, DEFAULT_MAX_DECOMPRESSED_BYTES)


def max_parquet_metadata_bytes() -> int:
    """The largest Parquet footer a stage parses (FAIRPILOT_MAX_PARQUET_METADATA_BYTES,
    default 64 MiB)."""
    return _byte_limit(MAX_PARQUET_METADATA_ENV, DEFAULT_MAX_PARQUET_METADATA_BYTES)


def max_row_groups() -> int:
    """The most row groups of a Parquet file a stage reads (FAIRPILOT_MAX_PARQUET_ROW_GROUPS,
    default 100,000)."""
    try:
        return max(1, int(os.environ.get(MAX_ROW_GROUPS_ENV, DEFAULT_MAX_ROW_GROUPS)))
    except ValueError:
        return DEFAULT_MAX_ROW_GROUPS


def _size(count: int) -> str:
    """4294967296 as "4,294,967,296 bytes (4 GiB)"."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count:,} bytes ({count / scale:.3g} {unit})"
    return f"{count:,} bytes"


def read_table(location: DataLocation, *, what: str = "dataset") -> pd.DataFrame:
    """Read a whole table; raises JobError for a missing, unreadable or empty one."""
    # Where before what: a URI that may not be read is refused as such, whatever its name.
    artifacts.parse_uri(location.uri)
    fmt = location.format or infer_format(location.uri)
    try:
        with artifacts.local_file(location.uri) as path:
            frame = _read(path, fmt, location.uri, what)
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


# -- compressed input -----------------------------------------------------------------------
def _too_large(where: str, limit: int, what: str = "decompresses") -> JobError:
    return JobError(
        "DecompressedTooLarge",
        f"{where} {what} to more than {_size(limit)}, the limit set by {MAX_DECOMPRESSED_ENV}: "
        "a compression bomb, or a table too large for a stage; if it is genuine, raise the "
        "limit together with the stage's memory",
    )


class _Budget(io.RawIOBase):
    """A read-only stream that passes another one's bytes through, counting them, and fails
    with `DecompressedTooLarge` once they pass the limit.

    The error is raised from `readinto`, and also remembered (`exceeded`): pandas' C parser
    re-raises what a read raised in its own way, so the caller checks the flag after any error.
    """

    def __init__(self, inner: IO[bytes], limit: int, where: str) -> None:
        super().__init__()
        self.inner = inner
        self.limit = limit
        self.where = where
        self.count = 0
        self.exceeded = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.exceeded:
            raise _too_large(self.where, self.limit)
        view = memoryview(buffer).cast("B")
        # Never ask for more than one byte past the limit: a bomb stops where the limit is.
        wanted = min(len(view), self.limit - self.count + 1)
        data = self.inner.read(wanted)
        count = len(data)
        view[:count] = data
        self.count += count
        if self.count > self.limit:
            self.exceeded = True
            raise _too_large(self.where, self.limit)
        return count


def _codec_of_bytes(head: bytes) -> str | None:
    """The compression a file's first bytes show, if any."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if re.match(rb"BZh[1-9](1AY&SY|\x17rE8P\x90)", head):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    return None


def _is_tar_header(block: bytes) -> bool:
    """Whether 512 bytes are a tar header: the ustar magic and a matching checksum."""
    if len(block) < 512 or block[257:262] != b"ustar":
        return False
    try:
        stored = int(block[148:156].split(b"\x00", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 8 * 32 + sum(block[156:512])


def _wrapper_of_name(path: Path) -> tuple[str | None, bool]:
    name = path.name.lower()
    for suffix, wrapper in _WRAPPERS.items():  # longest suffixes first
        if name.endswith(suffix):
            return wrapper
    return None, False


def _decoder(codec: str, raw: IO[bytes], where: str) -> IO[bytes]:
    if codec == "gzip":
        # A binary file object like BZ2File and LZMAFile; typeshed gives only those two an
        # IO[bytes] base.
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if codec == "bz2":
        return bz2.BZ2File(raw, mode="rb")
    if codec == "xz":
        return lzma.LZMAFile(raw, mode="rb")
    try:
        import zstandard  # what pandas uses for .zst

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    except ImportError:
        pass
    if sys.version_info >= (3, 14):
        try:
            from compression import zstd

            return zstd.ZstdFile(raw, mode="rb")
        except ImportError:
            pass
    raise JobError(
        "UnreadableData",
        f"{where} is zstd-compressed, which this image cannot read; use gzip, or "
        "decompress it first",
    )


@dataclasses.dataclass
class _Source:
    """What pandas reads: the file itself, or a bounded stream of its decompressed bytes."""

    data: Path | IO[bytes]
    where: str
    budgets: list[_Budget] = dataclasses.field(default_factory=list)
    archive: tarfile.TarFile | None = None

    def check(self) -> None:
        """After any error: was it the decompression limit?"""
        for budget in self.budgets:
            if budget.exceeded:
                raise _too_large(self.where, budget.limit) from None

    def finish(self) -> None:
        """After the member was read: a tar archive must hold no second file."""
        if self.archive is None:
            return
        while (member := self.archive.next()) is not None:
            if member.isreg():
                raise JobError(
                    "UnreadableData",
                    f"{self.where}: the tar archive holds more than one file "
                    f"({member.name!r} follows the first); it must hold exactly one",
                )


def _zip_member(stack: ExitStack, path: Path, where: str, limit: int) -> IO[bytes]:
    archive = stack.enter_context(zipfile.ZipFile(path))
    members = [
        info
        for info in archive.infolist()
        if not info.is_dir() and not info.filename.startswith("__MACOSX/")
    ]
    if len(members) != 1:
        listed = ", ".join(repr(m.filename) for m in members[:5])
        more = f" and {len(members) - 5} more" if len(members) > 5 else ""
        raise JobError(
            "UnreadableData",
            f"{where}: the zip archive holds {len(members)} files"
            f"{' (' + listed + more + ')' if members else ''}; it must hold exactly one",
        )
    if members[0].file_size > limit:  # as declared; the stream is counted all the same
        raise _too_large(where, limit)
    return stack.enter_context(archive.open(members[0]))


@contextmanager
def _opened(path: Path, where: str) -> Iterator[_Source]:
    """The data of a CSV or JSON lines file: `path` itself when it is plain, else a stream
    that decompresses it, bounded by `max_decompressed_bytes()`."""
    limit = max_decompressed_bytes()
    with open(path, "rb") as probe:
        head = probe.read(512)
    named_codec, tar = _wrapper_of_name(path)
    codec = _codec_of_bytes(head) or named_codec
    if codec is None and not tar and not _is_tar_header(head):
        yield _Source(path, where)
        return
    with ExitStack() as stack:
        source = _Source(path, where)
        stream: IO[bytes]
        if codec == "zip":
            stream = _zip_member(stack, path, where, limit)
        else:
            stream = stack.enter_context(open(path, "rb"))
            if codec is not None:
                decoded = stack.enter_context(_decoder(codec, stream, where))
                budget = _Budget(decoded, limit, where)
                source.budgets.append(budget)
                stream = io.BufferedReader(budget, _CHUNK)
            if not tar:  # a tar inside a .gz: pandas would parse its headers as text
                tar = _is_tar_header(stream.peek(512)[:512])  # type: ignore[attr-defined]
        if tar:
            archive = stack.enter_context(tarfile.open(fileobj=stream, mode="r|"))
            member = archive.next()
            while member is not None and not member.isreg():
                member = archive.next()
            if member is None:
                raise JobError("UnreadableData", f"{where}: the tar archive holds no file")
            extracted = archive.extractfile(member)
            assert extracted is not None  # a regular file
            budget = _Budget(extracted, limit, where)  # sparse members expand
            source.budgets.append(budget)
            stream = io.BufferedReader(budget, _CHUNK)
            source.archive = archive
        source.data = stream
        yield source


# -- reading ------------------------------------------------------------------------------
def _first_line(source: _Source, limit: int) -> bytes:
    with ExitStack() as stack:
        handle = (
            stack.enter_context(open(source.data, "rb"))
            if isinstance(source.data, Path)
            else source.data
        )
        line = handle.readline(limit + 1)
    if len(line) > limit and not line.endswith(b"\n"):
        raise JobError(
            "HeaderTooLarge",
            f"{source.where}: the first line is longer than {limit} bytes; a header of at most "
            f"{max_columns()} columns ({MAX_COLUMNS_ENV}) is expected",
        )
    return line


def _check_columns(count: int, where: str) -> None:
    limit = max_columns()
    if count > limit:
        raise JobError(
            "TooManyColumns",
            f"{where} has {count} columns, more than the limit of {limit} "
            f"({MAX_COLUMNS_ENV}); select the columns to learn from first",
        )


def _check_header(path: Path, fmt: DataFormat, where: str) -> None:
    """Count the columns before pandas reads the body: a file of a million columns (or binary
    data) would otherwise take the memory and minutes before any error could be given."""
    # Names are rarely longer than 256 characters (the specs' own limit for a column).
    with _opened(path, where) as source:
        line = _first_line(source, HEADER_BYTES_PER_COLUMN * max_columns())
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JobError(
            "UnreadableData",
            f"{where} is not UTF-8 text (byte {exc.start} of the first line: "
            f"{exc.reason}); save it as UTF-8 {fmt}",
        ) from None
    if "\x00" in text:
        raise JobError("UnreadableData", f"{where} holds NUL bytes: binary data, not {fmt} text")
    if fmt is DataFormat.JSONL:
        try:
            record = json.loads(text) if text.strip() else {}
        except (ValueError, RecursionError):
            return  # pandas gives the parse error below
        count = len(record) if isinstance(record, dict) else 0
    else:
        count = len(next(csv.reader([text]), []))
    _check_columns(count, where)


def _read(path: Path, fmt: DataFormat, uri: str, what: str) -> pd.DataFrame:
    where = f"{what} {uri}"
    if fmt is DataFormat.PARQUET:
        return _read_parquet(path, where)
    _check_header(path, fmt, where)
    with _opened(path, where) as source:
        try:
            frame = _parse_text(source.data, fmt)
        except JobError:
            raise
        except Exception:
            source.check()
            raise
        source.check()
        source.finish()
    return frame


def _parse_text(data: Path | IO[bytes], fmt: DataFormat) -> pd.DataFrame:
    # compression=None: whatever was compressed is decompressed, and counted, by _opened.
    if fmt is DataFormat.CSV:
        try:
            # `?` is the UCI convention for missing values (Adult, German credit...).
            return pd.read_csv(
                data, skipinitialspace=True, na_values=["?"], low_memory=False, compression=None
            )
        except pd.errors.EmptyDataError:
            return pd.DataFrame()
    return pd.read_json(data, lines=True, compression=None)


# -- Parquet ------------------------------------------------------------------------------
def _parquet_error(where: str, problem: str) -> JobError:
    return JobError("UnreadableData", f"{where} is not readable as parquet: {problem}")


def _parquet_file(path: Path, where: str) -> Any:
    """A `pyarrow.parquet.ParquetFile`, opened only once its footer passed the limits."""
    import pyarrow.parquet as pq

    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(4)
        handle.seek(max(0, size - 8))
        tail = handle.read(8)
    if size < 12 or head != b"PAR1" or tail[4:] not in (b"PAR1", b"PARE"):
        raise _parquet_error(where, "no PAR1 magic at both ends of the file")
    if tail[4:] == b"PARE":
        raise _parquet_error(where, "its footer is encrypted")
    footer = int.from_bytes(tail[:4], "little")
    if footer > size - 12:  # PAR1, the data, the footer, its length, PAR1
        raise _parquet_error(
            where, f"its footer claims {footer:,} bytes, more than the file's {size:,}"
        )
    metadata_limit = max_parquet_metadata_bytes()
    if footer > metadata_limit:
        raise JobError(
            "ParquetMetadataTooLarge",
            f"{where} has a footer (its metadata) of {_size(footer)}, more than the limit of "
            f"{_size(metadata_limit)} ({MAX_PARQUET_METADATA_ENV}); rewrite it with fewer, "
            "larger row groups",
        )
    groups_limit = max_row_groups()
    parquet = pq.ParquetFile(
        path,
        # No string or list in an accepted footer is longer than the footer, nor a list
        # longer than the row groups or the (leaf) columns we accept.
        thrift_string_size_limit=metadata_limit,
        thrift_container_size_limit=max(groups_limit, 10 * max_columns(), 1000),
    )
    try:
        metadata = parquet.metadata
        count = metadata.num_row_groups
        if count > groups_limit:
            raise JobError(
                "TooManyRowGroups",
                f"{where} has {count:,} row groups, more than the limit of {groups_limit:,} "
                f"({MAX_ROW_GROUPS_ENV}); rewrite it with fewer, larger row groups",
            )
        limit = max_decompressed_bytes()
        declared = sum(metadata.row_group(i).total_byte_size for i in range(count))
        if declared > limit:
            raise JobError(
                "DecompressedTooLarge",
                f"{where} declares {_size(declared)} of uncompressed data, more than "
                f"{_size(limit)}, the limit set by {MAX_DECOMPRESSED_ENV}; if it is genuine, "
                "raise the limit together with the stage's memory",
            )
    except BaseException:
        parquet.close()
        raise
    return parquet


def _read_parquet(path: Path, where: str) -> pd.DataFrame:
    """Read in batches, counting the bytes Arrow decodes: a page of a few bytes (one
    dictionary value repeated by run-length encoding) can stand for gigabytes, which neither
    the file's size nor its declared sizes show."""
    import pyarrow as pa

    limit = max_decompressed_bytes()
    parquet = _parquet_file(path, where)
    with parquet:
        schema = parquet.schema_arrow
        _check_columns(len(schema.names), where)
        batches, decoded = [], 0
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
            decoded += batch.nbytes
            if decoded > limit:
                raise _too_large(where, limit, "decodes")
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=batches[0].schema if batches else schema)
    del batches
    try:  # what pandas.read_parquet does with the table (string dtype option included)
        from pandas.io._util import arrow_table_to_pandas

        frame = arrow_table_to_pandas(table)
    except ImportError:  # another pandas version
        frame = table.to_pandas()
    metadata = table.schema.metadata or {}
    if b"PANDAS_ATTRS" in metadata:
        frame.attrs = json.loads(metadata[b"PANDAS_ATTRS"])
    return frame


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

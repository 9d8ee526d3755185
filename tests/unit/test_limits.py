"""Limits that hold under hostile data: compression bombs, Parquet footers and row groups that
would take the memory, and a sensitive feature with ten thousand groups.

Every refusal goes through the real `fairpilot-job` (exit code 2, the reason in error.json);
the limits are lowered through the environment so that the bombs stay small. No test here
measures time: a stage that would take minutes is stopped by `run_job`'s timeout instead.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.jobs import JobRun, run_job

from fairpilot.api.common import DataLocation
from fairpilot.errors import TRANSIENT_REASONS, JobError
from fairpilot_jobs import tables
from fairpilot_jobs.reports.bias_report import TOP_GROUPS, build_bias_report, shown_groups

LIMIT = "FAIRPILOT_MAX_DECOMPRESSED_BYTES"
ROWS = b"age,sex,income\n" + b"38,Male,>50K\n" * 800_000  # 10.4 MB of CSV text
SMALL = b"age,sex,income\n25,Female,<=50K\n38,Male,>50K\n52,Male,>50K\n41,Female,<=50K\n"


def _zip(data: bytes, *names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names or ("data.csv",):
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar(data: bytes, *names: str, mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name in names or ("data.csv",):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


WRAPPED = {
    "data.csv.gz": gzip.compress,
    "data.csv.bz2": bz2.compress,
    "data.csv.xz": lzma.compress,
    "data.csv.zip": _zip,
    "data.tar.gz": _tar,
    "gzip-named.csv": gzip.compress,  # pandas would not decompress it; it is still a bomb
}


def _fails(run: JobRun, reason: str, *words: str) -> dict[str, Any]:
    assert run.returncode == 2, run.stderr
    assert not (run.output / "result.json").exists()
    error = run.error
    assert error["reason"] == reason, error
    assert error["exitCode"] == 2
    for word in words:
        assert word in error["message"], error["message"]
    assert len(run.stderr.strip().splitlines()) == 1 and reason in run.stderr
    return error


def _read(path: Path, fmt: str | None = None) -> pd.DataFrame:
    return tables.read_table(DataLocation(uri=f"file://{path}", format=fmt))


def test_the_new_reasons_are_input_errors() -> None:
    reasons = {"DecompressedTooLarge", "ParquetMetadataTooLarge", "TooManyRowGroups"}
    assert not reasons & TRANSIENT_REASONS


# -- compression bombs ------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(WRAPPED))
def test_compression_bomb_is_refused_by_the_job(tmp_path: Path, name: str) -> None:
    bomb = tmp_path / name
    bomb.write_bytes(WRAPPED[name](ROWS))
    assert bomb.stat().st_size < len(ROWS) // 20
    fmt = {"format": "csv"} if name.endswith(".tar.gz") else {}
    run = run_job(
        "profile",
        {"uri": f"file://{bomb}", **fmt},
        tmp_path / "out",
        env={LIMIT: "1Mi"},
        timeout=120,
    )
    _fails(run, "DecompressedTooLarge", "1,048,576 bytes", LIMIT)


def test_bias_stage_refuses_a_bomb_too(tmp_path: Path) -> None:
    bomb = tmp_path / "adult.csv.gz"
    bomb.write_bytes(gzip.compress(ROWS))
    spec = {"dataset": {"uri": f"file://{bomb}"}, "target": "income", "sensitiveFeatures": ["sex"]}
    run = run_job("bias", spec, tmp_path / "out", env={LIMIT: "2000000"}, timeout=120)
    _fails(run, "DecompressedTooLarge", "2,000,000 bytes")


@pytest.mark.parametrize("name", list(WRAPPED))
def test_compressed_data_under_the_limit_reads_as_pandas_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # The decompressed bytes, a tar archive's headers and padding included.
    decompressed = len(_tar(SMALL, mode="w")) if "tar" in name else len(SMALL)
    monkeypatch.setenv(LIMIT, str(decompressed))  # exactly: allowed
    path = tmp_path / name
    path.write_bytes(WRAPPED[name](SMALL))
    frame = _read(path, "csv")
    expected = pd.read_csv(io.BytesIO(SMALL), skipinitialspace=True, na_values=["?"])
    pd.testing.assert_frame_equal(frame, expected)
    monkeypatch.setenv(LIMIT, str(decompressed - 1))  # one byte less: refused
    with pytest.raises(JobError) as refused:
        _read(path, "csv")
    assert refused.value.reason == "DecompressedTooLarge"


def test_json_lines_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"age": 38, "income": ">50K"}\n' * 200_000))
    monkeypatch.setenv(LIMIT, "1Mi")
    with pytest.raises(JobError) as refused:
        _read(path)
    assert refused.value.reason == "DecompressedTooLarge"
    monkeypatch.setenv(LIMIT, "100Mi")
    assert _read(path).shape == (200_000, 2)


def test_pandas_never_decompresses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data.csv.gz"
    path.write_bytes(gzip.compress(SMALL))
    seen = []
    original = pd.read_csv

    def spy(*args: Any, **kwargs: Any) -> pd.DataFrame:
        seen.append(kwargs.get("compression", "infer"))
        return original(*args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", spy)
    assert len(_read(path)) == 4
    assert seen == [None]


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("two.csv.zip", _zip(SMALL, "a.csv", "b.csv"), "holds 2 files ('a.csv', 'b.csv')"),
        ("empty.csv.zip", _zip(b"", "folder/"), "holds 0 files"),
        ("two.tar.gz", _tar(SMALL, "a.csv", "b.csv"), "more than one file"),
        ("none.csv.gz", b"\x1f\x8b\x08\x00" + b"\x00garbage" * 10, "not readable as csv"),
    ],
)
def test_archives_hold_one_file(tmp_path: Path, name: str, data: bytes, words: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(JobError) as refused:
        _read(path, "csv")
    assert refused.value.reason == "UnreadableData"
    assert words in refused.value.message


def test_a_zip_declaring_a_huge_member_is_refused_before_decompressing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.csv.zip"
    path.write_bytes(_zip(ROWS))
    monkeypatch.setenv(LIMIT, "1000")
    with pytest.raises(JobError) as refused:
        _read(path)
    assert refused.value.reason == "DecompressedTooLarge"


def test_a_tar_inside_a_gzip_is_read_as_its_one_file(tmp_path: Path) -> None:
    path = tmp_path / "data.csv.gz"
    path.write_bytes(gzip.compress(_tar(SMALL, mode="w")))
    assert list(_read(path).columns) == ["age", "sex", "income"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1048576", 2**20),
        ("1Mi", 2**20),
        ("4GiB", 4 * 2**30),
        ("2G", 2 * 10**9),
        ("500kb", 500_000),
        ("12 B", 12),
        ("lots", tables.DEFAULT_MAX_DECOMPRESSED_BYTES),
        ("", tables.DEFAULT_MAX_DECOMPRESSED_BYTES),
    ],
)
def test_limit_spellings(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    monkeypatch.setenv(LIMIT, value)
    assert tables.max_decompressed_bytes() == expected


def test_file_names_that_carry_a_compression_have_a_format() -> None:
    assert tables.infer_format("s3://b/adult.csv.bz2") is tables.DataFormat.CSV
    assert tables.infer_format("s3://b/events.jsonl.zst") is tables.DataFormat.JSONL
    assert tables.infer_format("s3://b/adult.CSV.ZIP") is tables.DataFormat.CSV


# -- Parquet --------------------------------------------------------------------------------
def test_too_many_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "many.parquet"
    pq.write_table(
        pa.table({"x": np.arange(3000), "y": np.arange(3000) % 2}), path, row_group_size=2
    )
    run = run_job(
        "profile",
        {"uri": f"file://{path}"},
        tmp_path / "out",
        env={"FAIRPILOT_MAX_PARQUET_ROW_GROUPS": "1000"},
        timeout=120,
    )
    _fails(run, "TooManyRowGroups", "1,500 row groups", "FAIRPILOT_MAX_PARQUET_ROW_GROUPS")


def test_crafted_footer_length_is_refused_before_pyarrow_parses_it(tmp_path: Path) -> None:
    # A 3 MiB "footer" of zeros: no Parquet writer made it, and nothing parses it.
    footer = 3 * 2**20
    path = tmp_path / "bomb.parquet"
    path.write_bytes(b"PAR1" + bytes(footer) + footer.to_bytes(4, "little") + b"PAR1")
    run = run_job(
        "profile",
        {"uri": f"file://{path}"},
        tmp_path / "out",
        env={"FAIRPILOT_MAX_PARQUET_METADATA_BYTES": "1Mi"},
        timeout=120,
    )
    _fails(run, "ParquetMetadataTooLarge", "3,145,728 bytes", "FAIRPILOT_MAX_PARQUET_METADATA")


def test_footer_length_beyond_the_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "liar.parquet"
    path.write_bytes(b"PAR1" + b"x" * 100 + (2**31).to_bytes(4, "little") + b"PAR1")
    with pytest.raises(JobError) as refused:
        _read(path)
    assert refused.value.reason == "UnreadableData"
    assert "more than the file's 112" in refused.value.message


def test_parquet_declaring_more_than_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"x": np.arange(200_000, dtype="int64")}), path)
    monkeypatch.setenv(LIMIT, "1Mi")  # 1.6 MB of int64 values, compressed to far less
    with pytest.raises(JobError) as refused:
        _read(path)
    assert refused.value.reason == "DecompressedTooLarge"
    assert "declares" in refused.value.message


def test_parquet_dictionary_bomb_is_stopped_while_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One 1,000-character value, 30,000 times: a few KB on disk, 30 MB once decoded, and
    # the declared uncompressed size shows only the dictionary and the run-length indices.
    path = tmp_path / "dictionary.parquet"
    pq.write_table(pa.table({"s": pa.array(["x" * 1000] * 30_000)}), path, use_dictionary=True)
    declared = pq.ParquetFile(path).metadata.row_group(0).total_byte_size
    monkeypatch.setenv(LIMIT, "5Mi")
    assert declared < 2**20
    with pytest.raises(JobError) as refused:
        _read(path)
    assert refused.value.reason == "DecompressedTooLarge"
    assert "decodes to more than" in refused.value.message


def test_parquet_under_the_limits_reads_as_pandas_would(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "k": pd.Categorical(["a", "b", None] * 40_000),
            "v": np.arange(120_000, dtype="int32"),
            "t": pd.date_range("2024-01-01", periods=120_000, freq="min", tz="UTC"),
            "s": ["x", None, "zz"] * 40_000,
        },
        index=pd.RangeIndex(120_000, name="row"),
    )
    path = tmp_path / "fine.parquet"
    frame.to_parquet(path, row_group_size=50_000)
    pd.testing.assert_frame_equal(_read(path), pd.read_parquet(path))


# -- a sensitive feature of 10,000 groups -----------------------------------------------------
def _many_groups(rows_per_big: int = 200, big: int = 20, small: int = 9980) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    zips = [f"big{i:02d}" for i in range(big) for _ in range(rows_per_big)]
    zips += [f"z{i:05d}" for i in range(small) for _ in range(2)]
    return pd.DataFrame(
        {
            "zip": zips,
            "sex": rng.choice(["Female", "Male"], len(zips)),
            "income": rng.choice(["<=50K", ">50K"], len(zips), p=[0.7, 0.3]),
        }
    )


def _first_cells(html: str, caption: str, after: str | None = None) -> list[str]:
    """The first cell of each row of the (first) table with this caption, in the section of
    the sensitive feature `after` when given."""
    offset = html.rindex(f"Sensitive feature: {after}") if after else 0  # past the contents
    start = html.index(f">{caption}", offset)
    table = html[start : html.index("</table>", start)]
    return re.findall(r"<tr><td>([^<]*)</td>", table)


def test_ten_thousand_groups_all_in_the_result_top_groups_in_the_report(tmp_path: Path) -> None:
    frame = _many_groups()
    data = tmp_path / "zips.csv"
    frame.to_csv(data, index=False)
    spec = {
        "dataset": {"uri": f"file://{data}"},
        "target": "income",
        "positiveLabel": ">50K",
        "sensitiveFeatures": ["zip", "sex"],
        "privilegedGroups": {"zip": "big07"},
    }
    # The timeout is a guard, not a measurement: the stage took many minutes before.
    run = run_job("bias", spec, tmp_path / "out", timeout=300)
    assert run.returncode == 0, run.stderr
    result = run.result
    zips = result["features"]["zip"]
    assert len(zips["groups"]) == 10_000
    assert len(zips["metrics"]) == 9_999  # every group but the privileged one
    assert sum(g["count"] for g in zips["groups"].values()) == len(frame)
    expected = frame.assign(y=frame["income"].eq(">50K")).groupby("zip")["y"].mean()
    for group in ("big00", "z00042", "z09979"):
        assert zips["groups"][group]["positiveRate"] == pytest.approx(expected[group])
    reweighing = Path(result["mitigation"]["uri"].removeprefix("file://")).read_text()
    assert '"z09979"' in reweighing

    html = Path(result["reports"]["bias"].removeprefix("file://")).read_text()
    shown = _first_cells(html, "Per-group counts and rates")
    assert len(shown) == TOP_GROUPS
    assert set(shown) == {f"big{i:02d}" for i in range(20)}
    assert shown[0] == "big07"  # the privileged group leads
    compared = _first_cells(html, "Metrics per group")
    assert len(compared) == TOP_GROUPS - 1 and "big07" not in compared
    assert "and 9,980 more groups (19,960 rows)" in html
    assert "all 10,000 groups and their metrics are in result.json" in html
    assert "z09979" not in html  # no small group on the page (but in findings or the summary)
    # The second feature, of two groups, is shown whole and without a summary.
    assert sorted(_first_cells(html, "Per-group counts and rates", after="sex")) == [
        "Female",
        "Male",
    ]


def test_report_caps_findings_and_prefers_the_groups_it_shows() -> None:
    groups = {f"g{i:04d}": {"count": 10 + i, "positiveRate": 0.5} for i in range(1000)}
    metrics = {g: {"LDI": 0.1, "DPL": 0.4} for g in groups if g != "g0999"}
    findings = [f"area={g}: LDI 0.100 is below 0.8" for g in metrics]
    result = {
        "target": "y",
        "positiveLabel": "yes",
        "positiveLabelReason": "given",
        "thresholds": {"disparateImpact": 0.8},
        "biasDetected": True,
        "findings": findings,
        "rows": sum(g["count"] for g in groups.values()),
        "predictionSource": None,
        "mitigation": {"uri": "file:///w.json"},
        "features": {
            "area": {
                "privilegedGroup": "g0999",
                "privilegedChosenBy": "spec",
                "groups": groups,
                "metrics": metrics,
            }
        },
    }
    shown, hidden = shown_groups(result["features"]["area"])
    # The privileged group is the largest: 20 groups in all.
    assert shown[0] == "g0999" and shown[1:] == [f"g{i:04d}" for i in range(998, 979, -1)]
    assert len(hidden) == 980
    html = build_bias_report(result)
    listed = re.findall(r"<li>area=(g\d{4}):", html)
    assert len(listed) == 25 and set(listed[:19]) == set(shown[1:])
    assert "And 974 more findings; all 999 are in result.json" in html
    assert "980 of the groups not shown fall below disparate impact 0.8" in html
    assert "shown are the 20 largest by row count, and 980 more groups" in html

"""The artifact store against the local disk and a real S3 API server (moto, over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fairpilot.api import DataLocation
from fairpilot_jobs import artifacts
from fairpilot_jobs.artifacts import ArtifactStore, parse_uri
from fairpilot_jobs.errors import JobError
from fairpilot_jobs.tables import read_table


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://example.com/x.csv", "only file:// and s3://"),
        ("file://relative/x.csv", "absolute path"),
        ("file:///data/../etc/passwd", "'..' is not allowed"),
        ("s3:///key-without-bucket", "need a bucket"),
    ],
)
def test_bad_uris_are_refused(uri: str, reason: str) -> None:
    with pytest.raises(JobError, match=reason) as caught:
        parse_uri(uri)
    assert caught.value.reason == "InvalidURI"


def test_allowed_root_confines_file_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(artifacts.ALLOWED_ROOT_ENV, str(tmp_path))
    assert parse_uri(f"file://{tmp_path}/a.csv").path == f"{tmp_path}/a.csv"
    with pytest.raises(JobError, match="outside the allowed root"):
        parse_uri("file:///etc/passwd")


def test_local_store_round_trip(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path}/out")
    uri = store.write_json("result.json", {"a": 1})
    assert artifacts.read_json(uri) == {"a": 1}
    assert not list((tmp_path / "out").glob(".*.tmp")), "temporary files are renamed away"
    store.delete("result.json")
    assert not artifacts.exists(uri)


def test_s3_store_round_trip(s3_client, tmp_path: Path) -> None:
    s3_client.create_bucket(Bucket="fairpilot-artifacts")
    store = ArtifactStore("s3://fairpilot-artifacts/users/u1/run-1")
    uri = store.write_json("result.json", {"rows": 3})
    assert uri == "s3://fairpilot-artifacts/users/u1/run-1/result.json"
    assert artifacts.read_json(uri) == {"rows": 3}
    assert artifacts.exists(uri)

    tree = tmp_path / "model"
    (tree / "sub").mkdir(parents=True)
    (tree / "predictor.pkl").write_bytes(b"\x00model")
    (tree / "sub" / "weights.bin").write_bytes(b"w" * 1000)
    store.upload_dir(tree, "model")
    with artifacts.local_dir(store.uri("model")) as local:
        assert (local / "predictor.pkl").read_bytes() == b"\x00model"
        assert (local / "sub" / "weights.bin").stat().st_size == 1000

    store.delete("result.json")
    assert not artifacts.exists(uri)


@pytest.mark.parametrize("where", ["file", "s3"])
def test_a_location_is_claimed_by_one_run_only(where: str, tmp_path: Path, request) -> None:
    """An empty location becomes the run's; only that run may write there again (a retry).
    Checked on the local disk and on a real S3 API server (If-None-Match)."""
    if where == "s3":
        request.getfixturevalue("s3_client").create_bucket(Bucket="fairpilot-claims")
        root = "s3://fairpilot-claims/u/runs"
    else:
        root = f"file://{tmp_path}/runs"
    first = ArtifactStore(f"{root}/a")
    first.claim("uid-1/g1")
    first.write_json("result.json", {"n": 1})
    ArtifactStore(f"{root}/a").claim("uid-1/g1")  # the same run's retry
    for other in ("uid-2/g1", "uid-1/g2", None):
        with pytest.raises(JobError) as refused:
            ArtifactStore(f"{root}/a").claim(other)
        assert refused.value.reason == "OutputNotEmpty"
    assert artifacts.read_json(f"{root}/a/result.json") == {"n": 1}
    # Exclusive creation: the second of two creators of one file learns it lost.
    store = ArtifactStore(f"{root}/b")
    assert store.create_exclusive("marker", b"one") is True
    assert store.create_exclusive("marker", b"two") is False
    assert artifacts.read_bytes(f"{root}/b/marker") == b"one"
    assert artifacts.names(root) == ["a", "b"]
    assert artifacts.names(f"{root}/a") == [".fairpilot-run.json", "result.json"]
    assert artifacts.names(f"{root}/nothing-here") == []


def test_s3_errors_are_clear(s3_client) -> None:
    s3_client.create_bucket(Bucket="fairpilot-errors")
    with pytest.raises(JobError, match="does not exist") as caught:
        artifacts.read_bytes("s3://fairpilot-errors/missing.csv")
    assert caught.value.reason == "NotFound"
    with pytest.raises(JobError, match="does not exist"):
        artifacts.read_bytes("s3://no-such-bucket-here/x.csv")
    with (
        pytest.raises(JobError, match="holds no files"),
        artifacts.local_dir("s3://fairpilot-errors/empty"),
    ):
        pass


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_read_table_from_s3_in_every_format(s3_client, tmp_path: Path, fmt: str) -> None:
    s3_client.create_bucket(Bucket=f"fairpilot-{fmt}")
    frame = pd.DataFrame({"age": [25, 38, 52], "sex": ["Female", "Male", "Male"], "y": [0, 1, 1]})
    path = tmp_path / f"d.{fmt}"
    {
        "csv": lambda: frame.to_csv(path, index=False),
        "parquet": lambda: frame.to_parquet(path),
        "jsonl": lambda: frame.to_json(path, orient="records", lines=True),
    }[fmt]()
    s3_client.upload_file(str(path), f"fairpilot-{fmt}", f"data/d.{fmt}")
    loaded = read_table(DataLocation(uri=f"s3://fairpilot-{fmt}/data/d.{fmt}"))
    pd.testing.assert_frame_equal(loaded.reset_index(drop=True), frame, check_dtype=False)


def test_format_can_be_given_when_the_name_does_not_tell(tmp_path: Path) -> None:
    path = tmp_path / "export.data"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(JobError, match="set format") as caught:
        read_table(DataLocation(uri=f"file://{path}"))
    assert caught.value.reason == "UnknownFormat"
    assert read_table(DataLocation(uri=f"file://{path}", format="csv")).shape == (1, 2)

"""The artifact store against the local disk and a real S3 API server (moto, over HTTP)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pandas as pd
import pytest

from fairpilot import artifacts
from fairpilot.api import DataLocation
from fairpilot.artifacts import ArtifactStore, parse_uri
from fairpilot.errors import JobError
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


# -- links planted on the local disk are never followed by a write ----------------------------
def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    return victim


def test_a_link_planted_as_the_output_folder_is_refused(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    (tmp_path / "out").symlink_to(victim)
    store = ArtifactStore(f"file://{tmp_path}/out")
    for attempt in (
        lambda: store.claim("uid/g1"),
        lambda: store.write_json("result.json", {"a": 1}),
        lambda: store.create_exclusive("marker", b"x"),
    ):
        with pytest.raises(JobError, match="symbolic link") as refused:
            attempt()
        assert refused.value.reason == "UnsafePath"
    assert list(victim.iterdir()) == [], "nothing was written through the link"


def test_a_link_planted_as_a_temporary_file_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    # The temporary name the store once used (predictable), and the target name itself.
    (out / ".result.json.tmp").symlink_to(victim)
    (out / "report.html").symlink_to(victim)
    store = ArtifactStore(f"file://{out}")
    store.write_json("result.json", {"a": 1})
    store.write_text("report.html", "<p>report</p>", "text/html")
    assert victim.read_text() == "precious"
    assert not (out / "result.json").is_symlink()
    assert json.loads((out / "result.json").read_text()) == {"a": 1}
    assert not (out / "report.html").is_symlink(), "the link is replaced, not written through"
    assert (out / "report.html").read_text() == "<p>report</p>"
    assert sorted(p.name for p in out.glob(".*.tmp")) == [".result.json.tmp"], "ours renamed"


def test_a_linked_folder_below_the_root_is_refused(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "reports").symlink_to(victim)
    store = ArtifactStore(f"file://{out}")
    for attempt in (
        lambda: store.write_text("reports/bias.html", "<p/>"),
        lambda: store.write_text("reports/deeper/bias.html", "<p/>"),
        lambda: store.create_exclusive("reports/marker", b"x"),
        lambda: store.delete("reports/anything"),
    ):
        with pytest.raises(JobError, match="symbolic link") as refused:
            attempt()
        assert refused.value.reason == "UnsafePath"
    assert list(victim.iterdir()) == []


def test_folders_below_the_file_root_are_never_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under FAIRPILOT_FILE_ROOT every folder is shared with other runs: a link there, even one
    that stays inside the root, would let one run write into another's folder."""
    root = tmp_path / "root"
    other = root / "other-user"
    other.mkdir(parents=True)
    (root / "me").symlink_to(other)
    monkeypatch.setenv(artifacts.ALLOWED_ROOT_ENV, str(root))
    store = ArtifactStore(f"file://{root}/me/run-1")
    with pytest.raises(JobError, match="symbolic link") as refused:
        store.claim("uid/g1")
    assert refused.value.reason == "UnsafePath"
    assert list(other.iterdir()) == []
    # A link at or above the file root is the administrator's, and is followed.
    (tmp_path / "admin-link").symlink_to(root)
    monkeypatch.setenv(artifacts.ALLOWED_ROOT_ENV, str(tmp_path / "admin-link"))
    ArtifactStore(f"file://{tmp_path}/admin-link/runs/run-2").write_json("result.json", {})
    assert (root / "runs" / "run-2" / "result.json").is_file()


def test_a_link_above_the_output_folder_is_the_callers(tmp_path: Path) -> None:
    """Without a file root the caller chose the path: links above the output folder (macOS's
    /tmp is one) are followed; the output folder and what is below it are checked."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    store = ArtifactStore(f"file://{tmp_path}/link/a/b/out")
    store.claim("uid/g1")
    store.write_json("deep/er/result.json", {"a": 1})
    written = tmp_path / "real" / "a" / "b" / "out" / "deep" / "er" / "result.json"
    assert json.loads(written.read_text()) == {"a": 1}


def test_create_exclusive_does_not_follow_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text('{"runId": "uid/g1"}')
    out = tmp_path / "out"
    out.mkdir()
    (out / ".fairpilot-run.json").symlink_to(victim)
    store = ArtifactStore(f"file://{out}")
    assert store.create_exclusive(".fairpilot-run.json", b"{}") is False
    # A marker that is a link is not this run's, whatever it points to.
    with pytest.raises(JobError) as refused:
        store.claim("uid/g1")
    assert refused.value.reason == "OutputNotEmpty"
    assert victim.read_text() == '{"runId": "uid/g1"}'


def test_own_documents_are_not_read_through_a_link(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").symlink_to(secret)
    with pytest.raises(JobError, match="symbolic link") as refused:
        artifacts.read_json(f"file://{out}/result.json")
    assert refused.value.reason == "UnsafePath"
    with pytest.raises(JobError) as refused:
        ArtifactStore(f"file://{out}").read_bytes("result.json")
    assert refused.value.reason == "UnsafePath"
    # Data may be a link (a laptop's dataset folder): read as it is.
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "linked.csv").symlink_to(tmp_path / "data.csv")
    assert read_table(DataLocation(uri=f"file://{tmp_path}/linked.csv")).shape == (1, 2)


@pytest.mark.parametrize("where", ["file", "s3"])
def test_an_own_document_larger_than_any_result_is_refused_unread(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A result.json of gigabytes was planted, not written by a stage: the operator refuses it
    by its size instead of reading it into memory (and takes it as no result)."""
    from fairpilot.controller.world import Reader

    huge = artifacts.MAX_DOCUMENT_BYTES + 1
    if where == "file":
        with open(tmp_path / "result.json", "wb") as file:
            file.truncate(huge)  # sparse: no disk used
        uri = f"file://{tmp_path}/result.json"
    else:
        client = request.getfixturevalue("s3_client")
        client.create_bucket(Bucket="fairpilot-huge")
        client.put_object(Bucket="fairpilot-huge", Key="out/result.json", Body=b" " * huge)
        uri = "s3://fairpilot-huge/out/result.json"
    with pytest.raises(JobError, match="more than FairPilot reads") as refused:
        artifacts.read_json(uri)
    assert refused.value.reason == "DocumentTooLarge"
    reader = Reader(cluster=None, namespace="ns", config=None)  # type: ignore[arg-type]
    assert reader.json(uri) is None  # the read of a stage result: no result


@pytest.mark.parametrize("where", ["file", "s3"])
def test_upload_dir_refuses_links_in_the_local_tree(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "stolen.bin").write_text("stolen")
    if where == "s3":
        request.getfixturevalue("s3_client").create_bucket(Bucket="fairpilot-upload")
        root = "s3://fairpilot-upload/runs/r1"
    else:
        root = f"file://{tmp_path}/out"
    store = ArtifactStore(root)
    for name, target in (("passwd", "/etc/passwd"), ("secret", secret), ("sub", outside)):
        tree = tmp_path / f"model-{name}"
        tree.mkdir()
        (tree / "predictor.pkl").write_bytes(b"model")
        (tree / name).symlink_to(target)
        with pytest.raises(JobError, match="symbolic link") as refused:
            store.upload_dir(tree, f"model-{name}")
        assert refused.value.reason == "UnsafePath"
        assert not artifacts.exists(store.uri(f"model-{name}/{name}"))
        assert not artifacts.exists(store.uri(f"model-{name}/sub/stolen.bin"))


# -- S3 keys never write outside the download folder ------------------------------------------
def test_s3_keys_are_normalised_inside_the_download_folder(s3_client, tmp_path: Path) -> None:
    s3_client.create_bucket(Bucket="fairpilot-keys")
    put = lambda key, body=b"x": s3_client.put_object(  # noqa: E731
        Bucket="fairpilot-keys", Key=key, Body=body
    )
    put("m1/predictor.pkl", b"model")
    put("m1/./sub/a.bin", b"a")
    put("m1/empty//b.bin", b"b")
    put("m1/folder/")  # a "folder" made in a console: no file
    put(f"m1/{tmp_path}/escaped", b"escaped")  # `m1//tmp/...`: absolute after the prefix
    with artifacts.local_dir("s3://fairpilot-keys/m1") as local:
        files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
        assert (local / "predictor.pkl").read_bytes() == b"model"
        assert (local / "sub" / "a.bin").read_bytes() == b"a"
        assert (local / "empty" / "b.bin").read_bytes() == b"b"
        inside = f"{tmp_path}/escaped".lstrip("/")
        assert files == sorted(["predictor.pkl", "sub/a.bin", "empty/b.bin", inside])
    assert not (tmp_path / "escaped").exists(), "an absolute key stays in the download folder"


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        (["m/../x.bin"], "'..'"),
        (["m/a/../../x.bin"], "'..'"),
        (["m/a//b.bin", "m/a/b.bin"], "same file"),
        (["m/a/./b.bin", "m/a/b.bin"], "same file"),
        (["m/a", "m/a/b.bin"], "both a file and a folder"),
        (["m/a\x01b.bin"], re.escape(r"a\x01b.bin' holds control characters (U+0001)")),
    ],
)
def test_s3_keys_that_would_escape_or_collide_refuse_the_download(
    s3_client, tmp_path: Path, keys: list[str], words: str
) -> None:
    bucket = f"fairpilot-unsafe-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    s3_client.put_object(Bucket=bucket, Key="m/predictor.pkl", Body=b"model")
    for key in keys:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert {key for key in keys} <= {
        item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    }, "the server keeps the keys as given"
    with pytest.raises(JobError, match=words) as refused, artifacts.local_dir(f"s3://{bucket}/m"):
        pass
    assert refused.value.reason == "UnsafeKey"
    assert not (tmp_path.parent / "x.bin").exists()


def test_s3_object_names_are_safe_local_names(s3_client) -> None:
    s3_client.create_bucket(Bucket="fairpilot-names")
    s3_client.put_object(Bucket="fairpilot-names", Key="d/..", Body=b"a,b\n1,2\n")
    with artifacts.local_file("s3://fairpilot-names/d/..") as path:
        assert path.read_bytes() == b"a,b\n1,2\n"
        assert path.name == "object"


# -- control and invisible characters in URIs -------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("file:///data/a\x00b.csv", r"\x00"),
        ("file:///data/a%00b.csv", r"\x00"),
        ("file:///data/a\nb.csv", r"\n"),
        ("file:///data/a%0Ab.csv", r"\n"),
        ("file:///data/a\tb.csv", r"\t"),
        ("file:///data/a\x1b[31mb.csv", r"\x1b"),
        ("file:///data/a\x7fb.csv", r"\x7f"),
        ("file:///data/a\u200bb.csv", r"\u200b"),
        ("file:///data/a%E2%80%AEb.csv", r"\u202e"),
        ("s3://bucket/a\x00b.csv", r"\x00"),
        ("s3://bucket/a\u202eb.csv", r"\u202e"),
        ("s3://buc\nket/a.csv", r"\n"),
    ],
)
def test_control_and_invisible_characters_in_uris_are_refused(uri: str, shown: str) -> None:
    with pytest.raises(JobError) as caught:
        parse_uri(uri)
    assert caught.value.reason == "InvalidURI"
    assert shown in caught.value.message, caught.value.message
    assert caught.value.message.isprintable(), "the character is shown escaped"


def test_percent_encoded_text_that_is_no_character_stays_a_key(tmp_path: Path) -> None:
    """An S3 key is not percent-decoded: `%00` there is three ordinary characters."""
    assert parse_uri("s3://bucket/a%00b.csv").path == "a%00b.csv"
    assert parse_uri("file:///data/caf%C3%A9.csv").path == "/data/café.csv"

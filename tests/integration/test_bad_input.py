"""Bad input: non-zero exit, one line on stderr, error.json with the reason, no result.json."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest
from support.bad_input import cases
from support.jobs import run_job

# A well-formed model digest: the model checks below fail before it could match anything.


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("bad")
    small = pd.DataFrame(
        {
            "age": [25, 38, 52, 41],
            "sex": ["F", "M", "M", "F"],
            "job": ["a", "b", "a", "c"],
            "y": ["no", "yes", "no", "yes"],
        }
    )
    small.to_csv(root / "small.csv", index=False)
    small.assign(y="no").to_csv(root / "one_class.csv", index=False)
    (root / "empty.csv").write_text("")
    (root / "header_only.csv").write_text("age,sex,y\n")
    (root / "garbage.parquet").write_bytes(b"\x00\x01 definitely not parquet \xff" * 20)
    # Claims a 65 MiB footer, over the 64 MiB limit: a sparse file, nothing on disk.
    with open(root / "huge_footer.parquet", "wb") as handle:
        handle.write(b"PAR1")
        handle.seek(65 * 2**20 + 4)
        handle.write((65 * 2**20).to_bytes(4, "little") + b"PAR1")
    with zipfile.ZipFile(root / "two.csv.zip", "w") as archive:
        archive.writestr("a.csv", "age,y\n1,no\n")
        archive.writestr("b.csv", "age,y\n2,yes\n")
    (root / "no_model").mkdir()
    (root / "no_model" / "readme.txt").write_text("nothing here")
    return {
        name: f"file://{root / name}"
        for name in (
            "small.csv",
            "one_class.csv",
            "empty.csv",
            "header_only.csv",
            "garbage.parquet",
            "huge_footer.parquet",
            "two.csv.zip",
            "no_model",
        )
    } | {"missing": f"file://{root / 'missing.csv'}"}




def test_every_bad_input_fails_cleanly(files: dict[str, str], tmp_path: Path) -> None:
    problems = []
    for name, stage, spec, reason, words in cases(files):
        output = tmp_path / name.replace(" ", "-").replace("(", "").replace(")", "")
        output.mkdir()
        # What an earlier attempt of the same run (a Job's retry) left: not this attempt's.
        (output / ".fairpilot-run.json").write_text('{"runId": "uid/g1"}')
        (output / "result.json").write_text("{}")
        run = run_job(stage, spec, output, run_id="uid/g1")
        lines = run.stderr.strip().splitlines()
        checks = {
            "exit code non-zero": run.returncode != 0,
            "one line on stderr": len(lines) == 1,
            "no result.json": not (output / "result.json").exists(),
            "error.json written": (output / "error.json").exists(),
        }
        if checks["error.json written"]:
            error = run.error
            checks[f"reason {reason}"] = error["reason"] == reason
            checks[f"message mentions {words!r}"] = words in error["message"]
            checks["stderr names the reason"] = bool(lines) and reason in lines[0]
        failed = [check for check, ok in checks.items() if not ok]
        if failed:
            problems.append(f"{name}: failed {failed}; stderr={run.stderr[-500:]!r}")
    assert not problems, "\n".join(problems)


def test_input_errors_exit_2_and_internal_errors_exit_1(
    files: dict[str, str], tmp_path: Path
) -> None:
    run = run_job("profile", {"uri": files["missing"]}, tmp_path / "a")
    assert run.returncode == 2
    assert run.error["exitCode"] == 2


def test_spec_file_that_does_not_exist(tmp_path: Path) -> None:
    import subprocess
    import sys

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "fairpilot_jobs.cli",
            "profile",
            "--spec",
            str(tmp_path / "nope.yaml"),
            "--output",
            f"file://{tmp_path}/out",
        ],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        f"fairpilot-job profile: SpecNotFound: spec file {tmp_path / 'nope.yaml'} does not exist"
    ]


@pytest.mark.parametrize(
    ("output", "shown"),
    [("out%00put", r"out\x00put"), ("out\x1b[2Jput", r"out\x1b[2Jput"), ("out%0Aput", r"out\nput")],
)
def test_control_characters_in_uris_are_input_errors(
    files: dict[str, str], tmp_path: Path, output: str, shown: str
) -> None:
    """In the output URI (nothing can be written: stderr says why): InvalidURI; in a data URI
    of the spec (error.json too): InvalidSpec naming the field; exit 2 either way, the
    character shown, not an internal error."""
    run = run_job(
        "profile",
        {"uri": files["small.csv"]},
        tmp_path / "out",
        output_uri=f"file://{tmp_path}/{output}",
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines() == [run.stderr.strip()]
    assert "InvalidURI" in run.stderr and shown in run.stderr, run.stderr
    nul = files["small.csv"].replace("small.csv", "small%00.csv")
    run = run_job("profile", {"uri": nul}, tmp_path / "data")
    assert run.returncode == 2, run.stderr
    assert run.error["reason"] == "InvalidSpec"  # the spec's model: the field and code point
    assert "uri: holds invisible or control characters (U+0000)" in run.error["message"]
    assert run.error["exitCode"] == 2

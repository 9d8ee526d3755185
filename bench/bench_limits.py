"""Limits under hostile data: what they cost on data that is merely big.

(a) The bias stage (`fairpilot-job bias`, a subprocess, as a pod runs it) on --rows rows whose
    sensitive feature has --groups groups (a zip code: every group in result.json, the 20
    largest in the report), against its anchor in the same run: the same file, the same rows,
    with a 2-group feature (sex) instead.
(b) The profile stage on a gzip CSV that decompresses to about --gib GiB (Adult-like columns,
    generated into a temporary folder at run time), against its anchor: `pandas.read_csv` of
    the same .gz (pandas decompressing, unbounded), with the options the stage uses. Also timed:
    `tables.read_table` alone (our bounded streaming decompression, then pandas with
    compression=None), and the refusal of the same file under a limit of a quarter of its size.

Every run is a fresh Python process; seconds are wall time, peak RSS is the process's own
(`wait4`), best of --repeat for the bias runs. Writes bench/results/limits.json.

    python bench/bench_limits.py [--rows 1000000] [--groups 10000] [--gib 1.0] [--repeat 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from harness import describe

READ_OPTIONS = "skipinitialspace=True, na_values=['?'], low_memory=False"


# Peak RSS through a small wrapper process: a child forked from this (big) process inherits its
# high-water mark on Linux, even across exec; one forked from the wrapper starts from ~10 MiB.
_WRAPPER = (
    "import os, subprocess, sys; "
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "_, status, usage = os.wait4(child.pid, 0); "
    "print(usage.ru_maxrss, flush=True); "
    "sys.exit(os.waitstatus_to_exitcode(status))"
)


def measure(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Wall seconds, peak RSS (the process's own, `wait4`) and exit code of one process."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *command],
        capture_output=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "peakRssMiB": round(int(completed.stdout.split()[-1]) / 1024, 1),  # KiB on Linux
        "exitCode": completed.returncode,
        "stderr": completed.stderr.decode(errors="replace").strip()[:300],
    }


def job(stage: str, spec: dict[str, Any], workdir: Path, name: str, **env: str) -> dict[str, Any]:
    spec_file = workdir / f"{name}.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    output = workdir / name
    command = [sys.executable, "-m", "fairpilot_jobs.cli", stage, "--spec", str(spec_file)]
    figures = measure([*command, "--output", f"file://{output}"], env)
    figures["output"] = output
    return figures


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    fastest = min(runs, key=lambda run: run["seconds"])
    return {
        "seconds": fastest["seconds"],
        "allRuns": [run["seconds"] for run in runs],
        "peakRssMiB": max(run["peakRssMiB"] for run in runs),
    }


# -- (a) bias, many groups ------------------------------------------------------------------
def zip_frame(rows: int, groups: int, seed: int = 0) -> pd.DataFrame:
    """Group sizes from a Zipf-like law (a few big cities, a long tail); every group occurs."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, groups + 1) ** 0.8
    codes = np.concatenate(
        [np.arange(groups), rng.choice(groups, rows - groups, p=weights / weights.sum())]
    )
    rng.shuffle(codes)
    rate = rng.uniform(0.1, 0.5, groups)[codes]  # each group its own positive rate
    return pd.DataFrame(
        {
            "zip": np.char.add("z", np.char.zfill(codes.astype(str), 5)),
            "sex": rng.choice(["Female", "Male"], rows),
            "age": rng.integers(17, 90, rows),
            "income": np.where(rng.random(rows) < rate, ">50K", "<=50K"),
        }
    )


def bias_many_groups(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    data = workdir / "zips.csv"
    zip_frame(args.rows, args.groups).to_csv(data, index=False)
    spec = {"dataset": {"uri": f"file://{data}"}, "target": "income", "positiveLabel": ">50K"}
    runs: dict[str, list[dict[str, Any]]] = {"groups": [], "anchor": []}
    for attempt in range(args.repeat):
        for name, feature in (("groups", "zip"), ("anchor", "sex")):
            run = job("bias", {**spec, "sensitiveFeatures": [feature]}, workdir, f"{name}{attempt}")
            if run["exitCode"] != 0:
                raise SystemExit(f"FAIL bias {name}: {run['stderr']}")
            runs[name].append(run)
            print(f"bias {name}: {run['seconds']} s, {run['peakRssMiB']} MiB", flush=True)
    output = runs["groups"][-1]["output"]
    result = json.loads((output / "result.json").read_text())
    zips = result["features"]["zip"]
    html = (output / "report.html").read_text()
    if len(zips["groups"]) != args.groups or len(zips["metrics"]) != args.groups - 1:
        raise SystemExit(f"FAIL: result.json has {len(zips['groups'])} groups")
    summary = re.search(r"and ([\d,]+) more groups \(([\d,]+) rows\)", html)
    table = re.findall(r"<tr><td>z\d{5}</td>", html)
    if summary is None or len(table) > 2 * 21:  # the groups table and the metrics table
        raise SystemExit("FAIL: the report does not sum up the groups it leaves out")
    many, anchor = best(runs["groups"]), best(runs["anchor"])
    return {
        "rows": args.rows,
        "groups": args.groups,
        "manyGroups": many,
        "anchorTwoGroups": anchor,
        "ratio": round(many["seconds"] / anchor["seconds"], 2),
        "resultJsonBytes": (output / "result.json").stat().st_size,
        "reweighingJsonBytes": (output / "reweighing.json").stat().st_size,
        "reportHtmlBytes": (output / "report.html").stat().st_size,
        "reportGroupsLeftOut": int(summary[1].replace(",", "")),
    }


# -- (b) profile, a gzip CSV of about a GiB -------------------------------------------------
def adult_like(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)

    def pick(*values: str) -> np.ndarray:
        return rng.choice(values, rows)

    return pd.DataFrame(
        {
            "age": rng.integers(17, 90, rows),
            "workclass": pick("Private", "Self-emp-not-inc", "Local-gov", "?", "State-gov"),
            "fnlwgt": rng.integers(12_285, 1_484_705, rows),
            "education": pick("Bachelors", "HS-grad", "11th", "Masters", "Some-college"),
            "education_num": rng.integers(1, 17, rows),
            "marital_status": pick("Never-married", "Married-civ-spouse", "Divorced"),
            "occupation": pick("Adm-clerical", "Exec-managerial", "Sales", "?", "Tech-support"),
            "relationship": pick("Husband", "Not-in-family", "Own-child", "Unmarried", "Wife"),
            "race": pick("White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other"),
            "sex": pick("Male", "Female"),
            "capital_gain": np.where(rng.random(rows) < 0.08, rng.integers(0, 99_999, rows), 0),
            "capital_loss": np.where(rng.random(rows) < 0.05, rng.integers(0, 4_356, rows), 0),
            "hours_per_week": rng.integers(1, 99, rows),
            "native_country": pick("United-States", "Mexico", "?", "Philippines", "Germany"),
            "income": pick("<=50K", ">50K"),
        }
    )


def write_gzip_csv(path: Path, gib: float) -> dict[str, int]:
    """About `gib` GiB of CSV, written through gzip (level 6, gzip's default) in 8 blocks of
    distinct rows repeated; returns the sizes."""
    target = int(gib * 2**30)
    blocks = [
        adult_like(100_000, seed).to_csv(index=False, header=False).encode() for seed in range(8)
    ]
    header = (",".join(adult_like(1, 0).columns) + "\n").encode()
    written, rows, index = len(header), 0, 0
    with gzip.open(path, "wb", compresslevel=6) as handle:
        handle.write(header)
        while written < target:
            handle.write(blocks[index % len(blocks)])
            written += len(blocks[index % len(blocks)])
            rows += 100_000
            index += 1
    return {"rows": rows, "decompressedBytes": written, "compressedBytes": path.stat().st_size}


def profile_big_gzip(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    data = workdir / "adult-big.csv.gz"
    started = time.perf_counter()
    sizes = write_gzip_csv(data, args.gib)
    print(f"generated {sizes} in {time.perf_counter() - started:.0f} s", flush=True)
    python = sys.executable
    read_csv = measure(
        [python, "-c", f"import pandas as pd; pd.read_csv({str(data)!r}, {READ_OPTIONS})"]
    )
    print(f"pandas.read_csv: {read_csv}", flush=True)
    read_table = measure(
        [
            python,
            "-c",
            "from fairpilot.api.common import DataLocation;"
            "from fairpilot_jobs.tables import read_table;"
            f"read_table(DataLocation(uri='file://{data}'))",
        ]
    )
    print(f"tables.read_table: {read_table}", flush=True)
    profile = job("profile", {"uri": f"file://{data}"}, workdir, "profile")
    print(f"profile stage: {profile['seconds']} s, {profile['peakRssMiB']} MiB", flush=True)
    limit = sizes["decompressedBytes"] // 4
    refused = job(
        "profile",
        {"uri": f"file://{data}"},
        workdir,
        "refused",
        FAIRPILOT_MAX_DECOMPRESSED_BYTES=str(limit),
    )
    print(f"refused at {limit:,} bytes: {refused}", flush=True)
    for name, run in (("read_csv", read_csv), ("read_table", read_table), ("profile", profile)):
        if run["exitCode"] != 0:
            raise SystemExit(f"FAIL {name}: {run['stderr']}")
    if refused["exitCode"] != 2 or "DecompressedTooLarge" not in refused["stderr"]:
        raise SystemExit(f"FAIL: not refused: {refused}")
    profile_rows = json.loads((profile["output"] / "result.json").read_text())["rows"]
    if profile_rows != sizes["rows"]:
        raise SystemExit(f"FAIL: profiled {profile_rows} rows of {sizes['rows']}")

    def figures(run: dict[str, Any]) -> dict[str, Any]:
        return {"seconds": run["seconds"], "peakRssMiB": run["peakRssMiB"]}

    return {
        **sizes,
        "anchorPandasReadCsv": figures(read_csv),
        "readTable": figures(read_table),
        "profileStage": figures(profile),
        "ratioReadTable": round(read_table["seconds"] / read_csv["seconds"], 2),
        "ratioReadTableRss": round(read_table["peakRssMiB"] / read_csv["peakRssMiB"], 2),
        "ratioProfileStage": round(profile["seconds"] / read_csv["seconds"], 2),
        "refusedAtQuarterLimit": {
            "limitBytes": limit,
            **figures(refused),
            "reason": "DecompressedTooLarge",
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/limits.json"))
    parser.add_argument("--skip", choices=["bias", "gzip"], action="append", default=[])
    args = parser.parse_args()

    results: dict[str, Any] = {
        "benchmark": "limits under hostile data: many groups, a large gzip CSV",
        "command": shlex.join([os.path.relpath(sys.executable, Path.cwd()), *sys.argv]),
        "machine": describe("pyarrow", "matplotlib"),
    }
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        workdir = Path(tmp)
        if "bias" not in args.skip:
            results["biasManyGroups"] = bias_many_groups(args, workdir)
        if "gzip" not in args.skip:
            results["profileGzip"] = profile_big_gzip(args, workdir)
    results["notes"] = (
        "bias: fairpilot-job bias, sensitive feature of --groups groups (Zipf-like sizes) vs the "
        "same file's 2-group feature; profile: fairpilot-job profile on a gzip CSV vs "
        "pandas.read_csv of the same .gz with the stage's options; each a fresh process, wall "
        "seconds, the process's own peak RSS"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

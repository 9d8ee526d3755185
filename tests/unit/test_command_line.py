"""The command lines (issue 17): `--version` on both, `fairpilot-job STAGE --help` lists that
stage's spec fields (from the job spec models: names as in the resource, types, descriptions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from fairpilot import __version__
from fairpilot import cli as fairpilot_cli
from fairpilot.api import JOB_SPECS
from fairpilot_jobs import cli as job_cli

Main = Callable[[Sequence[str] | None], int]


def output_of(main: Main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code in (0, None)
    captured = capsys.readouterr()
    assert not captured.err
    return captured.out


@pytest.mark.parametrize(
    ("main", "name"), [(fairpilot_cli.main, "fairpilot"), (job_cli.main, "fairpilot-job")]
)
def test_version(main: Main, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert output_of(main, ["--version"], capsys) == f"{name} {__version__}\n"


@pytest.mark.parametrize("stage", sorted(JOB_SPECS))
def test_stage_help_lists_the_stage_s_spec_fields(
    stage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = output_of(job_cli.main, [stage, "--help"], capsys)
    assert text.startswith("usage: fairpilot-job")
    fields = text[text.index(f"spec fields of `fairpilot-job {stage}`") :]
    for name, info in JOB_SPECS[stage].model_fields.items():
        alias = info.alias or name
        assert f"\n  {alias} (" in fields, (alias, fields)


def test_stage_help_says_type_required_default_and_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = output_of(job_cli.main, ["bias", "--help"], capsys)
    fields = text[text.index("spec fields of `fairpilot-job bias`") :]
    assert "\n  target (string, required)\n      Label column.\n" in fields
    assert "\n  sensitiveFeatures (list of string, required)\n" in fields
    assert "\n  thresholds.disparateImpact (number, default 0.8)\n" in fields
    assert "four-fifths rule" in fields
    assert "\n  dataset.format (string, one of csv, parquet, jsonl)\n" in fields
    assert all(len(line) <= 100 for line in fields.splitlines())
    # Without a stage: the stages, and where their fields are.
    general = output_of(job_cli.main, ["--help"], capsys)
    assert "spec fields of" not in general and "STAGE --help" in general


def test_console_options_and_the_sandbox_s_console_switch() -> None:
    parser = fairpilot_cli.build_parser()
    args = parser.parse_args(["console"])
    assert (args.port, args.host, args.user_header, args.namespace) == (
        8080,
        "127.0.0.1",
        None,
        None,
    )
    args = parser.parse_args(
        ["console", "--port", "9000", "--server", "http://127.0.0.1:1", "--namespace", "ml",
         "--user-header", "X-Forwarded-User"]
    )  # fmt: skip
    assert (args.port, args.server, args.namespace) == (9000, "http://127.0.0.1:1", ["ml"])
    assert args.user_header == "X-Forwarded-User"
    with pytest.raises(SystemExit):  # one way to the API server
        parser.parse_args(["console", "--server", "http://x", "--kubeconfig", "k"])
    assert parser.parse_args(["sandbox", "up"]).console_port == 0
    assert parser.parse_args(["sandbox", "up", "--no-console"]).no_console

"""`fairpilot`: the operator's command line. For now: tools around the stage jobs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fairpilot import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fairpilot",
        description="FairPilot: bias-aware AutoML pipelines with explanations, on Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"fairpilot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser(
        "datasets",
        help="export a public data set shipped in an installed package (no download)",
        description="Write a public data set as CSV files, e.g. for `fairpilot-job` by hand.",
    )
    data.add_argument("name", choices=["adult"], help="adult: UCI Adult income (train and test)")
    data.add_argument("--output", type=Path, required=True, help="directory to write into")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "datasets":
        from fairpilot.datasets import EXPORTERS

        for split, path in EXPORTERS[args.name](args.output.resolve()).items():
            print(f"{split}: file://{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

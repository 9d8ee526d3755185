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
    data.add_argument(
        "name",
        choices=["adult", "german"],
        help="adult: UCI Adult income (train and test); german: Statlog German credit",
    )
    data.add_argument("--output", type=Path, required=True, help="directory to write into")
    crds = commands.add_parser(
        "crds",
        help="write the CustomResourceDefinitions generated from the pydantic models",
        description="Generate crds/*.yaml from the API models, or check them for drift.",
    )
    crds.add_argument("--output", type=Path, default=Path("crds"), help="default: crds")
    crds.add_argument("--check", action="store_true", help="exit 1 if the files are out of date")
    reference = commands.add_parser(
        "reference",
        help="write the custom-resource reference (Markdown) generated from the pydantic models",
        description="Generate docs/reference.md, every spec and status field of the four "
        "custom resources, from the API models (as `crds` does the CRDs), or check it for drift.",
    )
    reference.add_argument(
        "--output",
        type=Path,
        default=Path("docs/reference.md"),
        help="default: docs/reference.md",
    )
    reference.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    operator = commands.add_parser(
        "operator",
        help="run the operator against the cluster in the kubeconfig (or in-cluster)",
        description="Watches Datasets, BiasAnalyses, TrainingRuns and Explanations; "
        "configured by FAIRPILOT_* environment variables (see docs/operations.md).",
    )
    operator.add_argument("--namespace", action="append", help="watch only these (repeatable)")
    operator.add_argument("--metrics-port", type=int, default=8080, help="/metrics (default 8080)")
    operator.add_argument("--health-port", type=int, default=8081, help="/healthz (default 8081)")
    operator.add_argument(
        "--peering",
        metavar="NAME",
        help="run as one of several replicas through this Kopf peering (one works, the others "
        "stand by); without it the operator runs standalone",
    )
    operator.add_argument(
        "--peering-lifetime",
        type=int,
        default=60,
        metavar="SECONDS",
        help="with --peering: how long a replica that stopped answering keeps the others on "
        "standby, i.e. the longest failover time (default 60)",
    )
    operator.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sandbox = commands.add_parser(
        "sandbox",
        help="run FairPilot on this machine with no cluster (API emulator, operator, local jobs)",
    )
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    run = sandbox_commands.add_parser(
        "run",
        help="apply every manifest in DIR and follow the resources until they finish",
        description="Exit 0 only when every resource succeeded.",
    )
    run.add_argument("directory", type=Path, help="a directory of *.yaml manifests, or one file")
    run.add_argument("--timeout", type=float, default=900, help="seconds (default: 900)")
    run.add_argument("--output-json", type=Path, help="write each resource's final status here")
    serve = sandbox_commands.add_parser(
        "up",
        help="run the sandbox until interrupted; print its API server's and broker's addresses",
        description="For driving the sandbox from other programs (kubectl --server URL, "
        "the Kubernetes client, Kafka producers of the seed's trigger topics, benchmarks).",
    )
    for command in (run, serve):
        command.add_argument(
            "--artifacts",
            type=Path,
            default=Path("/tmp/fairpilot/artifacts"),
            help="local artifact directory (default: /tmp/fairpilot/artifacts)",
        )
        confine = command.add_mutually_exclusive_group()
        confine.add_argument(
            "--file-root",
            type=Path,
            help="the one directory file:// URIs may name, holding data and artifacts "
            "(default: the folder above --artifacts, /tmp/fairpilot)",
        )
        confine.add_argument(
            "--any-file",
            action="store_true",
            help="let resources and messages name any file of this machine (file:// URIs "
            "otherwise stay inside --file-root: a URI could name ~/.aws/credentials)",
        )
    serve.add_argument(
        "--noop-jobs",
        action="store_true",
        help="finish every Job at once with an empty result (for load tests)",
    )
    serve.add_argument("--parallelism", type=int, default=2, help="Jobs run at once (default 2)")
    serve.add_argument(
        "--kafka-port",
        type=int,
        help="port of the sandbox's Kafka broker on 127.0.0.1 (default: a free one)",
    )
    serve.add_argument(
        "--mongo-uri",
        help="record datasets, reports, models and events in this MongoDB (the warehouse)",
    )
    return parser


def sandbox_file_root(args: argparse.Namespace) -> Path | None:
    """Where the sandbox's jobs may read and write file:// URIs: --file-root, else the folder
    that holds --artifacts; None (anywhere) only with --any-file."""
    if args.any_file:
        return None
    root = (args.file_root or args.artifacts.resolve().parent).resolve()
    if not args.artifacts.resolve().is_relative_to(root):
        raise SystemExit(
            f"fairpilot sandbox: --artifacts {args.artifacts} is outside --file-root {root}, "
            "where the jobs could not write"
        )
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "datasets":
        from fairpilot.datasets import EXPORTERS

        for split, path in EXPORTERS[args.name](args.output.resolve()).items():
            print(f"{split}: file://{path}")
    elif args.command == "crds":
        from fairpilot.crds import drift, write_all

        if args.check:
            stale = drift(args.output)
            for name in stale:
                print(f"out of date: {args.output / name} (run: fairpilot crds)", file=sys.stderr)
            return 1 if stale else 0
        for path in write_all(args.output):
            print(path)
    elif args.command == "reference":
        from fairpilot.reference_docs import is_current, write

        if args.check:
            if is_current(args.output):
                return 0
            print(f"out of date: {args.output} (run: fairpilot reference)", file=sys.stderr)
            return 1
        print(write(args.output))
    elif args.command == "operator":
        from fairpilot.controller.main import run_operator

        return run_operator(
            args.namespace or [],
            args.metrics_port,
            args.health_port,
            args.peering,
            args.log_level,
            peering_lifetime=args.peering_lifetime,
        )
    elif args.command == "sandbox" and args.sandbox_command == "up":
        from fairpilot.sandbox.up import up

        return up(
            args.artifacts,
            noop_jobs=args.noop_jobs,
            parallelism=args.parallelism,
            file_root=sandbox_file_root(args),
            kafka_port=args.kafka_port,
            mongo_uri=args.mongo_uri,
        )
    elif args.command == "sandbox":
        from fairpilot.sandbox.cli import run

        return run(
            args.directory, args.artifacts, args.timeout, args.output_json, sandbox_file_root(args)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

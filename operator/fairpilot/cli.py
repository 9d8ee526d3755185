"""`fairpilot`: the operator's command line. For now: tools around the stage jobs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from fairpilot import __version__

if TYPE_CHECKING:
    import urllib3


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
        command.add_argument(
            "--runtime",
            choices=["process", "docker"],
            default="process",
            help="run each Job's pod as a process here (default) or as a container of the Job's "
            "image under its security context, env, volumes and memory limit (`docker`: needs "
            "a Docker engine, the images of `make images`, and --file-root, mounted into each)",
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
        "--console-port",
        type=int,
        default=0,
        help="port of the web console on 127.0.0.1 (default: a free one)",
    )
    serve.add_argument("--no-console", action="store_true", help="do not serve the web console")
    serve.add_argument(
        "--mongo-uri",
        help="record datasets, reports, models and events in this MongoDB (the warehouse)",
    )
    console = commands.add_parser(
        "console",
        help="serve the read-only web console: pipelines, resources, reports, live stage logs",
        description="A read-only web console over the cluster in the kubeconfig (or in-cluster, "
        "or --server), reading reports with the operator's configuration and credentials "
        "(FAIRPILOT_* as `fairpilot operator` reads them). Reach it with `kubectl "
        "port-forward`; see docs/operations.md before exposing it.",
    )
    console.add_argument("--port", type=int, default=8080, help="(default 8080)")
    console.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    console.add_argument(
        "--namespace",
        action="append",
        help="serve only these namespaces (repeatable; as the operator's --namespace)",
    )
    console.add_argument(
        "--user-header",
        metavar="HEADER",
        help="trust this request header (e.g. X-Forwarded-User) as the user's name, set by an "
        "authenticating proxy in front of the console; requests without it are refused (401). "
        "Only when every request passes through that proxy",
    )
    target = console.add_mutually_exclusive_group()
    target.add_argument("--kubeconfig", type=Path, help="default: $KUBECONFIG or in-cluster")
    target.add_argument(
        "--server", help="the API server's URL (`fairpilot sandbox up` prints the sandbox's)"
    )
    logs = commands.add_parser(
        "logs",
        help="print the log of a resource's current stage (its Job's newest pod)",
        description="As `kubectl logs job/NAME` for the Job that the resource runs now "
        "(status.jobName), in the sandbox or on a cluster.",
    )
    logs.add_argument("resource", help="KIND/NAME (dataset/adult, fpbias/x) or a NAME")
    logs.add_argument("-n", "--namespace", default="default", help="(default: default)")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until the pod ends")
    logs.add_argument("--tail", type=int, help="only the last N lines")
    logs.add_argument(
        "--server",
        help="the API server's URL (`fairpilot sandbox up` prints it); "
        "default: the kubeconfig's current context",
    )
    return parser


def find_resource(cluster: Any, namespace: str, wanted: str) -> dict[str, Any]:
    """The resource that `KIND/NAME` or a bare NAME names; SystemExit with why otherwise."""
    from fairpilot.api.kinds import KINDS

    kind_name, _, name = wanted.rpartition("/")
    kinds = [
        kind for kind in KINDS
        if not kind_name or kind_name.lower() in
        {kind.kind.lower(), kind.plural, kind.singular, *kind.short_names}
    ]  # fmt: skip
    if not kinds:
        raise SystemExit(f"fairpilot logs: no FairPilot kind is called {kind_name!r}")
    found = [obj for kind in kinds if (obj := cluster.get(kind, namespace, name)) is not None]
    if not found:
        raise SystemExit(f"fairpilot logs: {wanted} not found in namespace {namespace}")
    if len(found) > 1:
        names = ", ".join(f"{obj['kind'].lower()}/{name}" for obj in found)
        raise SystemExit(f"fairpilot logs: {name} is more than one resource: {names}")
    return found[0]


def show_logs(args: argparse.Namespace) -> int:
    """`fairpilot logs`: the newest pod of the resource's current Job, printed as it comes."""
    import kubernetes

    from fairpilot.cluster import Cluster

    if args.server:
        cluster = Cluster.for_host(args.server)
    else:
        kubernetes.config.load_kube_config()
        cluster = Cluster.connect()
    obj = find_resource(cluster, args.namespace, args.resource)
    job = (obj.get("status") or {}).get("jobName")
    if not job:
        raise SystemExit(f"fairpilot logs: {args.resource} has run no Job yet")
    # Raw responses (_preload_content=False): the JSON, and the log as a stream of bytes.
    listed = cast(
        "urllib3.BaseHTTPResponse",
        cluster.core.list_namespaced_pod(
            args.namespace, label_selector=f"job-name={job}", _preload_content=False
        ),
    )
    pods = json.loads(listed.data)["items"]
    if not pods:
        raise SystemExit(f"fairpilot logs: Job {job} has no pod yet")
    newest = max(
        pods, key=lambda pod: (pod["metadata"]["creationTimestamp"], pod["metadata"]["name"])
    )
    response = cast(
        "urllib3.BaseHTTPResponse",
        cluster.core.read_namespaced_pod_log(
            newest["metadata"]["name"],
            args.namespace,
            follow=args.follow,
            tail_lines=args.tail,
            _preload_content=False,
        ),
    )
    try:
        for chunk in response.stream(4096):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
    finally:
        response.release_conn()
    return 0


def run_console(args: argparse.Namespace) -> int:
    """`fairpilot console`: serve the web console until interrupted."""
    import kubernetes

    from fairpilot.cluster import Cluster
    from fairpilot.console.data import Console
    from fairpilot.console.outbound import topics_from_env
    from fairpilot.console.server import Options, serve
    from fairpilot.controller.main import config_from_env
    from fairpilot.controller.runtime import load_kubeconfig

    # Pages, and a connection per live log that a browser follows.
    connections = 16
    if args.server:
        cluster = Cluster.for_host(args.server, connections=connections)
    else:
        if args.kubeconfig:
            kubernetes.config.load_kube_config(config_file=str(args.kubeconfig))
        else:
            load_kubeconfig()
        cluster = Cluster.connect(connections=connections)
    # The topics as the operator's (FAIRPILOT_KAFKA_TOPIC_*): the Kafka events pages name them.
    console = Console(cluster, config_from_env(), args.namespace, topics_from_env())
    print(f"console: http://{args.host}:{args.port} (read-only)", flush=True)
    return serve(console, Options(args.host, args.port, args.user_header))


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
    elif args.command == "logs":
        return show_logs(args)
    elif args.command == "console":
        return run_console(args)
    elif args.command == "sandbox" and args.sandbox_command == "up":
        from fairpilot.sandbox.up import up

        return up(
            args.artifacts,
            noop_jobs=args.noop_jobs,
            parallelism=args.parallelism,
            file_root=sandbox_file_root(args),
            kafka_port=args.kafka_port,
            mongo_uri=args.mongo_uri,
            console_port=None if args.no_console else args.console_port,
            runtime=args.runtime,
        )
    elif args.command == "sandbox":
        from fairpilot.sandbox.cli import run

        return run(
            args.directory,
            args.artifacts,
            args.timeout,
            args.output_json,
            sandbox_file_root(args),
            runtime=args.runtime,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

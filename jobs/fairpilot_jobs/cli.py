"""`fairpilot-job STAGE --spec FILE --output URI`: run one pipeline stage.

The contract with the operator: on success, artifacts and `result.json` under the output URI
and exit code 0; on failure, one line on stderr, `error.json` with the reason, no
`result.json`, and a non-zero exit code (2: the input is wrong, and trying again cannot help;
1: FairPilot or what it depends on failed, e.g. an S3 outage, and a retry may succeed).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import textwrap
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from fairpilot import API_GROUP, API_VERSION, __version__
from fairpilot.api import JOB_SPECS, safe_yaml
from fairpilot.api.kinds import KINDS
from fairpilot.api.results import StageError, StageResult
from fairpilot.api.validation import describe
from fairpilot.artifacts import ArtifactStore, read_bytes
from fairpilot.crds import openapi_schema
from fairpilot.errors import JobError
from fairpilot.reference_docs import rows

log = logging.getLogger("fairpilot.job")

MAX_SPEC_BYTES = 1024 * 1024  # a ConfigMap's limit, where the operator puts the spec
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
TERMINATION_LOG_ENV = "FAIRPILOT_TERMINATION_LOG"

StageFunction = Callable[[Any, ArtifactStore], dict[str, Any]]

# What each stage's result.json must be: its kind's result model, which the operator parses it
# with (fairpilot.api.results).
RESULT_MODELS: dict[str, type[StageResult]] = {kind.stage: kind.result for kind in KINDS}
INVALID_RESULT = "InvalidResult"


# Imported on demand: `--help` and spec errors should not wait for AutoGluon to import.
STAGE_FUNCTIONS = {
    "profile": "fairpilot_jobs.profile:run_profile",
    "bias": "fairpilot_jobs.bias.stage:run_bias",
    "train": "fairpilot_jobs.train:run_train",
    "explain": "fairpilot_jobs.explain.stage:run_explain",
    "monitor": "fairpilot_jobs.monitor.stage:run_monitor",
}


def stage_function(stage: str) -> StageFunction:
    module, _, name = STAGE_FUNCTIONS[stage].partition(":")
    return getattr(importlib.import_module(module), name)


class StageHelp(argparse.Action):
    """`-h`/`--help`: the usage, and after a stage (`fairpilot-job bias --help`) that stage's
    spec fields too (argparse has read the stage by then; `--help bias` shows the usage)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        parser.print_help()
        stage = getattr(namespace, "stage", None)
        if stage in JOB_SPECS:
            print("\n" + spec_help(stage), end="")
        parser.exit()


def spec_help(stage: str, width: int = 100) -> str:
    """The fields of the stage's spec file, from its model (as docs/reference.md and the CRDs
    describe them: the same names, types and descriptions)."""
    lines = [
        f"spec fields of `fairpilot-job {stage}` (YAML or JSON; a whole custom resource is "
        "taken as its spec):"
    ]
    for row in rows(openapi_schema(JOB_SPECS[stage]), "spec"):
        facts = [row.type]
        if row.required:
            facts.append("required")
        if row.default:
            facts.append(f"default {row.default.strip('`').strip()}")
        facts += [
            rule.replace("`", "") for rule in row.rules.split("; ") if rule.startswith("one of ")
        ]
        lines.append(f"  {row.path.removeprefix('spec.')} ({', '.join(facts)})")
        description = " ".join(row.description.replace("&lt;", "<").split())
        if description:
            lines += textwrap.wrap(
                description, width, initial_indent=" " * 6, subsequent_indent=" " * 6
            )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fairpilot-job",
        add_help=False,
        description=(
            "Run one FairPilot stage. Reads a spec (YAML or JSON; the custom resource's spec "
            "with references resolved to URIs), writes artifacts, an HTML report and "
            "result.json under the output URI."
        ),
        epilog=(
            "stages: profile (types, missing values, suggested target), bias (fairness "
            "metrics, reweighing), train (AutoGluon), explain (SHAP), monitor (one window of new "
            "data: data, prediction and bias drift, performance). "
            "`fairpilot-job STAGE --help` lists the fields of that stage's spec. "
            "Example: fairpilot-job profile --spec dataset.yaml --output file:///tmp/out"
        ),
    )
    parser.add_argument(
        "-h", "--help", action=StageHelp, help="show this help (after a stage: its spec fields)"
    )
    parser.add_argument("--version", action="version", version=f"fairpilot-job {__version__}")
    parser.add_argument("stage", choices=sorted(JOB_SPECS), help="which stage to run")
    parser.add_argument(
        "--spec", required=True, help="spec file (path, file:// or s3:// URI; '-' for stdin)"
    )
    parser.add_argument(
        "--output",
        required=True,
        help="output URI for artifacts (file:///dir or s3://bucket/prefix)",
    )
    parser.add_argument(
        "--run-id",
        help=(
            "identity of this run: the output location must be empty, or hold this same run's "
            "earlier attempt (the operator passes <resource uid>/<run>). Without it, only an "
            "empty location is accepted: results are never overwritten"
        ),
    )
    parser.add_argument(
        "--model-digest",
        help=(
            "the digest the model (spec `model`) must have; the operator puts it in the Job "
            "itself as well as in the spec, whose ConfigMap could be replaced before the pod "
            "starts: the two must agree"
        ),
    )
    parser.add_argument(
        "--candidate-digest",
        help=(
            "the digest the retrained candidate model (spec `candidate`, a monitor window's) "
            "must have, as --model-digest for `model`; with --model-digest given, a spec "
            "candidate without it is refused"
        ),
    )
    parser.add_argument(
        "--log-level", default=os.environ.get("FAIRPILOT_LOG_LEVEL", "INFO"), help="default: INFO"
    )
    return parser


def pin_model_digest(
    spec: BaseModel, digest: str | None, candidate_digest: str | None = None
) -> None:
    """The spec's model digest must be the Job's (`--model-digest`), when it gives one; so must
    a monitor window's candidate model's (`--candidate-digest`). A Job that pins the model
    (the operator's) and names no candidate loads none: a candidate added to its spec on the
    way (its ConfigMap made again) would be a second model of the spec's own choosing."""
    model = getattr(spec, "model", None)
    if digest is not None and model is not None:
        if model.digest not in (None, digest):
            raise JobError(
                "ModelDigestMismatch",
                f"the job spec names model digest {model.digest} but the Job {digest}: the "
                "spec was changed after the operator wrote it; the model is not loaded",
            )
        model.digest = digest
    candidate = getattr(spec, "candidate", None)
    if candidate is None or (digest is None and candidate_digest is None):
        return
    if candidate_digest is None:
        raise JobError(
            "ModelDigestMismatch",
            f"the job spec names a candidate model ({candidate.uri}) but the Job none: the "
            "spec was changed after the operator wrote it; no model is loaded",
        )
    if candidate.digest not in (None, candidate_digest):
        raise JobError(
            "ModelDigestMismatch",
            f"the job spec names candidate digest {candidate.digest} but the Job "
            f"{candidate_digest}: the spec was changed after the operator wrote it; no model "
            "is loaded",
        )
    candidate.digest = candidate_digest


def load_spec(stage: str, source: str) -> BaseModel:
    """Parse and validate a spec; errors name the field (camelCase, as in the resource)."""
    try:
        if source == "-":
            raw = sys.stdin.buffer.read()
        elif "://" in source:
            raw = read_bytes(source)
        else:
            with open(source, "rb") as handle:
                raw = handle.read()
    except FileNotFoundError as exc:
        raise JobError("SpecNotFound", f"spec file {source} does not exist") from exc
    except JobError as exc:
        raise JobError("SpecNotFound", f"spec {source}: {exc.message}") from exc
    try:
        # Bounded: a spec is a few hundred values, and it comes from a ConfigMap (1 MiB at
        # most) or a person; an alias bomb or a gigabyte of YAML is refused before it is built.
        document = safe_yaml.load(raw, max_bytes=MAX_SPEC_BYTES)
    except safe_yaml.UnsafeYaml as exc:
        raise JobError("InvalidSpec", f"spec {source}: {exc}") from exc
    if isinstance(document, dict) and "spec" in document and "kind" in document:
        document = document["spec"]  # a whole custom resource was given: take its spec
    if not isinstance(document, dict):
        raise JobError("InvalidSpec", f"spec {source} must be a mapping of fields")
    try:
        return JOB_SPECS[stage].model_validate(document)
    except ValidationError as exc:
        raise JobError("InvalidSpec", describe_validation_error(exc, stage)) from exc


def describe_validation_error(exc: ValidationError, stage: str | None = None) -> str:
    """One line; with the stage, a near-miss field name gets a "did you mean"."""
    return "invalid spec: " + describe(exc, model=JOB_SPECS[stage] if stage else None)


def write_result(store: ArtifactStore, stage: str, result: dict[str, Any]) -> str:
    """Write result.json, once it is what the operator reads (the stage's result model).

    A result the operator could not read would make a resource that succeeded show a status
    of guesses, or fail there without a word from the stage: refused here, naming the field,
    before anything is written. The dict itself is written, unmodelled fields included.
    """
    try:
        RESULT_MODELS[stage].model_validate(result)
    except ValidationError as exc:
        raise JobError(
            INVALID_RESULT,
            f"the {stage} stage made a result.json the operator cannot read: {describe(exc)}",
        ) from exc
    return store.write_json(RESULT_FILE, result)


def error_payload(
    stage: str, reason: str, message: str, exit_code: int, detail: str | None = None
) -> dict[str, Any]:
    """error.json as StageError has it; a reason the operator could not copy into a condition
    becomes InternalError, keeping the original in the message, so the failure still says."""
    payload: dict[str, Any] = {
        "stage": stage,
        "reason": reason,
        "message": message,
        "exitCode": exit_code,
    }
    if detail:
        payload["detail"] = detail
    try:
        StageError.model_validate(payload)
    except ValidationError as exc:
        payload |= {
            "reason": "InternalError",
            "message": f"{reason}: {message} (not a valid reason: {describe(exc)})",
        }
    return payload


def run(
    stage: str,
    spec_source: str,
    output: str,
    run_id: str | None = None,
    model_digest: str | None = None,
    candidate_digest: str | None = None,
) -> int:
    started = datetime.now(UTC)
    clock = time.monotonic()
    store: ArtifactStore | None = None
    try:
        claimed = ArtifactStore(output)
        # Refused before anything is written: error.json must not land in another run's
        # folder either.
        claimed.claim(run_id)
        store = claimed
        # This run's earlier attempt (a retry) may have left them: they are not this attempt's.
        store.delete(RESULT_FILE)
        store.delete(ERROR_FILE)
        spec = load_spec(stage, spec_source)
        pin_model_digest(spec, model_digest, candidate_digest)
        log.info("%s: starting, output %s", stage, store.uri())
        result = stage_function(stage)(spec, store)
        envelope = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "StageResult",
            "stage": stage,
            "fairpilotVersion": __version__,
            "startedAt": started.isoformat(),
            "finishedAt": datetime.now(UTC).isoformat(),
            "durationSeconds": round(time.monotonic() - clock, 3),
            **result,
        }
        write_result(store, stage, envelope)
        if result.get("modelDigest"):
            # Also where only the kubelet writes (the pod's status): whoever can write to the
            # artifact store cannot change both the model and the digest the operator records.
            _write_termination_message(json.dumps({"modelDigest": result["modelDigest"]}))
        log.info(
            "%s: done in %.1f s, result %s", stage, time.monotonic() - clock, store.uri(RESULT_FILE)
        )
        return 0
    except JobError as exc:
        return _fail(stage, store, exc.reason, exc.message, None, 1 if exc.transient else 2)
    except Exception as exc:
        detail = traceback.format_exc()
        log.debug(detail)
        return _fail(stage, store, "InternalError", f"{type(exc).__name__}: {exc}", detail, 1)


def _fail(
    stage: str,
    store: ArtifactStore | None,
    reason: str,
    message: str,
    detail: str | None,
    exit_code: int,
) -> int:
    line = " ".join(message.split())  # one line, whatever the message held
    payload = error_payload(stage, reason, line, exit_code, detail)
    reason, line = payload["reason"], payload["message"]
    if store is not None:
        try:
            store.write_json(ERROR_FILE, payload)
        except Exception as exc:  # the store itself may be what failed
            line += f" (and error.json could not be written: {exc})"
    _write_termination_message(json.dumps({"reason": reason, "message": line})[:4000])
    print(f"fairpilot-job {stage}: {reason}: {line}", file=sys.stderr, flush=True)
    return exit_code


def _write_termination_message(text: str) -> None:
    """Kubernetes shows /dev/termination-log as the container's termination message."""
    path = os.environ.get(TERMINATION_LOG_ENV, "/dev/termination-log")
    try:
        if os.path.exists(path) or os.environ.get(TERMINATION_LOG_ENV):
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
    except OSError:
        pass


def configure_logging(level: str) -> None:
    # Progress goes to stdout: stderr is kept for the one-line failure message.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO")
    logging.captureWarnings(True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    return run(
        args.stage, args.spec, args.output, args.run_id, args.model_digest, args.candidate_digest
    )


if __name__ == "__main__":
    sys.exit(main())

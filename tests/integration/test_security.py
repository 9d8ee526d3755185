"""Security: the operator's RBAC is exactly what its code uses, every pod it starts is locked
down, and credentials appear nowhere but where they are handed over (Secrets, the environment).

One sandbox run serves the RBAC and the credential tests. The operator runs as the chart runs
it (one namespace, CRD scanning off, Kopf peering, the Kafka bridge, the warehouse) through a
whole pipeline started by a Kafka message, with artifacts in S3 (moto), a resource that fails, a
restart while a Job runs, and deletions. The API server's audit log records every request and
who made it; everything the run left behind is then searched for the credentials it was given.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import signal
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import kubernetes
import kubernetes.watch
import mongomock
import pytest
from aiokafka import ConsumerRecord
from pydantic import ValidationError
from pymongo.errors import PyMongoError
from support.chart import VALUE_SETS, by_kind, render

from fairpilot import API_GROUP
from fairpilot.api.kinds import BY_KIND, KINDS, Kind
from fairpilot.bridge.config import BridgeConfig
from fairpilot.bridge.service import Bridge
from fairpilot.cluster import Cluster
from fairpilot.config import GpuConfig, OperatorConfig
from fairpilot.controller.runtime import operate
from fairpilot.jobs import build_job
from fairpilot.sandbox import runner
from fairpilot.sandbox.app import USER_AGENT as SANDBOX_USER_AGENT
from fairpilot.sandbox.app import Sandbox, sandbox_config
from fairpilot.sandbox.emulator import request_info, running_emulator
from fairpilot.sandbox.kafka import free_port, running_broker
from fairpilot.sandbox.testing import (
    TINY_CSV,
    by_name,
    delivered,
    eventually,
    produce,
    read,
    resource,
    wait_for,
)
from fairpilot.warehouse.store import Warehouse

NAMESPACE, PEERING, BUCKET = "default", "fairpilot", "fp-security"
USER, DATASET_ID = "user-sec", "tiny-sec"
MONGO_HOST = "mongo.fairpilot.test"
# Distinctive enough that finding one anywhere cannot be a coincidence.
S3_SECRET_KEY = "fpS3cretAccessKey-9f2c7e1d"
S3_KEY_ID = "FPKEYID7Q2W9E4R"
MONGO_PASSWORD = "fpMongoPassw0rd-5b8a3c"
KAFKA_PASSWORD = "fpKafkaSaslPw-1e6d4f"
SECRETS = {
    "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
    "AWS_ACCESS_KEY_ID": S3_KEY_ID,
    "MongoDB password": MONGO_PASSWORD,
}
NOT_THE_OPERATOR = {SANDBOX_USER_AGENT, runner.USER_AGENT}
# Discovery, which every authenticated client may read (the API server's default
# system:discovery and system:public-info-viewer bindings), not the operator's Role.
DISCOVERY = re.compile(r"^/(api|apis)(/[^/?]+){0,2}/?(\?.*)?$|^/version/?$")


# --- the run ------------------------------------------------------------------------------


class ChartSandbox(Sandbox):
    """The operator as the chart's Deployment runs it with two replicas:
    `fairpilot operator --namespace default --peering fairpilot` (controller/main.py's
    `operate`), here in the sandbox's thread so that the warehouse can be mongomock."""

    def _run_operator(self) -> None:
        # The chart installs the KopfPeering with the operator; Kopf refuses to start without.
        peering = {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": PEERING},
        }
        try:
            self.cluster.custom.create_namespaced_custom_object(
                "kopf.dev", "v1", self.namespace, "kopfpeerings", peering
            )
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:  # there already, from before a restart
                raise
        assert self.runtime is not None
        asyncio.run(
            operate(
                self.runtime, [self.namespace], free_port(), stop_flag=self._stop, peering=PEERING
            )
        )


class Collected(logging.Handler):
    """Every log record of this process, formatted with its traceback (caplog for a module)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Run:
    audit: list[dict[str, Any]]  # the API server's audit log, every request
    objects: dict[str, list[dict[str, Any]]]  # what the API server holds, by resource
    kafka: dict[str, list[ConsumerRecord]]  # what the bridge produced, by topic
    warehouse: dict[str, list[dict[str, Any]]]  # MongoDB documents, by collection
    artifacts: dict[str, bytes]  # every object in the bucket
    logs: list[str]  # every log record of the operator's process, at DEBUG


def stored(sandbox: Sandbox, path: str) -> list[dict[str, Any]]:
    """A list from the API server, read as the sandbox's user (not counted as the operator)."""
    request = urllib.request.Request(sandbox.url + path, headers={"User-Agent": SANDBOX_USER_AGENT})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)["items"]


def resource_paths(namespace: str) -> dict[str, str]:
    core, apis = f"/api/v1/namespaces/{namespace}", "/apis/{}/namespaces/" + namespace
    paths = {plural: f"{core}/{plural}" for plural in ("pods", "configmaps", "events")}
    paths["jobs"] = f"{apis.format('batch/v1')}/jobs"
    paths["events.k8s.io"] = f"{apis.format('events.k8s.io/v1')}/events"
    paths["kopfpeerings"] = f"{apis.format('kopf.dev/v1')}/kopfpeerings"
    for kind in KINDS:
        paths[kind.plural] = f"{apis.format(kind.api_version)}/{kind.plural}"
    return paths


def as_text(record: ConsumerRecord) -> str:
    """A Kafka record's value and headers (a dead letter's value is whatever came in)."""
    headers = " ".join(f"{key}={value.decode(errors='replace')}" for key, value in record.headers)
    return f"{record.value.decode(errors='replace')} {headers}"


def pipeline_dataset(sandbox: Sandbox) -> str | None:
    return next(
        (n for n, i in by_name(sandbox).items() if i["kind"] == "Dataset" and n != "wrong-target"),
        None,
    )


def everything_delivered(sandbox: Sandbox) -> bool:
    """Every phase change on Kafka, every record in the warehouse, every report announced."""
    items = by_name(sandbox)
    for item in items.values():
        status = item.get("status") or {}
        done = status.get("delivered") or {}
        if f"status/g1/{status.get('phase')}" not in done.get("kafka", []):
            return False
        if status.get("phase") == "Succeeded" and "record/g1" not in done.get("warehouse", []):
            return False
    explanations = [n for n, i in items.items() if i["kind"] == "Explanation"]
    return bool(explanations) and all(
        delivered(sandbox, explanations[0], f"xai.reported/g1/{level}")
        for level in ("beginner", "intermediate", "expert")
    )


# The seed's upload event for a dataset with a target and a sensitive feature: the whole chain.
MESSAGE = {
    "event_type": "dataset.uploaded",
    "dataset_id": DATASET_ID,
    "user_id": USER,
    "timestamp": "2025-10-10T12:00:00.000000",
    "target_column_name": "income",
    "task_type": "classification",
    "sensitive_features": ["sex"],
    "time_budget": "10",
}
DATA_URI = f"s3://{BUCKET}/data/{USER}/{DATASET_ID}.csv"


def drive(sandbox: Sandbox) -> str:
    """The pipeline from a Kafka message, a junk message, a Dataset whose Job fails, and an
    operator restart while Jobs run, all to the end, then a ModelMonitor's window on the
    pipeline's model; returns the pipeline's Dataset."""
    assert sandbox.kafka is not None
    with sandbox.runner.held():  # finished Jobs report only after the restart
        produce(sandbox.kafka, [("dataset-events", MESSAGE),
                                ("bias-trigger-events", b"\x00not json")])  # fmt: skip
        wrong = {"uri": DATA_URI, "userId": USER, "target": "salary"}
        sandbox.apply([resource("Dataset", "wrong-target", wrong)])
        name = eventually(lambda: pipeline_dataset(sandbox), 30)
        assert name, "the bridge made no Dataset"
        wait_for(sandbox, name, lambda s: s.get("phase") == "Running")
        sandbox.restart_operator()  # a new pod while Jobs run: it reads its Jobs back
    assert sandbox.wait(240), {
        n: i.get("status", {}).get("message") for n, i in by_name(sandbox).items()
    }
    wait_for(sandbox, "wrong-target", lambda s: s.get("phase") == "Failed")
    # A monitor of the pipeline's model, one window of one batch from the bucket.
    model = next(n for n, i in by_name(sandbox).items() if i["kind"] == "TrainingRun")
    boto3.client("s3", endpoint_url=sandbox.config.s3_endpoint_url).put_object(
        Bucket=BUCKET, Key=f"batches/{USER}/1.csv", Body=TINY_CSV.encode()
    )
    batches = {"uri": f"s3://{BUCKET}/batches/{USER}/", "intervalSeconds": 10}
    monitor = {"trainingRunRef": model, "userId": USER, "batches": batches}
    sandbox.apply([resource("ModelMonitor", "watch", monitor)])
    wait_for(sandbox, "watch", lambda s: s.get("window") == 1 and s.get("phase") == "Succeeded",
             120)  # fmt: skip
    assert eventually(lambda: everything_delivered(sandbox), 60), {
        n: (i.get("status") or {}).get("delivered") for n, i in by_name(sandbox).items()
    }
    return name


def delete_dataset(sandbox: Sandbox, name: str) -> None:
    """Delete it as a user would, wait until it is gone, and give the operator time to react."""
    sandbox.cluster.custom.delete_namespaced_custom_object(
        API_GROUP, "v1alpha1", NAMESPACE, "datasets", name
    )
    assert eventually(lambda: name not in by_name(sandbox), 10)
    eventually(lambda: False, 2)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, s3_server: dict[str, str]) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("security")
    endpoint = s3_server["FAIRPILOT_S3_ENDPOINT_URL"]
    collected, root = Collected(), logging.getLogger()
    level = root.level
    with pytest.MonkeyPatch.context() as patch, mongomock.patch(servers=((MONGO_HOST, 27017),)):
        # What the chart gives the operator and the Jobs from Secrets, as environment variables.
        patch.setenv("AWS_ACCESS_KEY_ID", S3_KEY_ID)
        patch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
        patch.setenv("MONGO_URI", f"mongodb://fairpilot:{MONGO_PASSWORD}@{MONGO_HOST}:27017/fp")
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=DATA_URI.split("/", 3)[3], Body=TINY_CSV.encode())
        warehouse = Warehouse.from_env()  # through the URI with the password, as on a cluster
        assert warehouse is not None
        config = sandbox_config(
            tmp / "artifacts",
            artifact_root=f"s3://{BUCKET}/artifacts",
            s3_endpoint_url=endpoint,
            s3_credentials_secret="fairpilot-s3",
        )
        root.addHandler(collected)
        root.setLevel(logging.DEBUG)
        try:
            with ChartSandbox(
                tmp / "artifacts",
                namespace=NAMESPACE,
                warehouse=warehouse,
                config=config,
                data_uri_template=f"s3://{BUCKET}/data/{{user_id}}/{{dataset_id}}.csv",
                audit_log=tmp / "audit.jsonl",
            ) as sandbox:
                # The Secret the Jobs take their S3 credentials from, in their namespace (the
                # runner resolves envFrom from there, as the kubelet does).
                sandbox.cluster.core.create_namespaced_secret(
                    NAMESPACE,
                    {
                        "metadata": {"name": "fairpilot-s3"},
                        "data": {
                            key: base64.b64encode(value.encode()).decode()
                            for key, value in (
                                ("AWS_ACCESS_KEY_ID", S3_KEY_ID),
                                ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY),
                            )
                        },
                    },
                )
                name = drive(sandbox)
                delete_dataset(sandbox, "wrong-target")
                paths = resource_paths(NAMESPACE)
                objects = {plural: stored(sandbox, path) for plural, path in paths.items()}
                assert sandbox.kafka is not None and sandbox.bridge_config is not None
                topics = sandbox.bridge_config.topics
                out = [topics.bias, topics.automl, topics.xai, topics.status, topics.dead_letter]
                records = read(sandbox.kafka, out)
                delete_dataset(sandbox, name)  # the whole pipeline, by garbage collection
        finally:
            root.removeHandler(collected)
            root.setLevel(level)
    documents = {
        collection: list(warehouse.db[collection].find({}))
        for collection in warehouse.db.list_collection_names()
    }
    artifacts = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            artifacts[item["Key"]] = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
    audit = [json.loads(line) for line in (tmp / "audit.jsonl").read_text().splitlines()]
    kafka = {topic: [r for r in records if r.topic == topic] for topic in out}
    yield Run(audit, objects, kafka, documents, artifacts, collected.lines)


# --- the instrument: the API server's audit log --------------------------------------------


def test_the_audit_log_says_who_did_what_to_which_object(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with running_emulator(audit_log=log) as url:
        cluster = Cluster.for_host(url)
        cluster.client.user_agent = "auditor/1"
        core = cluster.core
        core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "spec"}})
        core.read_namespaced_config_map("spec", NAMESPACE)
        core.patch_namespaced_config_map("spec", NAMESPACE, {"data": {"a": "b"}})
        with pytest.raises(kubernetes.client.ApiException):
            core.read_namespaced_config_map("absent", NAMESPACE)
        stream = kubernetes.watch.Watch()
        for _ in stream.stream(core.list_namespaced_config_map, NAMESPACE, _request_timeout=5):
            stream.stop()  # its first event: the watch has been logged by then
        core.delete_namespaced_config_map("spec", NAMESPACE)
        probe = urllib.request.Request(f"{url}/apis", headers={"User-Agent": "prober"})
        urllib.request.urlopen(probe, timeout=5).close()
        lines = eventually(lambda: log.read_text().splitlines()[6:] and log.read_text(), 5)
    events = [json.loads(line) for line in lines.splitlines()]
    seen = [
        (e["verb"], (e.get("objectRef") or {}).get("name"), e["responseStatus"]["code"], e["stage"])
        for e in events
    ]
    assert seen == [
        ("create", "spec", 201, "ResponseComplete"),
        ("get", "spec", 200, "ResponseComplete"),
        ("patch", "spec", 200, "ResponseComplete"),
        ("get", "absent", 404, "ResponseComplete"),
        ("watch", None, 200, "ResponseStarted"),
        ("delete", "spec", 200, "ResponseComplete"),
        ("get", None, 200, "ResponseComplete"),
    ]
    assert [e["userAgent"] for e in events] == ["auditor/1"] * 6 + ["prober"]
    assert events[0]["objectRef"] == {
        "apiGroup": "", "apiVersion": "v1", "namespace": NAMESPACE,
        "resource": "configmaps", "name": "spec",
    }  # fmt: skip
    assert "objectRef" not in events[-1] and events[-1]["requestURI"] == "/apis"


# request -> verb, apiGroup ("core": ""), resource, namespace, name, subresource ("-": none)
RESOLVED = {
    "GET /apis/batch/v1/jobs?watch=true": "watch batch jobs - - -",
    "GET /api/v1/watch/namespaces/ml/pods": "watch core pods ml - -",
    "PUT /apis/batch/v1/namespaces/ml/jobs/j": "update batch jobs ml j -",
    "PATCH /apis/fairpilot.io/v1alpha1/namespaces/ml/datasets/d/status":
        "patch fairpilot.io datasets ml d status",
    "DELETE /api/v1/namespaces/ml/pods": "deletecollection core pods ml - -",
    "GET /api/v1/namespaces/ml": "get core namespaces ml ml -",
    "PUT /api/v1/namespaces/ml/finalize": "update core namespaces ml ml finalize",
    "GET /api/v1/namespaces/ml/pods/p/log": "get core pods ml p log",
    "GET /apis/fairpilot.io/v1alpha1": "get",
    "GET /version": "get",
}  # fmt: skip


@pytest.mark.parametrize("request_line", RESOLVED)
def test_requests_resolve_to_rbac_verbs_and_objects(request_line: str) -> None:
    method, url = request_line.split(" ")
    path, _, query = url.partition("?")
    info = request_info(method, path, query == "watch=true")
    ref = info.get("objectRef")
    fields = ("apiGroup", "resource", "namespace", "name", "subresource")
    words = [info["verb"]]
    if ref is not None:
        words += [{"": "core", None: "-"}.get(ref.get(f), ref.get(f)) for f in fields]
    assert " ".join(words) == RESOLVED[request_line]


# --- RBAC --------------------------------------------------------------------------------


# Rules the run cannot exercise, each with the reason; every other rule must be used. None at
# the moment: peering runs with one replica (Kopf talks to the KopfPeering all the same), the
# finalizers rule is derived from what the operator created (finalizer_updates), and the
# ClusterRole is held to the Role's rules (test_the_cluster_role_grants_...).
UNEXERCISED: dict[tuple[str, str, str], str] = {}


def chart_rules(helm: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    (role,) = by_kind(render(helm, values), "Role")
    return role["rules"]


def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def finalizer_updates(run: Run) -> set[tuple[str, str, str]]:
    """What the API server's OwnerReferencesPermissionEnforcement admission asks of a client
    that creates an object whose owner reference blocks the owner's deletion: `update` on the
    owner's `finalizers` subresource. No request shows it (the emulator has no admission), so
    it is read off what the operator created."""
    created = {
        (ref["resource"], ref.get("name"))
        for event in run.audit
        if event["userAgent"] not in NOT_THE_OPERATOR and event["verb"] == "create"
        for ref in [event.get("objectRef") or {}]
    }
    needed = set()
    for plural, items in run.objects.items():
        for item in items:
            if (plural, item["metadata"]["name"]) not in created:
                continue
            for owner in item["metadata"].get("ownerReferences") or []:
                if owner.get("blockOwnerDeletion"):
                    owners = BY_KIND[owner["kind"]].plural
                    needed.add((API_GROUP, f"{owners}/finalizers", "update"))
    return needed


def test_the_operators_role_grants_exactly_what_it_uses(helm: Path, run: Run) -> None:
    rules = chart_rules(helm, {"watch": {"namespaces": [NAMESPACE]}, "replicaCount": 2})
    granted = grants(rules)
    used: set[tuple[str, str, str]] = set()
    refused, agents = [], set()
    for event in run.audit:
        if event["userAgent"] in NOT_THE_OPERATOR:
            continue
        agents.add(event["userAgent"].split("/")[0])
        ref = event.get("objectRef")
        if ref is None:
            if event["verb"] != "get" or not DISCOVERY.match(event["requestURI"]):
                refused.append(f"{event['verb']} {event['requestURI']} (not discovery)")
            continue
        sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
        wanted = (ref["apiGroup"], ref["resource"] + sub, event["verb"])
        if ref.get("namespace") != NAMESPACE:  # a Role grants nothing outside its namespace
            refused.append(f"{wanted} outside the namespace: {event['requestURI']}")
        elif wanted not in granted:
            refused.append(f"{wanted}: {event['requestURI']}")
        used.add(wanted)
    # Kopf (aiohttp) and the operator's own calls (the kubernetes client) were both seen.
    assert agents == {"kopf", "OpenAPI-Generator"}, agents
    assert not refused, "the operator needs more than the chart grants:\n" + "\n".join(refused)
    used |= finalizer_updates(run)
    unused = granted - used
    assert unused == set(UNEXERCISED), "granted, never used: remove from rbac.yaml and README"


def test_the_run_covered_every_path_that_calls_the_api(run: Run) -> None:
    """The RBAC comparison means something only if the run went where the calls are."""
    operator = [e for e in run.audit if e["userAgent"] not in NOT_THE_OPERATOR]
    seen = {(e["verb"], (e.get("objectRef") or {}).get("resource")) for e in operator}
    assert ("list", "pods") in seen, "no failed Job: termination messages were never read"
    assert ("get", "jobs") in seen, "no Job was read back (adoption after a restart)"
    assert ("create", "datasets") in seen, "the bridge made no resource"
    assert ("create", "biasanalyses") in seen, "the pipeline made no next stage"
    assert ("patch", "kopfpeerings") in seen, "Kopf peering never ran"
    phases = {json.loads(r.value)["phase"] for r in run.kafka["fairpilot-status-events"]}
    assert {"Succeeded", "Failed"} <= phases, phases
    assert run.kafka["fairpilot-dead-letter"], "the junk message was not dead-lettered"
    for plural in ("datasets", "biasanalyses", "trainingruns", "explanations", "jobs", "pods"):
        assert run.objects[plural], f"no {plural} were left to search"


@pytest.mark.parametrize("name", [*VALUE_SETS, "one-replica"])
def test_no_wildcards_no_secrets_and_a_cluster_role_only_for_all_namespaces(
    helm: Path,
    name: str,
) -> None:
    values = VALUE_SETS.get(name, {"replicaCount": 1})
    objects = render(helm, values)
    roles = by_kind(objects, "Role") + by_kind(objects, "ClusterRole")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert not any("*" in item for item in rule.get(field, [])), (name, rule)
            assert not any(r.split("/")[0] == "secrets" for r in rule["resources"]), (name, rule)
    everywhere = bool((values.get("watch") or {}).get("allNamespaces"))
    cluster_wide = by_kind(objects, "ClusterRole") + by_kind(objects, "ClusterRoleBinding")
    namespaced = by_kind(objects, "Role") + by_kind(objects, "RoleBinding")
    assert bool(cluster_wide) == everywhere and bool(namespaced) == (not everywhere)
    peering = {"kopfpeerings", "clusterkopfpeerings"}
    for role in roles:
        peers = [r for r in role["rules"] if peering & set(r["resources"])]
        # Kopf's peering objects only for more than one replica (standalone otherwise).
        assert bool(peers) == (int(values.get("replicaCount", 1)) > 1), (name, peers)


def test_the_cluster_role_grants_what_a_role_does_and_nothing_more(helm: Path) -> None:
    role = chart_rules(helm, {"replicaCount": 2})
    (cluster_role,) = by_kind(
        render(helm, {"replicaCount": 2, "watch": {"allNamespaces": True}}), "ClusterRole"
    )
    namespaced = {(g, r.replace("kopfpeerings", "clusterkopfpeerings"), v)
                  for g, r, v in grants(role)}  # fmt: skip
    assert grants(cluster_role["rules"]) == namespaced


# --- Jobs --------------------------------------------------------------------------------

ALLOWED_VOLUMES = {"configMap", "emptyDir"}  # the spec file and scratch space, nothing else
# Environment variables that hold a credential, whose value must come from a Secret.
CREDENTIAL = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|MONGO_URI")


def literal_credentials(container: dict[str, Any]) -> list[str]:
    """The container's credential variables written into the manifest instead of a Secret."""
    return [
        variable["name"]
        for variable in container.get("env") or []
        if CREDENTIAL.search(variable["name"])
        and "secretKeyRef" not in (variable.get("valueFrom") or {})
    ]


def assert_locked_down(pod: dict[str, Any], where: str, secret: str | None = None) -> None:
    """A pod spec as the restricted Pod Security Standard wants it, and then some."""
    assert pod.get("automountServiceAccountToken") is False, where
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host), (where, host)
    context = pod.get("securityContext") or {}
    assert context.get("runAsNonRoot") is True, where
    assert int(context.get("runAsUser", 0)) > 0, where
    assert (context.get("seccompProfile") or {}).get("type") == "RuntimeDefault", where
    for volume in pod.get("volumes") or []:
        assert set(volume) - {"name"} <= ALLOWED_VOLUMES, (where, volume)
    containers = [
        *pod["containers"],
        *pod.get("initContainers", []),
        *pod.get("ephemeralContainers", []),
    ]
    for container in containers:
        security = container.get("securityContext") or {}
        assert security.get("runAsNonRoot", context["runAsNonRoot"]) is True, where
        assert int(security.get("runAsUser", context["runAsUser"])) > 0, where
        assert security.get("readOnlyRootFilesystem") is True, where
        assert security.get("allowPrivilegeEscalation") is False, where
        assert not security.get("privileged"), where
        assert security.get("capabilities") == {"drop": ["ALL"]}, where
        seccomp = security.get("seccompProfile") or context["seccompProfile"]
        assert seccomp["type"] == "RuntimeDefault", where
        assert not any(port.get("hostPort") for port in container.get("ports") or []), where
        # Credentials only by reference to a Secret, never as a value in the manifest.
        assert not literal_credentials(container), where
        sources = container.get("envFrom") or []
        assert sources == ([{"secretRef": {"name": secret}}] if secret else []), where


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.kind)
def test_every_stage_pod_is_locked_down(kind: Kind, gpu: bool) -> None:
    config = OperatorConfig(
        s3_credentials_secret="s3-credentials",
        gpu=GpuConfig(runtime_class_name="nvidia", node_selector={"gpu": "h100"}),
    )
    spec: dict[str, Any] = {"resources": {"gpu": 1, "cpu": "2", "memory": "8Gi"}} if gpu else {}
    obj = {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {"name": "locked", "namespace": "ml", "uid": "uid-1", "generation": 1},
        "spec": spec,
    }
    job = build_job(kind, obj, config, "g1")
    pod = job["spec"]["template"]["spec"]
    assert_locked_down(pod, f"{kind.kind} ({'gpu' if gpu else 'cpu'})", "s3-credentials")
    assert ("nvidia.com/gpu" in pod["containers"][0]["resources"]["limits"]) == gpu
    assert (pod.get("runtimeClassName") == "nvidia") == gpu


def test_the_jobs_the_operator_created_are_locked_down(run: Run) -> None:
    assert len(run.objects["jobs"]) >= 4 and run.objects["pods"]
    for job in run.objects["jobs"]:
        where = f"Job {job['metadata']['name']}"
        assert_locked_down(job["spec"]["template"]["spec"], where, "fairpilot-s3")
    for pod in run.objects["pods"]:
        assert_locked_down(pod["spec"], f"Pod {pod['metadata']['name']}", "fairpilot-s3")


# --- credentials -------------------------------------------------------------------------


def found(text: str, secrets: dict[str, str] = SECRETS) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_the_chart_hands_credentials_to_the_operator_only_from_secrets(
    helm: Path,
    name: str,
) -> None:
    objects = render(helm, VALUE_SETS[name])
    assert not by_kind(objects, "Secret"), "the chart makes no Secret: the user's hold them"
    (deployment,) = by_kind(objects, "Deployment")
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert not literal_credentials(container), name
        assert all(set(source) == {"secretRef"} for source in container.get("envFrom") or [])
    for config_map in by_kind(objects, "ConfigMap"):
        assert not re.search(r"(?i)password|secret_access_key|mongodb://", str(config_map["data"]))


def test_the_search_finds_a_planted_credential() -> None:
    assert found(f'{{"message": "denied for {S3_SECRET_KEY}"}}') == ["AWS_SECRET_ACCESS_KEY"]


def test_no_credential_in_any_object_status_event_or_pod(run: Run) -> None:
    for plural, items in run.objects.items():
        for item in items:
            where = f"{plural}/{item['metadata']['name']}"
            assert not found(json.dumps(item)), where
    resources = [i for kind in KINDS for i in run.objects[kind.plural]]
    assert len(resources) >= 4 and all(i["status"].get("outputUri") for i in resources)
    assert any(e["reason"] == "Failed" for e in run.objects["events"]), "no Event was searched"


def test_no_credential_in_the_operators_log(run: Run) -> None:
    assert len(run.logs) > 100 and any("running fp-" in line for line in run.logs)
    for line in run.logs:
        leaked = found(line)
        if (
            leaked == ["AWS_ACCESS_KEY_ID"]
            and line.startswith("DEBUG botocore.")
            and f"Credential={S3_KEY_ID}/" in line
        ):
            # The key id is no secret: every signed S3 request carries it in clear in its
            # Authorization header, which botocore's DEBUG wire trace prints (with the request's
            # signature, never the secret key). Everywhere else it must not appear either.
            continue
        assert not leaked, line[:300]


def test_no_credential_in_artifacts_or_reports(run: Run) -> None:
    reports = [key for key in run.artifacts if key.endswith(".html")]
    assert len(reports) >= 4 and any(key.endswith("result.json") for key in run.artifacts)
    for key, body in run.artifacts.items():
        assert not found(body.decode("latin-1")), key


def test_no_credential_in_kafka_events(run: Run) -> None:
    assert all(run.kafka[topic] for topic in ("bias-events", "automl-events", "xai-events"))
    for topic, records in run.kafka.items():
        for record in records:
            assert not found(as_text(record)), (topic, record)


def test_no_credential_in_the_warehouse(run: Run) -> None:
    assert {"datasets", "bias_reports", "ai_models", "xai_reports", "audit"} <= set(run.warehouse)
    for collection, documents in run.warehouse.items():
        for document in documents:
            assert not found(json.dumps(document, default=str)), (collection, document["_id"])


def test_no_credential_in_the_api_servers_audit_log(run: Run) -> None:
    assert run.audit
    assert not found("\n".join(json.dumps(event) for event in run.audit))


KAFKA_SASL_ENV = {
    "FAIRPILOT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "FAIRPILOT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "FAIRPILOT_KAFKA_SASL_USERNAME": "fairpilot",
    "FAIRPILOT_KAFKA_SASL_PASSWORD": KAFKA_PASSWORD,
}


@pytest.mark.timeout(60)
def test_the_kafka_password_stays_out_of_the_bridges_log(caplog: pytest.LogCaptureFixture) -> None:
    # Tansu (this build) has no SASL listener, so the bridge's every attempt fails: the path
    # where a client library's error and the bridge's retry log could carry the credentials.
    caplog.set_level(logging.DEBUG)
    with running_broker() as bootstrap:
        config = BridgeConfig.from_env({"FAIRPILOT_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                                        **KAFKA_SASL_ENV})  # fmt: skip
        assert config is not None and config.client_options()["sasl_plain_password"]
        assert KAFKA_PASSWORD not in f"{config!r} {config!s}"
        bridge = Bridge(Cluster.for_host("http://127.0.0.1:9"), config)

        async def attempt() -> None:
            await bridge.start()
            await asyncio.sleep(2)
            await bridge.stop()

        asyncio.run(attempt())
    assert "Kafka not reachable yet" in caplog.text
    assert "UnsupportedSaslMechanism" in caplog.text  # it did try SASL
    assert KAFKA_PASSWORD not in caplog.text


def test_a_refused_kafka_configuration_does_not_echo_the_password() -> None:
    incomplete = {k: v for k, v in KAFKA_SASL_ENV.items() if "MECHANISM" not in k}
    with pytest.raises(ValidationError) as refused:
        BridgeConfig.from_env({"FAIRPILOT_KAFKA_BOOTSTRAP_SERVERS": "kafka:9093", **incomplete})
    assert KAFKA_PASSWORD not in str(refused.value)


def test_a_refused_mongodb_uri_does_not_echo_the_password() -> None:
    for uri in (
        f"mongodb+srv://fairpilot:{MONGO_PASSWORD}@{MONGO_HOST}:27017/fp",
        f"mongodb://fairpilot:{MONGO_PASSWORD}@{MONGO_HOST}:notaport/fp",
        f"mongodb://fair@pilot:{MONGO_PASSWORD}@{MONGO_HOST}/fp",
    ):
        with pytest.raises((ValueError, PyMongoError)) as refused:
            Warehouse.from_uri(uri, timeout_ms=100)
        assert MONGO_PASSWORD not in str(refused.value), uri


class StopWhenReady(io.StringIO):
    """Standard output that interrupts its process (SIGINT, as Ctrl-C) once told `ready`."""

    def write(self, text: str) -> int:
        written = super().write(text)
        if text.startswith("ready"):
            signal.raise_signal(signal.SIGINT)
        return written


@pytest.mark.timeout(120)
def test_sandbox_up_does_not_print_the_mongodb_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fairpilot.sandbox.up import up

    output = StopWhenReady()
    monkeypatch.setattr(sys, "stdout", output)
    kopf_running = logging.getLogger("kopf._core.reactor.running")
    saved = [signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), kopf_running.level]
    try:
        with mongomock.patch(servers=((MONGO_HOST, 27017),)):
            uri = f"mongodb://fairpilot:{MONGO_PASSWORD}@{MONGO_HOST}:27017/fp"
            assert up(tmp_path / "artifacts", noop_jobs=True, mongo_uri=uri) == 0
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
        kopf_running.setLevel(saved[2])
    assert "warehouse:" in output.getvalue(), output.getvalue()
    assert MONGO_PASSWORD not in output.getvalue()

"""The dev cluster's manifests: `manifests/dev/services` (MinIO, Kafka, MongoDB and dev-only
Secrets), the overlay `manifests/overlays/dev` (base + services, the operator pointed at them)
and `manifests/dev/values-kind.yaml` (the same for `helm install`).

They build with `kubectl kustomize`, every object validates against the Kubernetes schemas
(strict), public images are pinned, the pods are hardened, and the overlay and the Helm values
configure the operator alike, read back through the operator's own configuration code. No
cluster, no network."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from fairpilot.bridge.config import BridgeConfig
from fairpilot.controller.main import config_from_env

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "manifests" / "dev" / "services"
OVERLAY = ROOT / "manifests" / "overlays" / "dev"
BASE = ROOT / "manifests" / "base"
VALUES_KIND = ROOT / "manifests" / "dev" / "values-kind.yaml"
CHART = ROOT / "charts" / "fairpilot"
from k8s_tools import ensure  # noqa: E402

# The cluster version the tools target, and the newest schemas kubernetes_validate ships.
KUBERNETES_VERSIONS = sorted({"1.35.0", kubernetes_validate.latest_version()})
NAMESPACE = "fairpilot"
WORKLOADS = ("Deployment", "StatefulSet", "Job")


Doc = dict[str, Any]


@pytest.fixture(scope="module")
def tools() -> dict[str, Path]:
    return ensure()


def run(*command: str | Path) -> str:
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed:\n{done.stderr}")
    return done.stdout


def kustomize(tools: dict[str, Path], path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(run(tools["kubectl"], "kustomize", path)) if d]


@pytest.fixture(scope="module")
def services(tools: dict[str, Path]) -> list[Doc]:
    return kustomize(tools, SERVICES)


@pytest.fixture(scope="module")
def overlay(tools: dict[str, Path]) -> list[Doc]:
    return kustomize(tools, OVERLAY)


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def pod_specs(docs: list[Doc]) -> list[tuple[str, Doc]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in WORKLOADS
    ]


def containers(pod: Doc) -> list[Doc]:
    return pod.get("initContainers", []) + pod["containers"]


def env_of(container: Doc) -> dict[str, Any]:
    """Name -> value, or the valueFrom reference for variables from Secrets and fields."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def validate_all(docs: list[Doc]) -> None:
    assert docs
    for doc in docs:
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = f"{doc['kind']}/{doc['metadata']['name']}"
                raise AssertionError(f"{where} (Kubernetes {version}): {exc.message}") from exc


# ---- manifests/dev/services ----


def test_services_build_and_validate(services: list[Doc]) -> None:
    validate_all(services)
    names = {(d["kind"], d["metadata"]["name"]) for d in services}
    assert names == {
        ("Secret", "fairpilot-s3"),
        ("Secret", "fairpilot-mongo"),
        ("Deployment", "minio"),
        ("Service", "minio"),
        ("Job", "minio-buckets"),
        ("Deployment", "kafka"),
        ("Service", "kafka"),
        ("Deployment", "mongodb"),
        ("Service", "mongodb"),
    }
    assert {d["metadata"].get("namespace") for d in services} == {NAMESPACE}
    # manifests/base owns the Namespace; a second one would break the overlay's build.
    assert not [d for d in services if d["kind"] == "Namespace"]


def test_public_images_are_pinned_to_exact_tags(services: list[Doc]) -> None:
    images = []
    for where, pod in pod_specs(services):
        for container in containers(pod):
            image = container["image"]
            images.append(image)
            if "@sha256:" in image:
                continue
            name, _, tag = image.rpartition(":")
            assert name and "/" not in tag, f"{where}: {image} has no tag"
            assert tag != "latest" and re.search(r"\d", tag), f"{where}: {image} is not pinned"
    repositories = {image.rpartition(":")[0] for image in images}
    assert repositories == {"minio/minio", "minio/mc", "apache/kafka", "mongo"}


def test_services_expose_the_ports_the_operator_is_given(services: list[Doc]) -> None:
    for name, port in (("minio", 9000), ("kafka", 9092), ("mongodb", 27017)):
        service = one(services, "Service", name)
        assert port in [p["port"] for p in service["spec"]["ports"]], name
        labels = one(services, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), name


def test_pods_are_hardened_and_sized(services: list[Doc]) -> None:
    for where, pod in pod_specs(services):
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] > 0, where
        assert security["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod["automountServiceAccountToken"] is False, where
        # Service links would hand KAFKA_PORT=tcp://... to the Kafka image as a broker property.
        assert pod["enableServiceLinks"] is False, where
        for container in containers(pod):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), where
            assert "memory" in container["resources"]["limits"], where
            if where.startswith("Deployment/"):
                assert "readinessProbe" in container, where
                assert "livenessProbe" in container, where


def test_dev_credentials_are_marked_and_shared_with_minio(services: list[Doc]) -> None:
    s3 = one(services, "Secret", "fairpilot-s3")
    mongo = one(services, "Secret", "fairpilot-mongo")
    for secret in (s3, mongo):
        assert secret["metadata"]["annotations"]["fairpilot.io/dev-only"] == "true"
    assert set(s3["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}
    # The bucket Job and the e2e script put them in an MC_HOST_ URL.
    for value in s3["stringData"].values():
        assert re.fullmatch(r"[A-Za-z0-9._-]+", value), value
    assert len(s3["stringData"]["AWS_SECRET_ACCESS_KEY"]) >= 8  # MinIO's minimum
    assert mongo["stringData"] == {"uri": "mongodb://mongodb:27017"}
    (minio,) = one(services, "Deployment", "minio")["spec"]["template"]["spec"]["containers"]
    env = env_of(minio)
    assert env["MINIO_ROOT_USER"]["secretKeyRef"] == {
        "name": "fairpilot-s3",
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert env["MINIO_ROOT_PASSWORD"]["secretKeyRef"] == {
        "name": "fairpilot-s3",
        "key": "AWS_SECRET_ACCESS_KEY",
    }


def test_kafka_is_one_kraft_broker_with_auto_created_topics(services: list[Doc]) -> None:
    (kafka,) = one(services, "Deployment", "kafka")["spec"]["template"]["spec"]["containers"]
    env = env_of(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in name for name in env)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "PLAINTEXT://kafka.fairpilot.svc.cluster.local:9092" in advertised
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "true"
    for name in (
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[name] == "1", name


def test_bucket_job_creates_both_buckets(services: list[Doc]) -> None:
    job = one(services, "Job", "minio-buckets")
    (mc,) = job["spec"]["template"]["spec"]["containers"]
    script = " ".join(mc.get("command", []) + mc.get("args", []))
    assert "mb --ignore-existing local/fairpilot-artifacts local/datasets" in script
    assert env_of(mc)["MC_HOST_local"].endswith("@minio:9000")


# ---- manifests/dev/values-kind.yaml ----


def unknown_keys(values: Any, defaults: Any, path: str = "") -> list[str]:
    """Keys of `values` that `defaults` does not have (free-form maps, empty there, accept any)."""
    if not isinstance(values, dict) or not isinstance(defaults, dict) or not defaults:
        return []
    unknown = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        if key not in defaults:
            unknown.append(where)
        else:
            unknown += unknown_keys(value, defaults[key], where)
    return unknown


def merged(defaults: Any, values: Any) -> Any:
    if isinstance(defaults, dict) and isinstance(values, dict):
        return {
            k: merged(defaults.get(k), values[k]) if k in values else defaults[k]
            for k in defaults.keys() | values.keys()
        }
    return values


def test_unknown_keys_are_found() -> None:
    defaults = {"a": {"b": 1, "free": {}}, "c": 2}
    assert unknown_keys({"a": {"b": 2, "x": 1, "free": {"k": "v"}}, "d": 0}, defaults) == [
        "a.x",
        "d",
    ]


def test_values_kind_uses_only_chart_keys() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    values = yaml.safe_load(VALUES_KIND.read_text())
    assert unknown_keys(values, defaults) == []
    schema_file = CHART / "values.schema.json"
    if schema_file.exists():
        jsonschema.validate(merged(defaults, values), yaml.safe_load(schema_file.read_text()))


# ---- manifests/overlays/dev, and its equivalence with values-kind.yaml ----


def operator_container(docs: list[Doc]) -> Doc:
    deployment = one(docs, "Deployment", "fairpilot")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def operator_settings(docs: list[Doc], tmp_path: Path) -> dict[str, Any]:
    """What the operator process makes of these objects, through its own configuration code."""
    container = operator_container(docs)
    config = tmp_path / "config.yaml"
    config.write_text(one(docs, "ConfigMap", "fairpilot")["data"]["config.yaml"])
    env = env_of(container)
    plain = {k: v for k, v in env.items() if isinstance(v, str)}
    plain["FAIRPILOT_CONFIG_FILE"] = str(config)
    return {
        "image": container["image"],
        "pull_policy": container["imagePullPolicy"],
        "config": config_from_env(plain),
        "kafka": BridgeConfig.from_env(plain),
        "s3_endpoint_url": env.get("FAIRPILOT_S3_ENDPOINT_URL"),
        "mongo_uri": env.get("MONGO_URI"),
        "mongo_database": env.get("FAIRPILOT_MONGO_DATABASE"),
        "env_from": container.get("envFrom"),
    }


def check_dev_settings(settings: dict[str, Any], services: list[Doc]) -> None:
    """The operator is pointed at what manifests/dev/services runs."""
    config = settings["config"]
    assert settings["image"] == "ghcr.io/fairpilot/operator:0.1.0"
    assert settings["pull_policy"] in ("IfNotPresent", "Never")
    assert config.jobs_image == "ghcr.io/fairpilot/jobs:0.1.0"
    assert config.jobs_cuda_image == "ghcr.io/fairpilot/jobs-cuda:0.1.0"
    assert config.image_pull_policy in ("IfNotPresent", "Never")
    # MinIO: the endpoint is its Service; the bucket is one the Job creates.
    assert config.artifact_root == "s3://fairpilot-artifacts"
    assert config.s3_endpoint_url == settings["s3_endpoint_url"]
    endpoint = urlsplit(config.s3_endpoint_url)
    assert (endpoint.hostname, endpoint.port) == (f"minio.{NAMESPACE}.svc.cluster.local", 9000)
    one(services, "Service", endpoint.hostname.split(".")[0])
    assert config.s3_credentials_secret == "fairpilot-s3"
    assert settings["env_from"] == [{"secretRef": {"name": "fairpilot-s3"}}]
    one(services, "Secret", config.s3_credentials_secret)
    # Kafka: the Service, and data where the bucket Job made a bucket.
    kafka = settings["kafka"]
    assert kafka is not None and kafka.bootstrap_servers == "kafka:9092"
    assert kafka.namespace == NAMESPACE
    assert kafka.data_uri_template == "s3://datasets/{user_id}/{dataset_id}.csv"
    assert kafka.idempotent_producer is True
    # MongoDB: the URI from the dev Secret.
    assert settings["mongo_uri"] == {"secretKeyRef": {"name": "fairpilot-mongo", "key": "uri"}}
    assert settings["mongo_database"] == "fairpilot"
    one(services, "Secret", "fairpilot-mongo")


def test_overlay_builds_and_validates(overlay: list[Doc], services: list[Doc]) -> None:
    validate_all(overlay)
    assert len([d for d in overlay if d["kind"] == "Namespace"]) == 1
    assert len([d for d in overlay if d["kind"] == "CustomResourceDefinition"]) >= 4
    # Every service and Secret of manifests/dev/services is in it.
    for doc in services:
        one(overlay, doc["kind"], doc["metadata"]["name"])
    assert {d["metadata"].get("namespace", NAMESPACE) for d in overlay} == {NAMESPACE}


def test_overlay_points_the_operator_at_the_dev_services(
    overlay: list[Doc], services: list[Doc], tmp_path: Path
) -> None:
    check_dev_settings(operator_settings(overlay, tmp_path), services)


def test_overlay_and_values_kind_configure_the_operator_alike(
    tools: dict[str, Path], overlay: list[Doc], services: list[Doc], tmp_path: Path
) -> None:
    rendered = run(
        tools["helm"], "template", "fairpilot", CHART, "-n", NAMESPACE, "-f", VALUES_KIND
    )
    helm_docs = [d for d in yaml.safe_load_all(rendered) if d]
    validate_all(helm_docs)
    (tmp_path / "helm").mkdir()
    (tmp_path / "kustomize").mkdir()
    from_helm = operator_settings(helm_docs, tmp_path / "helm")
    check_dev_settings(from_helm, services)
    assert operator_settings(overlay, tmp_path / "kustomize") == from_helm

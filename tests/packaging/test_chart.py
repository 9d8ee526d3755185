"""The Helm chart: `helm lint`, `helm template` for several value sets, every rendered object
validated against the Kubernetes schemas, and the rendered configuration read back by the
operator's own code (the pydantic models are the contract the chart must meet)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from k8s_tools import ensure
from support.chart import (
    CHART,
    CUSTOM_KINDS,
    KUBERNETES,
    ROOT,
    VALUE_SETS,
    by_kind,
    container,
    crd_schema,
    plain_env,
    render,
    run_helm,
)

from fairpilot import access
from fairpilot.bridge.config import BridgeConfig
from fairpilot.controller.main import config_from_env
from fairpilot.crds import drift


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_passes(helm: Path, name: str) -> None:
    output = run_helm(helm, "lint", "--strict", str(CHART), values=VALUE_SETS[name])
    assert "0 chart(s) failed" in output


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_rendered_object_is_valid_kubernetes(helm: Path, name: str) -> None:
    objects = render(helm, VALUE_SETS[name])
    assert objects
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{name}: {where}: {exc.message}") from exc
    for obj in by_kind(objects, "KopfPeering") + by_kind(objects, "ClusterKopfPeering"):
        jsonschema.validate(obj, crd_schema(obj["kind"]))


def test_defaults_render_the_expected_objects(helm: Path) -> None:
    kinds = sorted(o["kind"] for o in render(helm, {}))
    assert kinds == [
        "ConfigMap", "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount",
    ]  # fmt: skip


def test_the_operator_reads_the_rendered_configuration(helm: Path, tmp_path: Path) -> None:
    for name, values in VALUE_SETS.items():
        objects = render(helm, values)
        (config_map,) = by_kind(objects, "ConfigMap")
        path = tmp_path / f"{name}.yaml"
        path.write_text(config_map["data"]["config.yaml"])
        operator = container(objects)
        env = plain_env(operator)
        mount = next(m for m in operator["volumeMounts"] if m["name"] == "config")
        assert env["FAIRPILOT_CONFIG_FILE"] == f"{mount['mountPath']}/config.yaml"
        config = config_from_env({**env, "FAIRPILOT_CONFIG_FILE": str(path)})
        assert config.run_as_user == 10001
        if name == "gpu-all-namespaces":
            assert config.gpu.runtime_class_name == "nvidia"
            assert config.gpu.node_selector == {"nvidia.com/gpu.present": "true"}
            assert config.jobs.active_deadline_seconds == 7200
            assert config.s3_credentials_secret == "fairpilot-s3"
            assert config.artifact_root == "s3://ml-artifacts/fairpilot"
            assert config.jobs_image == "ghcr.io/fairpilot/jobs:0.1.0"
            assert config.data_locations == ["s3://datasets/{namespace}/{user_id}/"]
            assert access.readable(config, "team-a", "u") == [
                "s3://team-a-data/", "s3://ml-artifacts/fairpilot/team-a"
            ]  # fmt: skip
            assert access.credentials_secret(config, "team-a") == "a-s3"
            assert access.artifact_root(config, "team-b") == "s3://fairpilot-team-b"
            assert access.credentials_secret(config, "team-b") == "fairpilot-s3"
            limits = {e["name"]: e["value"] for e in config.jobs.input_limits.env()}
            assert limits == {
                "FAIRPILOT_MAX_COLUMNS": "2000",
                "FAIRPILOT_MAX_DECOMPRESSED_BYTES": str(8 * 2**30),
            }
            assert operator["image"] == "registry.example.com/fp/operator:1.2.3"
        if name == "defaults":
            assert config.s3_endpoint_url is None and config.gpu.allowed


def test_the_bridge_reads_the_rendered_environment(helm: Path) -> None:
    assert BridgeConfig.from_env(plain_env(container(render(helm, {})))) is None
    values = VALUE_SETS["gpu-all-namespaces"]
    operator = container(render(helm, values))
    env = plain_env(operator)
    bridge = BridgeConfig.from_env(env)
    assert bridge is not None
    assert bridge.principals["billing"].user_ids == ["alice"]
    assert bridge.principals["billing"].namespaces == ["team-a"]
    assert bridge.bootstrap_servers == values["kafka"]["bootstrapServers"]
    assert bridge.topics.dead_letter == "fairpilot.dlq"
    assert bridge.topics.dataset == "dataset-events"
    assert bridge.namespace == "fairpilot" and bridge.allowed_namespaces == ["team-a"]
    assert bridge.sasl_mechanism == "SCRAM-SHA-512" and bridge.security_protocol == "SASL_SSL"
    password = next(e for e in operator["env"] if e["name"] == "FAIRPILOT_KAFKA_SASL_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": "kafka-user", "key": "password"}
    mongo = next(e for e in operator["env"] if e["name"] == "MONGO_URI")
    assert mongo["valueFrom"]["secretKeyRef"]["name"] == "warehouse"
    ca = env["FAIRPILOT_KAFKA_SSL_CAFILE"]
    assert any(ca.startswith(m["mountPath"] + "/") for m in operator["volumeMounts"])


def test_the_operator_pod_is_locked_down(helm: Path) -> None:
    for values in VALUE_SETS.values():
        objects = render(helm, values)
        (deployment,) = by_kind(objects, "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        operator = container(objects)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        security = operator["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert (
            operator["resources"]["requests"]["cpu"] and operator["resources"]["requests"]["memory"]
        )
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert operator[probe]["httpGet"]["path"] == "/healthz"
        # Writable /tmp, as the root filesystem is read-only.
        assert any(m["mountPath"] == "/tmp" for m in operator["volumeMounts"])


def rules(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for role in by_kind(objects, "Role") + by_kind(objects, "ClusterRole"):
        yield from role["rules"]


def test_rbac_is_namespaced_by_default_and_least_privilege(helm: Path) -> None:
    defaults = render(helm, {})
    assert not by_kind(defaults, "ClusterRole") and not by_kind(defaults, "ClusterRoleBinding")
    (role,) = by_kind(defaults, "Role")
    assert role["metadata"]["namespace"] == "fairpilot"
    two = render(helm, VALUE_SETS["two-namespaces"])
    assert sorted(r["metadata"]["namespace"] for r in by_kind(two, "Role")) == ["fairpilot", "ml"]
    assert sorted(p["metadata"]["namespace"] for p in by_kind(two, "KopfPeering")) == [
        "fairpilot", "ml",
    ]  # fmt: skip
    assert "--peering=fairpilot" in container(two)["args"]
    assert {"--namespace=ml", "--namespace=fairpilot"} <= set(container(two)["args"])
    everywhere = render(helm, VALUE_SETS["gpu-all-namespaces"])
    assert not by_kind(everywhere, "Role")
    assert len(by_kind(everywhere, "ClusterRole")) == 1
    assert len(by_kind(everywhere, "ClusterKopfPeering")) == 1
    assert not any(a.startswith("--namespace") for a in container(everywhere)["args"])
    allowed_verbs = {"get", "list", "watch", "create", "patch", "update"}
    for objects in (defaults, two, everywhere):
        for rule in rules(objects):
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
            assert set(rule["verbs"]) <= allowed_verbs, rule
            assert "delete" not in rule["verbs"]
            assert "secrets" not in rule["resources"], "the operator reads no Secrets"
            if "update" in rule["verbs"]:
                assert all(r.endswith("/finalizers") for r in rule["resources"]), rule


def test_service_monitor_and_disruption_budget_select_the_operator(helm: Path) -> None:
    objects = render(helm, VALUE_SETS["gpu-all-namespaces"])
    (monitor,) = by_kind(objects, "ServiceMonitor")
    (service,) = by_kind(objects, "Service")
    (budget,) = by_kind(objects, "PodDisruptionBudget")
    (deployment,) = by_kind(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    metrics_port = next(p for p in container(objects)["ports"] if p["name"] == "metrics")
    assert f"--metrics-port={metrics_port['containerPort']}" in container(objects)["args"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"replicaCount": -1}, "replicaCount"),
        ({"watch": {"namespace": "typo"}}, "additional properties 'namespace'"),
        ({"artifactRoot": "ftp://nowhere"}, "artifactRoot"),
        ({"kafka": {"securityProtocol": "TLS"}}, "securityProtocol"),
        ({"jobs": {"memory": "lots"}}, "memory"),
        ({"kafka": {"bootstrapServers": "k:9092", "namespace": "elsewhere"}}, "not watched"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(
    helm: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(AssertionError, match=message):
        render(helm, values)


def test_chart_crds_are_the_generated_ones() -> None:
    assert drift(CHART / "crds") == [], "run `make crds` and commit the result"
    names = {p.name for p in (CHART / "crds").glob("*.yaml")}
    assert "kopfpeerings.kopf.dev.yaml" in names


def test_kustomize_base_is_the_rendered_chart(helm: Path) -> None:
    rendered = run_helm(helm, "template", "fairpilot", str(CHART), "--namespace", "fairpilot")
    committed = (ROOT / "manifests" / "base" / "fairpilot.yaml").read_text()
    assert committed.split("\n", 1)[1] == rendered, "run `make manifests` and commit the result"
    kubectl = ensure()["kubectl"]
    built = subprocess.run(
        [str(kubectl), "kustomize", str(ROOT / "manifests" / "base")],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    objects = [doc for doc in yaml.safe_load_all(built) if doc]
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    assert {o["kind"] for o in objects} >= {"Namespace", "CustomResourceDefinition", "Deployment"}


def test_environment_overrides_the_config_file_and_bad_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("artifact_root: s3://from-file\ngpu: {resource_name: amd.com/gpu}\n")
    config = config_from_env(
        {"FAIRPILOT_CONFIG_FILE": str(path), "FAIRPILOT_ARTIFACT_ROOT": "s3://from-env",
         "FAIRPILOT_ALLOW_GPU": "false"}
    )  # fmt: skip
    assert config.artifact_root == "s3://from-env"
    assert config.gpu.resource_name == "amd.com/gpu" and config.gpu.allowed is False
    path.write_text("artifact_root: s3://x\njob_defaults: {}\n")  # a misspelt key
    with pytest.raises(ValueError, match="job_defaults"):
        config_from_env({"FAIRPILOT_CONFIG_FILE": str(path)})


@pytest.mark.parametrize("all_namespaces", [False, True])
def test_the_console_is_a_read_only_deployment_of_its_own(helm: Path, all_namespaces: bool) -> None:
    values = {
        "console": {"enabled": True, "userHeader": "X-Forwarded-User"},
        "watch": {"allNamespaces": all_namespaces, "namespaces": ["team-a", "team-b"]},
        "s3": {"credentialsSecret": "fairpilot-s3"},
        "kafka": {"topics": {"bias": "team-bias-events"}},
    }
    assert "0 chart(s) failed" in run_helm(helm, "lint", "--strict", str(CHART), values=values)
    objects = render(helm, values)
    console = [o for o in objects if o["metadata"]["name"].endswith("-console")]
    for obj in console:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    (deployment,) = by_kind(console, "Deployment")
    (service,) = by_kind(console, "Service")
    pod = deployment["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert server["command"] == ["fairpilot", "console"]
    assert "--user-header=X-Forwarded-User" in server["args"]
    namespaces = [a for a in server["args"] if a.startswith("--namespace=")]
    assert namespaces == ([] if all_namespaces else ["--namespace=team-a", "--namespace=team-b"])
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert server["envFrom"] == [{"secretRef": {"name": "fairpilot-s3"}}]
    # The operator's topic names, which its Kafka events pages name (it never connects).
    env = {each["name"]: each.get("value") for each in server["env"]}
    assert env["FAIRPILOT_KAFKA_TOPIC_BIAS"] == "team-bias-events"
    assert env["FAIRPILOT_KAFKA_TOPIC_STATUS"] == "fairpilot-status-events"
    assert not any(name.endswith("BOOTSTRAP_SERVERS") for name in env)
    assert pod["serviceAccountName"] == deployment["metadata"]["name"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    # Its own rules, and only reads: the operator's Role and binding are unchanged.
    roles = by_kind(console, "ClusterRole" if all_namespaces else "Role")
    assert len(roles) == (1 if all_namespaces else 2)
    for role in roles:
        verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
        assert verbs <= {"get", "list"}
        assert not any("secrets" in rule["resources"] for rule in role["rules"])
    without = render(helm, {**values, "console": {"enabled": False}})
    assert [o for o in without if o["metadata"]["name"].endswith("-console")] == []

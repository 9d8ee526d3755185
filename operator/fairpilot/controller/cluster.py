"""The few Kubernetes calls the operator makes, behind one small facade.

Reconcile logic talks to this, not to the client library, so it reads as what it does, and
tests can run it against the sandbox's API server.
"""

from __future__ import annotations

from typing import Any

import kubernetes

from fairpilot import API_GROUP, API_VERSION
from fairpilot.api.kinds import BY_KIND, Kind


class Cluster:
    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.client = client
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.batch = kubernetes.client.BatchV1Api(client)
        self.core = kubernetes.client.CoreV1Api(client)

    @classmethod
    def for_host(cls, host: str) -> Cluster:
        config = kubernetes.client.Configuration()
        config.host = host
        return cls(kubernetes.client.ApiClient(config))

    def _plain(self, obj: Any) -> dict[str, Any]:
        return self.client.sanitize_for_serialization(obj)

    def get(self, kind: Kind | str, namespace: str, name: str) -> dict[str, Any] | None:
        kind = BY_KIND[kind] if isinstance(kind, str) else kind
        try:
            return self.custom.get_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, kind.plural, name
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_resource(self, obj: dict[str, Any]) -> bool:
        """Create a FairPilot resource; False when it exists already (idempotent)."""
        kind = BY_KIND[obj["kind"]]
        try:
            self.custom.create_namespaced_custom_object(
                API_GROUP, API_VERSION, obj["metadata"]["namespace"], kind.plural, obj
            )
            return True
        except kubernetes.client.ApiException as exc:
            if exc.status == 409:
                return False
            raise

    def patch_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            API_GROUP, API_VERSION, namespace, kind.plural, name, {"status": status}
        )

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._plain(self.batch.read_namespaced_job(name, namespace))
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_job(self, config_map: dict[str, Any], job: dict[str, Any]) -> bool:
        """Create the spec ConfigMap and the Job; False when the Job exists already."""
        namespace = job["metadata"]["namespace"]
        try:
            self.core.create_namespaced_config_map(namespace, config_map)
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise
        try:
            self.batch.create_namespaced_job(namespace, job)
            return True
        except kubernetes.client.ApiException as exc:
            if exc.status == 409:
                return False
            raise

    def termination_message(self, namespace: str, job_name: str) -> str | None:
        """The last termination message of the Job's pods (Kubernetes' `job-name` label)."""
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items
        for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp or 0, reverse=True):
            if pod.metadata.labels and pod.metadata.labels.get("job-name") != job_name:
                continue  # a server that ignores label selectors
            for container in (pod.status and pod.status.container_statuses) or []:
                terminated = container.state and container.state.terminated
                if terminated and terminated.message:
                    return terminated.message
        return None

"""The few Kubernetes calls the operator makes, behind one small facade.

Reconcile logic talks to this, not to the client library, so it reads as what it does, and
tests can run it against the sandbox's API server.

Every call asks the client for the raw response and parses the JSON itself: the operator works
on plain dicts anyway, and the client's model classes (deserialise, then sanitise back) cost
more CPU than the request itself, which decides how many resources one operator keeps up with.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes

from fairpilot import API_GROUP, API_VERSION
from fairpilot.api.kinds import BY_KIND, Kind


def release(response: Any) -> None:
    """Read a raw (`_preload_content=False`) response to its end and return its connection.

    Unread, urllib3 keeps the connection out of the pool and the next call opens a new one:
    a TCP (on a real cluster, TLS) handshake for every status patch and create.
    """
    response.read()
    response.release_conn()


class Cluster:
    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.client = client
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.batch = kubernetes.client.BatchV1Api(client)
        self.core = kubernetes.client.CoreV1Api(client)

    @classmethod
    def connect(
        cls, config: kubernetes.client.Configuration | None = None, *, connections: int = 0
    ) -> Cluster:
        """A client for the given configuration (default: the loaded kubeconfig/in-cluster).

        connections: at least as many pooled connections as threads that call the API at once
        (the operator's Runtime counts its pools); with fewer, urllib3 discards the spare ones
        and every call opens a new TCP (on a cluster, TLS) connection.
        """
        config = config or kubernetes.client.Configuration.get_default_copy()
        config.connection_pool_maxsize = max(config.connection_pool_maxsize or 0, connections)
        return cls(kubernetes.client.ApiClient(config))

    @classmethod
    def for_host(cls, host: str, *, connections: int = 0) -> Cluster:
        config = kubernetes.client.Configuration()
        config.host = host
        return cls.connect(config, connections=connections)

    @staticmethod
    def _json(response: Any) -> dict[str, Any]:
        return json.loads(response.data) if response.data else {}

    def get(self, kind: Kind | str, namespace: str, name: str) -> dict[str, Any] | None:
        kind = BY_KIND[kind] if isinstance(kind, str) else kind
        try:
            return self._json(
                self.custom.get_namespaced_custom_object(
                    API_GROUP, API_VERSION, namespace, kind.plural, name, _preload_content=False
                )
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_resource(self, obj: dict[str, Any]) -> bool:
        """Create a FairPilot resource; False when it exists already (idempotent)."""
        kind = BY_KIND[obj["kind"]]
        try:
            release(
                self.custom.create_namespaced_custom_object(
                    API_GROUP,
                    API_VERSION,
                    obj["metadata"]["namespace"],
                    kind.plural,
                    obj,
                    _preload_content=False,
                )
            )
            return True
        except kubernetes.client.ApiException as exc:
            if exc.status == 409:
                return False
            raise

    def patch_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> None:
        release(
            self.custom.patch_namespaced_custom_object_status(
                API_GROUP,
                API_VERSION,
                namespace,
                kind.plural,
                name,
                {"status": status},
                _preload_content=False,
            )
        )

    def patch_labels(
        self, kind: Kind, namespace: str, name: str, labels: dict[str, str | None]
    ) -> None:
        """Set (or, with None, remove) labels of a FairPilot resource (a merge patch)."""
        release(
            self.custom.patch_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                namespace,
                kind.plural,
                name,
                {"metadata": {"labels": labels}},
                _preload_content=False,
            )
        )

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._json(
                self.batch.read_namespaced_job(name, namespace, _preload_content=False)
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_job(self, config_map: dict[str, Any], job: dict[str, Any]) -> bool:
        """Create the spec ConfigMap and the Job; False when the Job exists already."""
        namespace = job["metadata"]["namespace"]
        try:
            # The client's validate_call turns the dicts into the V1ConfigMap and V1Job its
            # signatures name.
            release(
                self.core.create_namespaced_config_map(
                    namespace,
                    config_map,  # type: ignore[arg-type]
                    _preload_content=False,
                )
            )
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise
        try:
            release(
                self.batch.create_namespaced_job(
                    namespace,
                    job,  # type: ignore[arg-type]
                    _preload_content=False,
                )
            )
            return True
        except kubernetes.client.ApiException as exc:
            if exc.status == 409:
                return False
            raise

    def termination(self, namespace: str, job_name: str) -> dict[str, Any] | None:
        """`state.terminated` of the Job's newest pod that ended (Kubernetes' `job-name` label):
        exit code, reason (e.g. OOMKilled) and the container's termination message."""
        listing = self._json(
            self.core.list_namespaced_pod(
                namespace, label_selector=f"job-name={job_name}", _preload_content=False
            )
        )
        pods = [
            pod
            for pod in listing.get("items") or []
            # a server that ignores label selectors must not mix up Jobs
            if (pod.get("metadata", {}).get("labels") or {}).get("job-name") == job_name
        ]
        pods.sort(
            key=lambda pod: (
                pod["metadata"].get("creationTimestamp") or "",
                pod["metadata"]["name"],
            ),
            reverse=True,
        )
        for pod in pods:
            for container in (pod.get("status") or {}).get("containerStatuses") or []:
                terminated = (container.get("state") or {}).get("terminated")
                if terminated:
                    return dict(terminated)
        return None

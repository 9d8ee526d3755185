"""What the console shows, read over the Kubernetes API with the operator's `Cluster`.

Read-only: every call here is a GET (list, get, pod log). Nothing is cached: the pages show the
API server's state at the moment they are asked for, as `kubectl get` does.

`Console.namespaces` are the namespaces it serves: those given (as the operator's
`--namespace`), else every namespace of the cluster. A namespace outside them is refused
(`NamespaceNotServed`) before any call is made for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import kubernetes

from fairpilot import API_GROUP, API_VERSION
from fairpilot.api.kinds import BY_KIND, DATASET, KINDS, Kind
from fairpilot.cluster import Cluster
from fairpilot.config import OperatorConfig
from fairpilot.events.topics import Topics

if TYPE_CHECKING:
    import urllib3


class NamespaceNotServed(Exception):
    """A namespace the console does not serve (not one the operator watches)."""


class NotFound(Exception):
    """No such resource, kind or pod."""


def kind_named(name: str) -> Kind:
    """The kind for a URL segment: its plural, singular, short name or kind, any case."""
    wanted = name.lower()
    for kind in KINDS:
        if wanted in {kind.kind.lower(), kind.plural, kind.singular, *kind.short_names}:
            return kind
    raise NotFound(f"no FairPilot kind is called {name!r}")


@dataclass
class Resource:
    """One FairPilot resource as the pages show it."""

    obj: dict[str, Any]

    @property
    def kind(self) -> Kind:
        return BY_KIND[self.obj["kind"]]

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"].get("namespace") or "")

    @property
    def uid(self) -> str | None:
        return self.obj["metadata"].get("uid")

    @property
    def status(self) -> dict[str, Any]:
        return cast("dict[str, Any]", self.obj.get("status") or {})

    @property
    def spec(self) -> dict[str, Any]:
        return cast("dict[str, Any]", self.obj.get("spec") or {})

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or "Pending")

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return list(self.status.get("conditions") or [])

    @property
    def ready(self) -> dict[str, Any] | None:
        return next((c for c in self.conditions if c.get("type") == "Ready"), None)

    @property
    def reports(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.status.get("reports") or {}).items()}

    @property
    def job_name(self) -> str | None:
        return self.status.get("jobName")

    @property
    def created(self) -> str:
        return str(self.obj["metadata"].get("creationTimestamp") or "")

    def owned_by(self, uid: str | None) -> bool:
        owners = self.obj["metadata"].get("ownerReferences") or []
        return uid is not None and any(owner.get("uid") == uid for owner in owners)


@dataclass
class Pipeline:
    """A Dataset and the stages it owns (owner reference by uid), oldest first."""

    dataset: Resource
    stages: list[Resource] = field(default_factory=list)


@dataclass
class Overview:
    """A namespace's resources: pipelines, and resources of no Dataset's pipeline."""

    pipelines: list[Pipeline]
    others: list[Resource]


def _json(response: Any) -> dict[str, Any]:
    try:
        return json.loads(response.data) if response.data else {}
    finally:
        response.release_conn()


class Console:
    def __init__(
        self,
        cluster: Cluster,
        config: OperatorConfig,
        namespaces: list[str] | None = None,
        topics: Topics | None = None,
    ) -> None:
        self.cluster = cluster
        self.config = config
        self.watched = sorted(set(namespaces)) if namespaces else None
        # The Kafka topics the operator sends to (its FAIRPILOT_KAFKA_TOPIC_*): the events a
        # page lists are named by them (console/outbound.py).
        self.topics = topics or Topics()

    # -- namespaces -----------------------------------------------------------------------
    def serves(self, namespace: str) -> bool:
        return self.watched is None or namespace in self.watched

    def check_namespace(self, namespace: str) -> None:
        if not self.serves(namespace):
            raise NamespaceNotServed(f"the console does not serve namespace {namespace!r}")

    def namespaces(self) -> list[str]:
        if self.watched is not None:
            return list(self.watched)
        try:
            listing = _json(self.cluster.core.list_namespace(_preload_content=False))
            return sorted(item["metadata"]["name"] for item in listing.get("items") or [])
        except kubernetes.client.ApiException:
            # Not allowed to list namespaces (a Role, not a ClusterRole): those that hold
            # FairPilot resources (the sandbox's emulator lists them, as an API server does).
            found: set[str] = set()
            for kind in KINDS:
                listing = _json(
                    self.cluster.custom.list_cluster_custom_object(
                        API_GROUP, API_VERSION, kind.plural, _preload_content=False
                    )
                )
                found.update(item["metadata"]["namespace"] for item in listing.get("items") or [])
            return sorted(found)

    # -- resources ------------------------------------------------------------------------
    def resources(self, namespace: str, kind: Kind) -> list[Resource]:
        self.check_namespace(namespace)
        listing = _json(
            self.cluster.custom.list_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, kind.plural, _preload_content=False
            )
        )
        found = [Resource(item) for item in listing.get("items") or []]
        for item in found:  # a list's items may lack kind (the API server's convention)
            item.obj.setdefault("kind", kind.kind)
        return sorted(found, key=lambda r: (r.created, r.name))

    def overview(self, namespace: str) -> Overview:
        """The namespace's pipelines (each Dataset with what it owns) and the other resources."""
        everything = {kind.kind: self.resources(namespace, kind) for kind in KINDS}
        pipelines = [Pipeline(dataset) for dataset in everything[DATASET.kind]]
        others: list[Resource] = []
        for kind in KINDS[1:]:
            for item in everything[kind.kind]:
                owner = next((p for p in pipelines if item.owned_by(p.dataset.uid)), None)
                (owner.stages if owner else others).append(item)
        return Overview(pipelines, others)

    def resource(self, namespace: str, kind: Kind, name: str) -> Resource:
        self.check_namespace(namespace)
        obj = self.cluster.get(kind, namespace, name)
        if obj is None:
            raise NotFound(f"{kind.kind} {namespace}/{name} not found")
        obj.setdefault("kind", kind.kind)
        return Resource(obj)

    def events(self, resource: Resource) -> list[dict[str, Any]]:
        """The Kubernetes Events about the resource, oldest first."""
        listing = _json(
            self.cluster.core.list_namespaced_event(
                resource.namespace,
                field_selector=f"involvedObject.name={resource.name}",
                _preload_content=False,
            )
        )
        found = [
            event
            for event in listing.get("items") or []
            # also where a server ignores the field selector
            if (event.get("involvedObject") or {}).get("name") == resource.name
            and (event.get("involvedObject") or {}).get("kind") == resource.kind.kind
        ]
        return sorted(
            found,
            key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""),
        )

    # -- pods and their logs --------------------------------------------------------------
    def newest_pod(self, resource: Resource) -> str | None:
        """The newest pod of the resource's current Job (status.jobName), if it has one."""
        job = resource.job_name
        if not job:
            return None
        listing = _json(
            self.cluster.core.list_namespaced_pod(
                resource.namespace, label_selector=f"job-name={job}", _preload_content=False
            )
        )
        pods = [
            pod
            for pod in listing.get("items") or []
            if (pod["metadata"].get("labels") or {}).get("job-name") == job
        ]
        if not pods:
            return None
        newest = max(
            pods,
            key=lambda pod: (
                pod["metadata"].get("creationTimestamp") or "",
                pod["metadata"]["name"],
            ),
        )
        return str(newest["metadata"]["name"])

    def log_lines(self, namespace: str, pod: str, follow: bool = True) -> Iterator[str]:
        """The pod's log, line by line, as the API server sends it (until the pod ends when
        following). Closing the iterator returns the connection."""
        self.check_namespace(namespace)
        try:
            # A raw response (_preload_content=False): the log as a stream of bytes.
            response = cast(
                "urllib3.BaseHTTPResponse",
                self.cluster.core.read_namespaced_pod_log(
                    pod, namespace, follow=follow, _preload_content=False
                ),
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                raise NotFound(f"pod {namespace}/{pod} not found") from None
            raise
        try:
            pending = b""
            for chunk in response.stream(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", errors="replace")
            if pending:
                yield pending.decode("utf-8", errors="replace")
        finally:
            release_quietly(response)


def release_quietly(response: Any) -> None:
    """Return a streamed response's connection without reading the rest of a followed log."""
    try:
        response.close()
    finally:
        response.release_conn()

"""What decide() reads and writes: its vocabulary, shared by reconcile.py and monitors.py.

- Need: a read decide() lacks (raised; reconcile() makes it and asks again);
- PatchStatus, CreateJob, CreateResource, PatchLabels: the writes of a plan, in order;
- Outcome: a plan and what to report once it is applied;
- Reader: the reads, against the cluster and the artifact store;
- World: what one reconciliation knows (the resource, the reads made, the writes applied).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fairpilot.api.kinds import Kind
from fairpilot.artifacts import Listed
from fairpilot.cluster import Cluster
from fairpilot.conditions import now
from fairpilot.config import OperatorConfig
from fairpilot.freshness import Freshness, check
from fairpilot.references import Resolved, UnresolvedReference, resolve


# -- decide's vocabulary: what it reads (Need), what it writes (Write), what it reports (Outcome)
class Need(Exception):
    """decide() cannot go on without one more read: `key` names it in the World, `read`
    makes it. Raised, not returned, so that decide reads as straight-line code."""

    def __init__(self, key: tuple[Any, ...], read: Callable[[Reader], Any]) -> None:
        super().__init__(key)
        self.key, self.read = key, read


@dataclass(frozen=True)
class PatchStatus:
    kind: Kind
    namespace: str
    name: str
    patch: dict[str, Any]


@dataclass(frozen=True)
class CreateJob:
    """The run's spec ConfigMap and Job; whether it was created is recorded in the World."""

    name: str
    config_map: dict[str, Any]
    job: dict[str, Any]


@dataclass(frozen=True)
class CreateResource:
    """A pipeline's next resource; whether it was created is recorded in the World."""

    resource: dict[str, Any]


@dataclass(frozen=True)
class PatchLabels:
    """Labels to set on another resource (a ModelMonitor marks the candidates it archives)."""

    kind: Kind
    namespace: str
    name: str
    labels: dict[str, str | None]


Write = PatchStatus | CreateJob | CreateResource | PatchLabels


@dataclass
class Outcome:
    """A reconciliation's plan: the writes in order, and what to report once they are made."""

    writes: list[Write] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)  # the status it wrote (or kept)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    # (from, to) when the status it wrote moves the phase, judged against the status it read
    # (its Event says so too); None when the phase stays.
    phase_change: tuple[str | None, str] | None = None
    waiting: bool = False
    # The resource (kind, name, same namespace) it waits for: reconcile it again once that
    # one ends, rather than only when the retry comes round.
    waiting_on: tuple[str, str] | None = None


# -- observe ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reader:
    """The reads decide() may ask for, in one namespace. Failures a decision handles (the
    artifact store down, a reference not there) come back as values, not exceptions."""

    cluster: Cluster
    namespace: str
    config: OperatorConfig

    def get(self, kind: Kind | str, name: str) -> dict[str, Any] | None:
        return self.cluster.get(kind, self.namespace, name)

    def job(self, name: str) -> dict[str, Any] | None:
        return self.cluster.get_job(self.namespace, name)

    def termination(self, job_name: str) -> dict[str, Any] | None:
        return self.cluster.termination(self.namespace, job_name)

    def inputs(self, resource: dict[str, Any]) -> Freshness | None:
        return check(resource, self.get)

    def references(
        self, kind: Kind, spec: dict[str, Any], name: str, window: dict[str, Any] | None = None
    ) -> Resolved | UnresolvedReference:
        try:
            return resolve(
                kind, spec, self.get, name, self.config, namespace=self.namespace, window=window
            )
        except UnresolvedReference as exc:
            return exc

    def listing(self, uri: str) -> list[Listed] | ArtifactStoreUnavailable:
        """The batches under a ModelMonitor's prefix, oldest first."""
        from fairpilot import artifacts
        from fairpilot.errors import JobError

        try:
            return artifacts.listing(uri)
        except JobError as exc:
            return ArtifactStoreUnavailable(f"{exc.reason}: {exc.message}")

    def json(self, uri: str) -> dict[str, Any] | ArtifactStoreUnavailable | None:
        """A stage's JSON file; None when there is none (or what stands there is not one a
        stage wrote: not JSON, a planted link, larger than any result)."""
        from fairpilot import artifacts
        from fairpilot.errors import JobError

        try:
            return artifacts.read_json(uri)
        except JobError as exc:
            if exc.reason in ("NotFound", "InvalidJSON", "UnsafePath", "DocumentTooLarge"):
                return None
            return ArtifactStoreUnavailable(f"{exc.reason}: {exc.message}")

    def names(self, uri: str) -> list[str] | ArtifactStoreUnavailable:
        from fairpilot import artifacts
        from fairpilot.errors import JobError

        try:
            return list(artifacts.names(uri))
        except JobError as exc:
            return ArtifactStoreUnavailable(f"{exc.reason}: {exc.message}")


class World:
    """What one reconciliation knows: the resource as it was handed over (and the Job, when an
    event carried it), every read made since, and the writes applied and what they found."""

    def __init__(self, resource: dict[str, Any], job: dict[str, Any] | None = None) -> None:
        self.resource = resource
        self.job = job
        self.now = now()  # one clock reading: decide gives the same plan on every pass
        self._reads: dict[tuple[Any, ...], Any] = {}
        self.applied: list[Write] = []
        self.created: dict[tuple[str, str], bool] = {}  # (kind, name) -> created, or existed

    def need(self, key: tuple[Any, ...], read: Callable[[Reader], Any]) -> Any:
        if key in self._reads:
            return self._reads[key]
        raise Need(key, read)

    def observe(self, need: Need, reader: Reader) -> None:
        self._reads[need.key] = need.read(reader)

    def knows(self, key: tuple[Any, ...], value: Any) -> World:
        """Record what a read gave without making it (tests describe a cluster this way)."""
        self._reads[key] = value
        return self


class ArtifactStoreUnavailable(Exception):
    """The artifact store (S3) did not answer; reading again later may succeed."""

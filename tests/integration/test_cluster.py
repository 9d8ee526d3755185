"""The operator's API facade against the sandbox's API server: it keeps its connections."""

from __future__ import annotations

from urllib.parse import urlparse

from fairpilot.api.kinds import BY_KIND
from fairpilot.cluster import Cluster
from fairpilot.sandbox.emulator import running_emulator
from fairpilot.sandbox.testing import resource


def test_every_kind_of_call_reuses_the_pooled_connection() -> None:
    """A raw response left unread keeps its connection out of the pool: every status patch
    then opened a new connection (a TLS handshake each on a real cluster)."""
    with running_emulator() as url:
        cluster = Cluster.for_host(url)
        address = urlparse(url)
        pool = cluster.client.rest_client.pool_manager.connection_from_host(
            address.hostname, address.port, address.scheme
        )
        for n in range(20):
            name = f"d{n}"
            assert cluster.create_resource(
                resource("Dataset", name, {"uri": "file:///d.csv"}, "default")
            )
            cluster.patch_status(BY_KIND["Dataset"], "default", name, {"phase": "Pending"})
            assert cluster.get("Dataset", "default", name) is not None
            job = {"metadata": {"name": name, "namespace": "default"}}
            cluster.create_job(
                {"metadata": {"name": name, "namespace": "default"}, "data": {}},
                {**job, "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}},
            )
            assert cluster.get_job("default", name) is not None
        assert pool.num_requests >= 100
        assert pool.num_connections == 1, f"{pool.num_connections} connections for 100 calls"

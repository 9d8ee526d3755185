"""Tools for the fault tests: a record of every status a watch saw, and a TCP link to cut."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from typing import Any

import kubernetes
import kubernetes.watch

from fairpilot.api.kinds import KINDS

RANK = {None: 0, "Pending": 0, "Running": 1, "Succeeded": 2, "Failed": 2}


class PhaseRecorder:
    """Watches the four kinds and keeps, per resource, every (generation, phase) it was seen in.

    A watch sees every change the API server made, so a status that went back (Succeeded to
    Running, say, after an operator restart) shows here even if it lasted a moment.
    """

    def __init__(self, server: str, namespace: str = "default") -> None:
        config = kubernetes.client.Configuration()
        config.host = server
        self.custom = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(config))
        self.namespace = namespace
        self.seen: dict[str, list[tuple[int, str | None, str | None]]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> PhaseRecorder:
        for kind in KINDS:
            threading.Thread(target=self._watch, args=(kind.plural,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def __enter__(self) -> PhaseRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _watch(self, plural: str) -> None:
        version = None
        while not self._stop.is_set():
            stream = kubernetes.watch.Watch()
            try:
                for event in stream.stream(
                    self.custom.list_namespaced_custom_object,
                    "fairpilot.io",
                    "v1alpha1",
                    self.namespace,
                    plural,
                    resource_version=version,
                    _request_timeout=(5, 2),
                ):
                    self._record(event["object"])
                    if self._stop.is_set():
                        stream.stop()
            except Exception:  # an idle watch timing out: watch again
                pass

    def _record(self, item: dict[str, Any]) -> None:
        status = item.get("status") or {}
        entry = (status.get("observedGeneration") or 0, status.get("phase"), status.get("pipeline"))
        with self._lock:
            history = self.seen.setdefault(f"{item['kind']}/{item['metadata']['name']}", [])
            if not history or history[-1] != entry:
                history.append(entry)

    def went_back(self) -> dict[str, list[tuple[int, str | None, str | None]]]:
        """Resources whose phase went back within a generation, or whose generation did."""
        back = {}
        with self._lock:
            for name, history in self.seen.items():
                for before, after in itertools.pairwise(history):
                    older = after[0] < before[0] and after[0] != 0
                    same = after[0] == before[0]
                    if older or (same and RANK[after[1]] < RANK[before[1]]):
                        back[name] = history
                    # a terminal phase never turns into the other one
                    if same and RANK[before[1]] == 2 and after[1] != before[1]:
                        back[name] = history
        return back


class CuttableLink:
    """A TCP proxy to a server, which a test can cut (connections refused, open ones reset)
    and restore, as a network partition or a restarting S3 endpoint would look to a client.

    `cut_on_write`: pass traffic until a client sends an HTTP PUT, then cut before it reaches
    the server, so a job loses its store in the middle of writing its artifacts.
    """

    def __init__(self, target_port: int, *, cut_on_write: bool = False) -> None:
        self.target = ("127.0.0.1", target_port)
        self.cut_on_write = cut_on_write
        self.cuts = 0
        self.cut_event = threading.Event()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> CuttableLink:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._open = self._open, set()
        if listener is not None:
            self.cuts += 1
            self.cut_event.set()
            with contextlib.suppress(OSError):
                listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):  # a peer that went first: nothing to shut down
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()  # always: a shutdown that failed must not leave the socket open

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    server.close()
                    return
                self._open |= {client, server}
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client and self.cut_on_write and data.startswith(b"PUT "):
                    self.cut_on_write = False
                    self.cut()
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

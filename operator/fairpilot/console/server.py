"""Running the console: `serve` for `fairpilot console`, `running_console` for a thread.

uvicorn serves the Starlette app. The sandbox (`fairpilot sandbox up`) and the tests run it in
a thread of their own process, on a port of their choosing (0: a free one).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn

from fairpilot.console.data import Console
from fairpilot.console.web import build_app


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 8080
    user_header: str | None = None  # trusted only behind an authenticating proxy


def _config(console: Console, options: Options) -> uvicorn.Config:
    return uvicorn.Config(
        build_app(console, user_header=options.user_header),
        host=options.host,
        port=options.port,
        log_level="warning",
        # The live log keeps its connection open until the pod ends: do not wait for it on
        # shutdown longer than this.
        timeout_graceful_shutdown=2,
        proxy_headers=False,  # X-Forwarded-For is not trusted unless a proxy is configured
    )


def serve(console: Console, options: Options) -> int:
    """Serve until interrupted (uvicorn handles SIGINT and SIGTERM)."""
    uvicorn.Server(_config(console, options)).run()
    return 0


@contextlib.contextmanager
def running_console(console: Console, options: Options | None = None) -> Iterator[str]:
    """The console served from a thread of this process while in the block; yields its URL."""
    options = options or Options(port=0)
    sock = socket.socket(socket.AF_INET6 if ":" in options.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((options.host, options.port))
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(_config(console, options))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="console", daemon=True
    )
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the console did not start")
            time.sleep(0.02)
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

"""The console's routes: server-rendered pages (Starlette, Jinja2), no script but the live log.

    /                                   the namespaces it serves
    /ns/NS                              the namespace's pipelines: each Dataset with its stages
    /ns/NS/KIND/NAME                    a resource: spec, status, conditions, events, reports,
                                        its Kafka events (a Dataset's: its pipeline's), a
                                        ModelMonitor's trends, and its current stage's log, live
    /ns/NS/KIND/NAME/log                that log as Server-Sent Events (one `data:` per line)
    /ns/NS/artifacts/PATH               a report, read below the namespace's artifact root
    /healthz                            200 while the process serves

Read-only: every route is a GET; nothing here writes to the cluster or the store. With
`user_header` set (say `X-Forwarded-User`, from an authenticating proxy in front of the
console), a request without that header is refused with 401 and the user is shown on every
page; without it, the header means nothing (anyone could send it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from fairpilot import __version__
from fairpilot.api.kinds import DATASET, MODEL_MONITOR, TRAINING_RUN
from fairpilot.console import artifacts
from fairpilot.console.data import Console, NamespaceNotServed, NotFound, Resource, kind_named
from fairpilot.console.outbound import kafka_events
from fairpilot.console.trends import MonitorTrends, exact, monitor_trends
from fairpilot.runs import pipeline_index_uri

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
# The console's own pages: its stylesheet and script only, never framed.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# A report runs in a sandbox of its own origin: its scripts (charts' tooltips) run, but cannot
# read the console's pages or call its routes as the person looking at it; it loads nothing
# from elsewhere.
REPORT_HEADERS = {
    "Content-Security-Policy": (
        "sandbox allow-scripts allow-popups; default-src 'none'; "
        "img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-inline'; font-src data:; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# How long a browser waits before asking for the log again when the resource has no pod yet.
RETRY_MS = 1000


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False).rstrip()


def _when(value: Any) -> str:
    """An API timestamp (`2026-12-02T12:19:37Z`, `...37.504013+00:00`) as `2026-12-02
    12:19:37`, in UTC as the API server writes them; anything else as it is."""
    text = str(value or "")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _exact(value: Any) -> str:
    """A number from a status as it is there (no rounding); nothing for None."""
    if value is None:
        return ""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return exact(value) if is_number else str(value)


def build_app(console: Console, *, user_header: str | None = None) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["yaml"] = _yaml
    templates.env.filters["when"] = _when
    templates.env.filters["exact"] = _exact
    templates.env.globals["version"] = __version__

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("user", getattr(request.state, "user", None))
        context.setdefault("root", request.scope.get("root_path", "").rstrip("/"))
        return templates.TemplateResponse(
            request, name, context, status_code=status, headers=PAGE_HEADERS
        )

    def refused(request: Request, status: int, message: str) -> Response:
        title = {401: "Unauthorized", 403: "Forbidden", 404: "Not found"}.get(status, "Error")
        return page(request, "error.html", status, title=f"{status} {title}", message=message)

    def home(request: Request) -> Response:
        return page(request, "namespaces.html", namespaces=console.namespaces())

    def namespace(request: Request) -> Response:
        ns = request.path_params["ns"]
        overview = console.overview(ns)
        return page(request, "pipelines.html", ns=ns, overview=overview)

    def resource(request: Request) -> Response:
        ns, name = request.path_params["ns"], request.path_params["name"]
        item = console.resource(ns, kind_named(request.path_params["kind"]), name)
        report_uris = dict(sorted(item.reports.items()))
        if item.kind is DATASET and item.spec.get("pipeline"):
            # The operator's page of the whole pipeline: every stage's phase and reports.
            report_uris["Pipeline index"] = pipeline_index_uri(console.config, item.obj)
        reports = {
            report: artifacts.console_path(console.config, ns, uri)
            for report, uri in report_uris.items()
        }
        stages = []
        if item.kind is DATASET:
            owned = (p for p in console.overview(ns).pipelines if p.dataset.uid == item.uid)
            stages = next((p.stages for p in owned), [])
        return page(
            request,
            "resource.html",
            ns=ns,
            item=item,
            stages=stages,
            events=console.events(item),
            reports=reports,
            report_uris=report_uris,
            # A Dataset's page lists the events of its whole pipeline.
            kafka=kafka_events(console, [item, *stages]),
            trends=_trends(console, item) if item.kind is MODEL_MONITOR else None,
        )

    def log_stream(request: Request) -> Response:
        ns, name = request.path_params["ns"], request.path_params["name"]
        item = console.resource(ns, kind_named(request.path_params["kind"]), name)
        pod = console.newest_pod(item)

        def events() -> Iterator[str]:
            yield f"retry: {RETRY_MS}\n\n"
            if pod is None:
                # The browser asks again after RETRY_MS, so the log starts once a pod does.
                yield _sse("status", f"{item.kind.kind} {name} has no pod yet")
                return
            yield _sse("pod", pod)
            try:
                for line in console.log_lines(ns, pod, follow=True):
                    yield _sse("message", line)
            except kubernetes.client.ApiException as exc:
                yield _sse("status", f"the log of {pod} cannot be read: {exc.reason}")
                return
            yield _sse("end", f"{pod} ended")

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    def artifact(request: Request) -> Response:
        ns = request.path_params["ns"]
        console.check_namespace(ns)
        found = artifacts.read(console.config, ns, request.path_params["path"])
        return Response(found.data, media_type=found.content_type, headers=REPORT_HEADERS)

    def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    def favicon(request: Request) -> Response:
        return Response(status_code=204)  # browsers ask for one; a 404 would read as an error

    async def not_served(request: Request, exc: Exception) -> Response:
        return refused(request, 403, str(exc))

    async def not_found(request: Request, exc: Exception) -> Response:
        return refused(request, 404, str(exc))

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, kubernetes.client.ApiException)
        if exc.status == 404:
            return refused(request, 404, "not found")
        log.warning("the API server answered %s: %s", exc.status, exc.reason)
        return refused(request, 502, f"the API server answered {exc.status} {exc.reason}")

    async def who(request: Request, call_next: RequestResponseEndpoint) -> Response:
        if user_header and request.url.path != "/healthz":
            user = request.headers.get(user_header)
            if not user:
                return PlainTextResponse(
                    f"401: the console expects {user_header} from its authenticating proxy",
                    status_code=401,
                )
            request.state.user = user
        return await call_next(request)

    return Starlette(
        routes=[
            Route("/", home),
            Route("/healthz", healthz),
            Route("/favicon.ico", favicon),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
            Route("/ns/{ns}", namespace),
            Route("/ns/{ns}/artifacts/{path:path}", artifact),
            Route("/ns/{ns}/{kind}/{name}", resource),
            Route("/ns/{ns}/{kind}/{name}/log", log_stream),
        ],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=who)],
        exception_handlers={
            NamespaceNotServed: not_served,
            artifacts.Refused: not_served,
            NotFound: not_found,
            artifacts.Missing: not_found,
            kubernetes.client.ApiException: api_error,
        },
    )


def _trends(console: Console, monitor: Resource) -> MonitorTrends:
    """The monitor's trends; its score is named after the eval metric of the model it watches
    (the TrainingRun's, when the console can read it)."""
    watched = (monitor.status.get("watched") or {}).get("trainingRun")
    run_name = watched or monitor.spec.get("trainingRunRef")
    run = console.cluster.get(TRAINING_RUN, monitor.namespace, run_name) if run_name else None
    metric = None
    if run is not None:
        metric = (run.get("status") or {}).get("evalMetric") or (run.get("spec") or {}).get(
            "evalMetric"
        )
    return monitor_trends(monitor.spec, monitor.status, metric)


def _sse(event: str, data: str) -> str:
    """One Server-Sent Event; a line's own line breaks cannot end it early."""
    lines = data.replace("\r", "").split("\n")
    body = "".join(f"data: {line}\n" for line in lines)
    return f"event: {event}\n{body}\n" if event != "message" else f"{body}\n"

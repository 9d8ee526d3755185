"""A pipeline's index page: every stage of a Dataset's pipeline, its phase and its reports.

Pure functions: the resources in, one self-contained HTML document out (no script, no CDN, no
remote resource; every string from a resource escaped). The operator is the one place that
knows every stage's `status.reports` and phase, so it is the one to write this page, as
`index.html` in the Dataset's artifact folder, whenever a stage of the pipeline changes phase;
the stages link back to it ("← pipeline index").

Links to reports are relative where the report lies under the same store as the index (the
same bucket, or the same file system), so the page works wherever the folder is opened: from S3
through a console, or from a local directory; other reports keep their URI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlsplit

from fairpilot.artifacts import relative_link

__all__ = ["INDEX_FILE", "STAGE_KINDS", "Stage", "index_page", "stages_of"]

INDEX_FILE = "index.html"
# Pipeline order (ARCHITECTURE.md): what each stage's reports are called on the page.
STAGE_KINDS = ("Dataset", "BiasAnalysis", "TrainingRun", "Explanation")
_PHASE_CLASS = {
    "Succeeded": "ok",
    "Running": "running",
    "Pending": "pending",
    "Failed": "failed",
}


_ABSENT: Mapping[str, Any] = {"absent": True}  # a kind the pipeline does not run


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline as its resource shows it (phase None: not created yet)."""

    kind: str
    name: str | None
    phase: str | None
    reports: Mapping[str, str] = field(default_factory=dict)  # name -> URI
    message: str = ""  # the Ready condition's message where the stage failed


def stages_of(
    dataset: Mapping[str, Any], children: Mapping[str, Mapping[str, Any] | None]
) -> list[Stage]:
    """The Dataset and its pipeline's resources (by kind; None where not created), in
    pipeline order. Kinds the pipeline does not run (not in `children`) are left out."""
    found: list[Stage] = []
    for kind in STAGE_KINDS:
        resource = dataset if kind == "Dataset" else children.get(kind, _ABSENT)
        if resource is _ABSENT:
            continue
        if resource is None:
            found.append(Stage(kind, None, None))
            continue
        status = resource.get("status") or {}
        ready: Mapping[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        phase = status.get("phase")
        found.append(
            Stage(
                kind,
                (resource.get("metadata") or {}).get("name"),
                phase,
                dict(status.get("reports") or {}),
                str(ready.get("message") or "") if phase == "Failed" else "",
            )
        )
    return found


_LINKABLE = ("s3", "file", "http", "https", "")


def _link(name: str, index_uri: str, uri: str) -> str:
    """A report's link; a URI of any other scheme (javascript:, data:) is shown as text."""
    if urlsplit(uri).scheme.lower() not in _LINKABLE:
        return f"<li>{escape(name)}: {escape(uri)}</li>"
    return f'<li><a href="{escape(relative_link(index_uri, uri))}">{escape(name)}</a></li>'


_STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;margin:0;
background:#f6f8fa}
main{max-width:960px;margin:0 auto;padding:32px 24px}
h1{font-size:26px;margin:0 0 4px}
.subtitle{color:#57606a;margin:0 0 24px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de;
border-radius:6px}
th,td{text-align:left;padding:10px 12px;border-top:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa;border-top:none;font-size:13px;color:#57606a}
td.name{overflow-wrap:anywhere}
.phase{display:inline-block;padding:1px 8px;border-radius:10px;font-size:13px;
background:#eaeef2}
.phase.ok{background:#dafbe1;color:#116329}.phase.failed{background:#ffebe9;color:#a40e26}
.phase.running{background:#ddf4ff;color:#0550ae}
ul{margin:0;padding-left:18px}.none{color:#57606a}
.message{color:#a40e26;font-size:13px;margin:4px 0 0}
footer{color:#57606a;font-size:12px;text-align:center;padding:16px}
"""


def index_page(
    dataset: str,
    namespace: str,
    stages: Sequence[Stage],
    *,
    index_uri: str,
    pipeline_phase: str | None = None,
    generated: str = "",
) -> str:
    """The index page of the pipeline of Dataset `namespace/dataset`, written at `index_uri`."""
    rows = []
    for stage in stages:
        phase = stage.phase or "not created"
        css = _PHASE_CLASS.get(stage.phase or "", "")
        if stage.reports:
            links = "".join(_link(name, index_uri, uri) for name, uri in stage.reports.items())
            reports = f"<ul>{links}</ul>"
        else:
            reports = '<span class="none">none yet</span>'
        message = f'<p class="message">{escape(stage.message)}</p>' if stage.message else ""
        rows.append(
            f"<tr><td>{escape(stage.kind)}</td>"
            f'<td class="name">{escape(stage.name or "—")}</td>'
            f'<td><span class="phase {css}">{escape(phase)}</span>{message}</td>'
            f"<td>{reports}</td></tr>"
        )
    overall = (
        f' · pipeline <span class="phase {_PHASE_CLASS.get(pipeline_phase, "")}">'
        f"{escape(pipeline_phase)}</span>"
        if pipeline_phase
        else ""
    )
    stamp = f" · updated {escape(generated)}" if generated else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Pipeline {escape(dataset)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<main><h1>Pipeline {escape(dataset)}</h1>"
        f'<p class="subtitle">Dataset {escape(namespace)}/{escape(dataset)}{overall}{stamp}</p>'
        "<table><thead><tr><th>Stage</th><th>Resource</th><th>Phase</th><th>Reports</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></main>\n"
        "<footer>Written by the FairPilot operator whenever a stage changes phase. "
        "Self-contained: it loads nothing from the network.</footer>\n</body>\n</html>\n"
    )

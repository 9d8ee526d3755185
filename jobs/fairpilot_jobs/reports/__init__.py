"""Self-contained HTML reports for the stage jobs: `html.Report` builds pages, `charts` draws
inline SVG charts with matplotlib."""

from fairpilot_jobs.reports.html import (
    Report,
    Section,
    approx,
    format_exact,
    format_rounded,
    format_value,
)

__all__ = ["Report", "Section", "approx", "format_exact", "format_rounded", "format_value"]

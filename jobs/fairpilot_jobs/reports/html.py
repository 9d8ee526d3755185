"""A small builder for self-contained HTML reports.

Reports are read by data scientists and by people who are not: clean typography, readable
tables, charts inlined as SVG, no external resource of any kind (no CDN, no fonts, no
scripts from elsewhere), and every string that came from user data escaped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from importlib import resources
from typing import Any, Literal

import numpy as np
import pandas as pd

from fairpilot import __version__

CalloutKind = Literal["info", "success", "warning", "danger"]


def _asset(name: str) -> str:
    return (resources.files("fairpilot_jobs.reports") / "templates" / name).read_text("utf-8")


def format_value(value: Any) -> str:
    """Numbers as people read them: 4 significant digits, thousands separators."""
    if value is None:
        return "—"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            return "—"
        if number != 0 and (abs(number) >= 1e6 or abs(number) < 1e-3):
            return f"{number:.3e}"
        if number.is_integer() and abs(number) < 1e6:
            return f"{int(number):,}"
        return f"{number:,.4g}" if abs(number) >= 1 else f"{number:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


class Section:
    """A titled part of a report; every method appends a block and returns the section."""

    def __init__(self, title: str, intro: str | None = None, anchor: str = "") -> None:
        self.title, self.intro, self.anchor = title, intro, anchor
        self._blocks: list[str] = []

    def paragraph(self, text: str) -> Section:
        self._blocks.append(f"<p>{escape(text)}</p>")
        return self

    def callout(self, text: str, kind: CalloutKind = "info", title: str | None = None) -> Section:
        heading = f"<strong>{escape(title)}</strong> " if title else ""
        self._blocks.append(
            f'<div class="callout {kind}" role="note">{heading}{escape(text)}</div>'
        )
        return self

    def key_values(self, items: Mapping[str, object]) -> Section:
        rows = "".join(
            f"<tr><th scope='row'>{escape(str(k))}</th><td>{escape(format_value(v))}</td></tr>"
            for k, v in items.items()
        )
        self._blocks.append(f'<table class="kv">{rows}</table>')
        return self

    def metrics(self, items: Mapping[str, object]) -> Section:
        cards = "".join(
            f'<div class="card"><div class="label">{escape(str(k))}</div>'
            f'<div class="value">{escape(format_value(v))}</div></div>'
            for k, v in items.items()
        )
        self._blocks.append(f'<div class="cards">{cards}</div>')
        return self

    def table(
        self,
        rows: Sequence[Mapping[str, object]] | pd.DataFrame,
        columns: Sequence[str] | None = None,
        caption: str | None = None,
        max_rows: int = 200,
        sortable: bool = True,
    ) -> Section:
        records = rows.to_dict(orient="records") if isinstance(rows, pd.DataFrame) else list(rows)
        if columns is None:
            columns = list(dict.fromkeys(key for record in records for key in record))
        shown = records[:max_rows]
        head = "".join(f"<th scope='col'>{escape(str(c))}</th>" for c in columns)
        body = []
        for record in shown:
            cells = []
            for column in columns:
                value = record.get(column)
                css = ' class="num"' if _is_number(value) else ""
                sort_key = (
                    f' data-sort="{float(value)!r}"'
                    if _is_number(value) and math.isfinite(float(value))
                    else ""
                )
                cells.append(f"<td{css}{sort_key}>{escape(format_value(value))}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        cap = f"<caption>{escape(caption)}</caption>" if caption else ""
        note = (
            f'<p class="note">Showing {len(shown):,} of {len(records):,} rows.</p>'
            if len(records) > max_rows
            else ""
        )
        css = "data sortable" if sortable else "data"
        self._blocks.append(
            f'<div class="table-wrap"><table class="{css}">{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>{note}"
        )
        return self

    def figure(self, svg: str, caption: str | None = None) -> Section:
        cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
        # The SVG comes from charts.py (matplotlib), which escapes text it draws.
        self._blocks.append(f"<figure>{svg}{cap}</figure>")
        return self

    def details(self, summary: str, build: Callable[[Section], None]) -> Section:
        inner = Section(summary)
        build(inner)
        self._blocks.append(
            f"<details><summary>{escape(summary)}</summary>{inner._body()}</details>"
        )
        return self

    def bullet_list(self, items: Sequence[str]) -> Section:
        self._blocks.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")
        return self

    def code(self, text: str) -> Section:
        self._blocks.append(f"<pre><code>{escape(text)}</code></pre>")
        return self

    def _body(self) -> str:
        return "\n".join(self._blocks)

    def render(self) -> str:
        intro = f'<p class="intro">{escape(self.intro)}</p>' if self.intro else ""
        return (
            f'<section id="{self.anchor}"><h2>{escape(self.title)}</h2>{intro}'
            f"{self._body()}</section>"
        )


class Report:
    """A whole report: header, optional table of contents, sections."""

    def __init__(self, title: str, subtitle: str | None = None, meta: dict[str, str] | None = None):
        self.title, self.subtitle, self.meta = title, subtitle, dict(meta or {})
        self.sections: list[Section] = []

    def section(self, title: str, intro: str | None = None) -> Section:
        section = Section(title, intro, anchor=f"s{len(self.sections) + 1}")
        self.sections.append(section)
        return section

    def render(self) -> str:
        generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        meta = " · ".join(f"{escape(k)}: {escape(v)}" for k, v in self.meta.items())
        subtitle = f'<p class="subtitle">{escape(self.subtitle)}</p>' if self.subtitle else ""
        toc = ""
        if len(self.sections) > 2:
            links = "".join(
                f'<li><a href="#{s.anchor}">{escape(s.title)}</a></li>' for s in self.sections
            )
            toc = f'<nav class="toc" aria-label="Contents"><ol>{links}</ol></nav>'
        body = "\n".join(section.render() for section in self.sections)
        return (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(self.title)}</title><style>{_asset('report.css')}</style></head>"
            f"<body><header><h1>{escape(self.title)}</h1>{subtitle}"
            f'<p class="generated">Generated by FairPilot {__version__} at {generated}'
            f"{' · ' + meta if meta else ''}</p></header>{toc}<main>{body}</main>"
            f"<script>{_asset('report.js')}</script></body></html>\n"
        )

    def write(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.render())

"""A small builder for self-contained HTML reports.

Reports are read by data scientists and by people who are not: clean typography, readable
tables, charts inlined as SVG (see `charts.py`), callouts for what matters, and no external
resource of any kind (no CDN, no web fonts, no remote script or image). Every string that may
come from user data (titles, column names, values, captions) is escaped.

Numbers are shown exactly, every digit (99999 as "99,999", never "100,000"). Derived statistics
(means, rates, metrics) may be rounded, through the `rounded` argument of `table`, `key_values`
and `metrics`, which marks them "≈" (a table: in the header, with a note under it; each
rounded cell keeps every digit in its tooltip); `approx` marks a number formatted by hand.

    report = Report("Dataset profile", subtitle="s3://bucket/adult.csv")
    overview = report.section("Overview")
    overview.metrics({"Rows": 48_842, "Columns": 15}).callout("Looks fine.", kind="success")
    report.write("profile.html")
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import math
import os
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from html import escape
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from fairpilot.artifacts import relative_link

__all__ = [
    "ROUNDED_MARK",
    "ROUNDED_NOTE",
    "CalloutKind",
    "Report",
    "Rounded",
    "Section",
    "approx",
    "format_exact",
    "format_rounded",
    "format_value",
    "shows_exactly",
]

CalloutKind = Literal["info", "success", "warning", "danger"]
CALLOUT_KINDS: tuple[str, ...] = get_args(CalloutKind)
_CALLOUT_ICONS = {"info": "i", "success": "✓", "warning": "!", "danger": "×"}
MISSING = "—"
_NUM = ' class="num"'
TOC_MIN_SECTIONS = 3  # a table of contents once there are more than two sections


def _asset(name: str) -> str:
    return (resources.files("fairpilot_jobs.reports") / "templates" / name).read_text("utf-8")


def _version() -> str:
    try:
        from fairpilot import __version__

        return str(__version__)
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        return version("fairpilot")
    except Exception:  # not installed: running from a source tree
        return "dev"


def _text(value: object) -> str:
    """Escaped text; line breaks kept."""
    return escape(str(value)).replace("\n", "<br>")


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return False


def _is_number(value: object) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    return isinstance(value, int | float | decimal.Decimal | np.integer | np.floating)


ROUNDED_DIGITS = 4
ROUNDED_MARK = "≈"
ROUNDED_TITLE = (
    f"rounded to {ROUNDED_DIGITS} significant digits, or to the whole number from 1,000 up"
)
ROUNDED_NOTE = f"{ROUNDED_MARK} {ROUNDED_TITLE.capitalize()}; hover a value for every digit."

# Which values of a table, key-value list or card row are shown rounded: none (the default:
# every number exactly as observed), all of them (True), or those under the keys given.
Rounded = bool | Collection[object]


def _with_separators(digits: str) -> str:
    """'-1234.5' as '-1,234.5'; text in scientific notation is left as it is."""
    if "e" in digits or "E" in digits:
        return digits
    sign = "-" if digits.startswith("-") else ""
    whole, dot, fraction = digits.lstrip("+-").partition(".")
    return f"{sign}{int(whole or 0):,}{dot}{fraction}"


def _special_float(number: float) -> str | None:
    if math.isnan(number):
        return MISSING
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    if number == 0:
        return "0"
    return None


# Whole floats below this are written in full; from it on, in the shortest text that reads back
# as the same float (repr's own limit: 1e+16), as beyond 2**53 a float stands for many integers.
_WHOLE_FLOATS = 1e16


def _exact_float(value: float | np.floating) -> str:
    """Every digit: whole numbers in full, other values in the shortest text that reads back
    as the same number (the float's own precision: float32 values as float32)."""
    number = float(value)
    special = _special_float(number)
    if special is not None:
        return special
    if number.is_integer() and abs(number) < _WHOLE_FLOATS:
        return f"{int(number):,}"
    text = str(value) if isinstance(value, np.floating) else repr(number)
    return _with_separators(text)


def _exact_decimal(value: decimal.Decimal) -> str:
    if value.is_nan():
        return MISSING
    if value.is_infinite():
        return "∞" if value > 0 else "−∞"
    if value.is_zero():
        return "0"
    text = format(value, ",f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _rounded_float(number: float, digits: int = ROUNDED_DIGITS) -> str:
    """`digits` significant digits, never fewer than the whole number (189,664 rather than
    189,700); scientific notation below 1e-4; from 1e16 on the float as it is."""
    special = _special_float(number)
    if special is not None:
        return special
    magnitude = abs(number)
    if magnitude >= _WHOLE_FLOATS:
        return _exact_float(number)  # no whole number to round to
    if magnitude < 1e-4:
        mantissa, _, exponent = f"{number:.{digits - 1}e}".partition("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"
    decimals = max(0, digits - 1 - math.floor(math.log10(magnitude)))
    text = f"{round(number, decimals):,.{decimals}f}"
    if decimals:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_exact(value: object) -> str:
    """An observed value as it is, every digit kept (unescaped); see `format_value`."""
    return format_value(value)


def format_rounded(value: object, digits: int = ROUNDED_DIGITS) -> str:
    """A derived statistic (mean, rate, metric) to `digits` significant digits, never fewer
    than its whole number; integers stay exact. Show it labelled as rounded: `approx` below,
    or the `rounded` argument of the `Section` methods, which label it for you."""
    return format_value(value, rounded=True, digits=digits)


def shows_exactly(value: object, shown: str) -> bool:
    """Whether the text `shown` for a number reads back as exactly that number (thousands
    separators ignored; "37%" reads as 37 or as 0.37)."""
    if not _is_number(value) or _is_missing(value):
        return True
    number = float(value)  # type: ignore[arg-type]
    text = shown.strip().replace(",", "").replace("−", "-")
    if math.isinf(number):
        return text in ("∞", "-∞", "inf", "-inf")
    percent = text.endswith("%")
    try:
        parsed = float(text.removesuffix("%").strip())
    except ValueError:
        return False
    return parsed == number or (percent and parsed / 100 == number)


def approx(value: object, shown: str) -> str:
    """`shown` with the rounded mark in front ("≈0.857") unless it is exactly `value`: for
    numbers formatted by hand (f"{rate:.0%}") in prose, chart labels and cards."""
    return shown if shows_exactly(value, shown) else f"{ROUNDED_MARK}{shown}"


def format_value(value: object, *, rounded: bool = False, digits: int = ROUNDED_DIGITS) -> str:
    """A value as a person reads it (unescaped).

    Numbers exactly: integers with thousands separators, floats in the shortest text that
    reads back as the same float (99999.0 as "99,999", 0.1 as "0.1", 1.5e-07 as "1.5e-07").
    With `rounded`, floats to `digits` significant digits (see `format_rounded`): only for
    derived statistics, and only where the page says they are rounded. None/NaN/NA as "—",
    booleans as yes/no, dates in ISO form, lists and dicts spelled out.
    """
    if _is_missing(value):
        return MISSING
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, decimal.Decimal):
        return _rounded_float(float(value), digits) if rounded else _exact_decimal(value)
    if isinstance(value, float | np.floating):
        return _rounded_float(float(value), digits) if rounded else _exact_float(value)
    if isinstance(value, pd.Timestamp | dt.datetime):
        if value.hour == value.minute == value.second == value.microsecond == 0:
            return value.strftime("%Y-%m-%d")
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        return format_value(value.tolist(), rounded=rounded, digits=digits)
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(format_value(v, rounded=rounded, digits=digits) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(
            f"{k}: {format_value(v, rounded=rounded, digits=digits)}" for k, v in value.items()
        )
    return str(value)


def _is_rounded(rounded: Rounded, key: object) -> bool:
    if isinstance(rounded, bool):
        return rounded
    return key in rounded


def _marked(value: object, rounded: bool) -> tuple[str, str | None]:
    """`_shown`, with the "≈" mark in front of a value that rounding changed."""
    shown, exact = _shown(value, rounded)
    return (f"{ROUNDED_MARK}{shown}" if exact is not None else shown), exact


def _shown(value: object, rounded: bool) -> tuple[str, str | None]:
    """The text of a value, and its exact text where rounding changed it (else None)."""
    exact = format_value(value)
    if not rounded:
        return exact, None
    text = format_value(value, rounded=True)
    return text, (exact if text != exact else None)


def _rounded_text(text: str, numbers: Sequence[object]) -> str:
    """Escaped `text` in which every exact spelling of a number in `numbers` (longest first)
    is replaced by its rounded text, marked "≈", with the exact text as its tooltip."""
    spans: dict[str, str] = {}
    for value in numbers:
        shown, exact = _marked(value, True)
        if exact is not None:
            spans[exact] = (
                f'<span class="rounded-value" title="{escape(exact)}">{escape(shown)}</span>'
            )
    if not spans:
        return _text(text)
    pattern = re.compile(
        r"(?<![\d.])("
        + "|".join(re.escape(k) for k in sorted(spans, key=len, reverse=True))
        + r")(?![\d])"
    )
    parts = pattern.split(str(text))
    return "".join(spans[part] if i % 2 else _text(part) for i, part in enumerate(parts))


def _exact_title(exact: str | None) -> str:
    return f' title="{escape(exact)}"' if exact is not None else ""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


class Section:
    """A titled part of a report: each method appends a block and returns the section."""

    def __init__(
        self,
        title: str,
        intro: str | None = None,
        anchor: str = "",
        _ids: Iterator[int] | None = None,
    ) -> None:
        self.title = title
        self.intro = intro
        self.anchor = anchor or f"s-{_slug(title) or 'section'}"
        self._ids = _ids if _ids is not None else itertools.count(1)
        self._blocks: list[str] = []

    # -- text ------------------------------------------------------------------------------

    def paragraph(self, text: str) -> Section:
        self._blocks.append(f"<p>{_text(text)}</p>")
        return self

    def note(self, text: str) -> Section:
        """A small muted line: what a number above means, how it was rounded."""
        self._blocks.append(f'<p class="note">{_text(text)}</p>')
        return self

    def callout(
        self,
        text: str,
        kind: CalloutKind = "info",
        title: str | None = None,
        rounded: Sequence[object] = (),
    ) -> Section:
        """A boxed message. Each number in `rounded` that the text (a status message, say)
        spells out exactly is shown rounded, with the "≈" mark and its every digit in a
        tooltip, as in tables and cards."""
        if kind not in CALLOUT_KINDS:
            raise ValueError(f"callout kind must be one of {CALLOUT_KINDS}, not {kind!r}")
        heading = f'<p class="callout-title">{_text(title)}</p>' if title else ""
        self._blocks.append(
            f'<div class="callout callout-{kind}" role="note">'
            f'<span class="callout-icon" aria-hidden="true">{_CALLOUT_ICONS[kind]}</span>'
            f'<div class="callout-body">{heading}<p>{_rounded_text(text, rounded)}</p></div></div>'
        )
        return self

    def bullet_list(self, items: Sequence[str]) -> Section:
        entries = "".join(f"<li>{_text(item)}</li>" for item in items)
        self._blocks.append(f'<ul class="bullets">{entries}</ul>')
        return self

    def definitions(self, entries: Sequence[tuple[str, str, Mapping[str, str]]]) -> Section:
        """A glossary in full view (no scroll box): per entry a term, its meaning and labelled
        facts (range, ideal value, ...), wrapping with the page."""
        items = []
        for term, meaning, facts in entries:
            rows = "".join(
                f'<span class="fact"><span class="fact-label">{_text(label)}</span> '
                f"{_text(value)}</span>"
                for label, value in facts.items()
            )
            text = f"<p>{_text(meaning)}</p>" if meaning else ""
            items.append(f'<dt>{_text(term)}</dt><dd>{text}<p class="facts">{rows}</p></dd>')
        self._blocks.append(f'<dl class="glossary">{"".join(items)}</dl>')
        return self

    def code(self, text: str) -> Section:
        self._blocks.append(f"<pre><code>{escape(str(text))}</code></pre>")
        return self

    # -- numbers ---------------------------------------------------------------------------

    def key_values(self, items: Mapping[str, object], rounded: Rounded = ()) -> Section:
        """A two-column list; numbers exact unless their key is in `rounded` (True: all),
        and a rounded one carries the "≈" mark, its every digit in a tooltip."""
        rows = []
        for key, value in items.items():
            shown, exact = _marked(value, _is_rounded(rounded, key))
            rows.append(
                f'<tr><th scope="row">{_text(key)}</th>'
                f"<td{_NUM if _is_number(value) else ''}{_exact_title(exact)}>{_text(shown)}</td>"
                "</tr>"
            )
        self._blocks.append(f'<table class="kv"><tbody>{"".join(rows)}</tbody></table>')
        return self

    def metrics(self, items: Mapping[str, object], rounded: Rounded = ()) -> Section:
        """Cards of headline numbers; exact unless their label is in `rounded` (True: all),
        and a rounded one carries the "≈" mark, its every digit in a tooltip."""
        cards = []
        for label, value in items.items():
            shown, exact = _marked(value, _is_rounded(rounded, label))
            long = len(shown) > 12  # a name rather than a number: a wider card, smaller type
            cards.append(
                f'<div class="card{" wide" if long else ""}">'
                f'<div class="card-label">{_text(label)}</div>'
                f'<div class="card-value{" long" if long else ""}"{_exact_title(exact)}>'
                f"{_text(shown)}</div></div>"
            )
        self._blocks.append(f'<div class="cards">{"".join(cards)}</div>')
        return self

    def table(
        self,
        rows: Sequence[Mapping[str, object]] | pd.DataFrame,
        columns: Sequence[str] | None = None,
        caption: str | None = None,
        max_rows: int = 200,
        sortable: bool = True,
        rounded: Rounded = (),
    ) -> Section:
        """A data table: numeric columns right-aligned, the first `max_rows` rows shown (with a
        note saying how many were left out), sortable by clicking a header.

        Numbers are shown exactly, except the floats of the columns in `rounded` (True: every
        column): derived statistics such as means and rates. A column where rounding changed
        a value gets the "≈" mark in its header and a note under the table says what it
        means; each such cell has its every digit in a tooltip.

        A DataFrame's index becomes the first column when it carries information (named, or
        not the default 0..n-1 range).
        """
        records, total, found = _records(rows, max_rows)
        keys: list[object] = list(columns) if columns is not None else found
        block = next(self._ids)
        numeric = [_numeric_column(records, key) for key in keys]
        sortable = sortable and len(records) > 1
        body = []
        marked: set[int] = set()
        for record in records:
            cells = []
            for column, (key, is_number) in enumerate(zip(keys, numeric, strict=True)):
                value = record.get(key)
                text, exact = _shown(value, _is_rounded(rounded, key))
                shown = _text(text)
                if exact is not None:
                    marked.add(column)
                if is_number and not _is_missing(value):
                    sort_key = float(value)  # type: ignore[arg-type]
                    cells.append(
                        f'<td class="num" data-sort="{sort_key!r}"{_exact_title(exact)}>'
                        f"{shown}</td>"
                    )
                elif _is_missing(value):
                    cells.append(f'<td class="missing{" num" if is_number else ""}">{shown}</td>')
                else:
                    cells.append(f"<td{_exact_title(exact)}>{shown}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        head = []
        for column, (key, is_number) in enumerate(zip(keys, numeric, strict=True)):
            label = _text(key)
            if column in marked:
                label += (
                    f' <abbr class="rounded" title="{escape(ROUNDED_TITLE)}">{ROUNDED_MARK}</abbr>'
                )
            css = ' class="num"' if is_number else ""
            if sortable:
                label = f'<button type="button" class="sort">{label}</button>'
            head.append(f'<th scope="col"{css}>{label}</th>')
        cap_id = f"t{block}-caption"
        cap = f'<p class="table-caption" id="{cap_id}">{_text(caption)}</p>' if caption else ""
        labelled = f' aria-labelledby="{cap_id}"' if caption else ""
        if total == 0:
            self._blocks.append(f'<div class="table-block">{cap}<p class="note">No rows.</p></div>')
            return self
        if total > len(records):
            note = (
                f'<p class="note truncated">Showing the first {len(records):,} of {total:,} rows '
                f"({total - len(records):,} not shown).</p>"
            )
        elif total > 10:
            note = f'<p class="note">{total:,} rows.</p>'
        else:
            note = ""
        if marked:
            note += f'<p class="note rounded-note">{_text(ROUNDED_NOTE)}</p>'
        css = "data sortable" if sortable else "data"
        self._blocks.append(
            f'<div class="table-block">{cap}<div class="table-wrap">'
            f'<table class="{css}"{labelled}><thead><tr>{"".join(head)}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>{note}</div>"
        )
        return self

    # -- figures and structure -------------------------------------------------------------

    def figure(self, svg: str, caption: str | None = None) -> Section:
        """An inline SVG chart from `charts.py` (anything else is refused)."""
        _check_svg(svg)
        cap = f"<figcaption>{_text(caption)}</figcaption>" if caption else ""
        self._blocks.append(
            f'<figure class="chart"><div class="chart-body">{svg}</div>{cap}</figure>'
        )
        return self

    def details(self, summary: str, build: Callable[[Section], object]) -> Section:
        """A collapsed block; `build` fills the nested section it is given."""
        inner = Section(summary, anchor=f"{self.anchor}-d{next(self._ids)}", _ids=self._ids)
        build(inner)
        self._blocks.append(
            f"<details><summary>{_text(summary)}</summary>"
            f'<div class="details-body">{inner._body()}</div></details>'
        )
        return self

    def _body(self) -> str:
        return "\n".join(self._blocks)

    def _render(self) -> str:
        intro = f'<p class="intro">{_text(self.intro)}</p>' if self.intro else ""
        return (
            f'<section id="{escape(self.anchor)}"><h2>{_text(self.title)}</h2>{intro}\n'
            f"{self._body()}\n</section>"
        )


def _records(
    rows: Sequence[Mapping[str, object]] | pd.DataFrame, max_rows: int
) -> tuple[list[Mapping[Any, object]], int, list[object]]:
    """The first `max_rows` rows as mappings, the total count and the columns in order."""
    limit = max(0, int(max_rows))
    if isinstance(rows, pd.DataFrame):
        frame = rows
        default_index = frame.index.equals(pd.RangeIndex(len(frame)))
        if frame.index.name is not None or not default_index:
            name = frame.index.name if frame.index.name is not None else ""
            if name not in frame.columns:
                frame = frame.head(limit).reset_index(names=name)
        head = frame.head(limit)
        records: list[Mapping[Any, object]] = [
            dict(zip(head.columns, values, strict=True))
            for values in head.itertuples(index=False, name=None)
        ]
        return records, len(rows), list(frame.columns)
    rows = list(rows)
    found = list(dict.fromkeys(key for record in rows for key in record))
    return list(rows[:limit]), len(rows), found


def _numeric_column(records: Sequence[Mapping[Any, object]], key: object) -> bool:
    values = [r.get(key) for r in records if not _is_missing(r.get(key))]
    return bool(values) and all(_is_number(v) for v in values)


_SVG_FORBIDDEN_TAGS = {"script", "foreignobject", "iframe", "object", "embed"}
_EXTERNAL_URL = re.compile(r"@import|url\(\s*['\"]?(?!#)", re.IGNORECASE)


class _SvgInspector(HTMLParser):
    """Finds what could run script or fetch something in an SVG, as a browser would parse it:
    only in-document references (`#id`) and embedded raster images (`data:image/`) pass."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        if tag in _SVG_FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            text = (value or "").strip().lower()
            if name.startswith("on"):
                self.problems.append(f"{name}=")
            elif name in ("href", "xlink:href", "src"):
                if not text.startswith(("#", "data:image/")):
                    self.problems.append(f"{name}={value!r}")
            elif _EXTERNAL_URL.search(text):
                self.problems.append(f"{name}={value!r}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style and _EXTERNAL_URL.search(data):
            self.problems.append("external reference in <style>")


def _check_svg(svg: str) -> None:
    if not svg.lstrip().startswith("<svg"):
        raise ValueError("figure() takes an inline <svg> element from fairpilot_jobs.charts")
    inspector = _SvgInspector()
    inspector.feed(svg)
    inspector.close()
    if inspector.problems:
        raise ValueError(
            f"figure(): the SVG may run script or load something: {inspector.problems}"
        )


# Links between the reports of a pipeline: relative paths (or http(s) and file URIs); anything
# a browser would run or that embeds content (javascript:, data:, vbscript:) is refused.
_LINK_SCHEMES = re.compile(r"^\s*(javascript|data|vbscript):", re.IGNORECASE)


def _checked_href(href: str) -> str:
    if _LINK_SCHEMES.match(href):
        raise ValueError(f"a report link cannot be {href[:40]!r}: only paths and http(s)/file URIs")
    return href


Links = Sequence[tuple[str, str | None]]  # (label, href); None: this page


def pipeline_links(
    index_uri: str | None, page_uri: str, here: str, siblings: Mapping[str, str] | None = None
) -> list[tuple[str, str | None]]:
    """The bar above a stage's report: its pipeline's index page (which lists every stage and
    its reports; the operator keeps it current), the reports this stage wrote beside it
    (`siblings`: label -> URI) and this one (`here`). Relative where they share a store."""
    links: list[tuple[str, str | None]] = []
    if index_uri:
        links.append(("Pipeline index", relative_link(page_uri, index_uri)))
    for label, uri in (siblings or {}).items():
        links.append((label, None if uri == page_uri else relative_link(page_uri, uri)))
    if not siblings:
        links.append((here, None))
    return links if len(links) > 1 else []


class Report:
    """A whole report: header, table of contents (more than two sections), sections.

    `links` are the other reports of its pipeline, as (label, href) pairs in pipeline order,
    shown as a bar above the title; the one whose href is None is this report.
    """

    def __init__(
        self,
        title: str,
        subtitle: str | None = None,
        meta: dict[str, str] | None = None,
        links: Links = (),
    ) -> None:
        self.title = title
        self.subtitle = subtitle
        self.meta: dict[str, str] = dict(meta or {})
        self.links = [
            (label, None if href is None else _checked_href(href)) for label, href in links
        ]
        self.sections: list[Section] = []
        self._ids = itertools.count(1)

    def section(self, title: str, intro: str | None = None) -> Section:
        number = len(self.sections) + 1
        anchor = f"s{number}-{_slug(title)}".rstrip("-")
        section = Section(title, intro, anchor=anchor, _ids=self._ids)
        self.sections.append(section)
        return section

    def render(self) -> str:
        """The whole HTML document."""
        generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        subtitle = f'<p class="subtitle">{_text(self.subtitle)}</p>' if self.subtitle else ""
        meta = ""
        if self.meta:
            chips = "".join(
                f"<div><dt>{_text(key)}</dt><dd>{_text(format_value(value))}</dd></div>"
                for key, value in self.meta.items()
            )
            meta = f'<dl class="meta">{chips}</dl>'
        toc = ""
        if len(self.sections) >= TOC_MIN_SECTIONS:
            links = "".join(
                f'<li><a href="#{escape(s.anchor)}">{_text(s.title)}</a></li>'
                for s in self.sections
            )
            toc = (
                '<nav class="toc" aria-label="Contents"><p class="toc-title">Contents</p>'
                f"<ol>{links}</ol></nav>"
            )
        pipeline = ""
        if self.links:
            items = "".join(
                f'<li><a href="{escape(href)}">{_text(label)}</a></li>'
                if href is not None
                else f'<li><span aria-current="page">{_text(label)}</span></li>'
                for label, href in self.links
            )
            pipeline = f'<nav class="pipeline" aria-label="Pipeline reports"><ol>{items}</ol></nav>'
        layout = "layout with-toc" if toc else "layout"
        body = "\n".join(section._render() for section in self.sections)
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="generator" content="FairPilot {escape(_version())}">\n'
            f"<title>{escape(self.title)}</title>\n"
            f"<style>\n{_asset('report.css')}</style>\n</head>\n<body>\n"
            f'<header class="report-header"><div class="header-inner">{pipeline}'
            '<p class="eyebrow">FairPilot report</p>'
            f"<h1>{_text(self.title)}</h1>{subtitle}{meta}"
            f'<p class="generated">Generated by FairPilot {escape(_version())} at {generated}</p>'
            f'</div></header>\n<div class="{layout}">{toc}\n<main>\n{body}\n</main></div>\n'
            '<footer class="report-footer">Self-contained report: it loads nothing from the '
            "network.</footer>\n"
            f"<script>\n{_asset('report.js')}</script>\n</body>\n</html>\n"
        )

    def write(self, path: str | os.PathLike[str]) -> None:
        """Render and write the document as UTF-8, creating missing parent folders."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.render(), encoding="utf-8")

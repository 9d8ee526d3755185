"""The report toolkit (`fairpilot_jobs.reports.html` and `.charts`) and the page check.

The browser tests render pages in headless Chromium as a person would open them; the page
check itself is shown to fail on a broken page, or those tests would prove nothing.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from support.browser import PageCheck, check_page, chromium_path

from fairpilot_jobs.reports import charts
from fairpilot_jobs.reports.html import Report, Section, format_value

XSS = "<script>alert(1)</script>"
# Payloads that would report themselves through console.error if the browser ran them.
XSS_LOUD = "<img src=x onerror=\"console.error('xss-img')\"><script>console.error('xss')</script>"
UNICODE = "Ünïcødé naïve café – Zürich ≥ 50K €"
SVG_NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
HEADINGS = ["Overview", "Charts", f"Data {XSS}", "Notes"]


# -- helpers ---------------------------------------------------------------------------------


class _Elements(HTMLParser):
    """Tags, attributes and <script> bodies of a document, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser


def build_full_report(payload: str = XSS) -> Report:
    """A report that uses every primitive, a chart of each kind and hostile strings."""
    rng = np.random.default_rng(7)
    report = Report(
        f"Toolkit check {payload}",
        subtitle=f"{UNICODE} · {payload}",
        meta={"level": "expert", f"source {payload}": payload},
    )
    overview = report.section("Overview", intro=f"What the run found {payload}.")
    overview.metrics(
        {"Rows": 48_842, "Accuracy": 0.873456, "Best model": "WeightedEnsemble_L2", payload: None},
        rounded={"Accuracy"},
    )
    overview.callout("All four-fifths checks pass.", kind="success", title="No bias detected")
    overview.callout("Predictions come from the validation split.", kind="info")
    overview.callout(f"Column {payload} looks like an ID.", kind="warning", title="IdLikeColumn")
    overview.callout("Label leakage suspected.", kind="danger", title=f"Leakage {payload}")
    overview.key_values(
        {"Positive label": ">50K", "Threshold": 0.8, "Missing": float("nan"), payload: payload}
    )
    figures = report.section("Charts")
    groups = ["Female", "Male", f"Other {UNICODE}", payload]
    figures.figure(
        charts.bar_chart(
            groups,
            [0.61, 1.0, 0.75, 0.9],
            title=f"Disparate impact {payload}",
            reference=0.8,
            reference_label="four-fifths rule (0.8)",
            highlight=["Female", f"Other {UNICODE}"],
        ),
        caption=f"Groups left of the line {payload}.",
    )
    figures.figure(
        charts.grouped_bar_chart(
            groups,
            {"label": [0.3, 0.31, None, 0.2], "predicted": [0.25, 0.33, 0.1, 0.21]},
            title="Rates by group",
            ylabel="rate",
            reference=0.25,
        )
    )
    figures.figure(charts.histogram(rng.normal(40, 12, 2_000), title="age", xlabel="years"))
    figures.figure(
        charts.category_bars({f"{payload} {i}": 1_000 // (i + 1) for i in range(20)}, title="top")
    )
    data = report.section(f"Data {payload}")
    frame = pd.DataFrame(
        {
            "name": [f"row {i} {UNICODE}" for i in range(500)],
            payload: rng.normal(size=500),
            "count": rng.integers(0, 100_000, 500),
            "maybe": [None if i % 7 == 0 else i * 1.5 for i in range(500)],
        }
    )
    data.table(frame, caption=f"Sample rows {payload}")
    data.details(
        f"Details {payload}",
        lambda inner: inner.paragraph(f"Inside {payload}").table([{"a": 1, payload: 2.5}]),
    )
    notes = report.section("Notes")
    notes.paragraph(f"A paragraph {payload}").bullet_list(["first", f"second {payload}"])
    notes.code(f"fairpilot-job bias --spec spec.yaml  # {payload}")
    return report


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        if os.environ.get("FAIRPILOT_SKIP_BROWSER") == "1":
            pytest.skip("FAIRPILOT_SKIP_BROWSER=1: Chromium tests skipped")
        pytest.fail(
            "Chromium is not installed: run scripts/install-chromium.sh "
            "(or set FAIRPILOT_SKIP_BROWSER=1 to skip the browser tests)"
        )
    return path


# -- formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        (float("nan"), "—"),
        (np.float32("nan"), "—"),
        (pd.NA, "—"),
        (pd.NaT, "—"),
        (1234567, "1,234,567"),
        (np.int64(-48842), "-48,842"),
        (0.873456, "0.873456"),
        (3.14159, "3.14159"),
        (12345.678, "12,345.678"),
        (1234.5678, "1,234.5678"),
        (99999.0, "99,999"),
        (12285.0, "12,285"),
        (2.0, "2"),
        (0.5, "0.5"),
        (-0.0, "0"),
        (0.000123456, "0.000123456"),
        (1.23456e-7, "1.23456e-07"),
        (6.02e23, "6.02e+23"),
        (float("inf"), "∞"),
        (True, "yes"),
        (np.bool_(False), "no"),
        ("<b>", "<b>"),
        ([1, 2.5, None], "1, 2.5, —"),
        ({"a": 1}, "a: 1"),
        (pd.Timestamp("2024-05-01"), "2024-05-01"),
    ],
)
def test_format_value(value: object, shown: str) -> None:
    assert format_value(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.873456, "0.8735"),
        (3.14159, "3.142"),
        (12345.678, "12,346"),  # never fewer digits than the whole number
        (1234.5678, "1,235"),
        (99999.0, "99,999"),
        (1234567, "1,234,567"),  # integers stay exact
        (0.000123456, "0.0001235"),
        (1.23456e-7, "1.235e-07"),
        (1.5e-7, "1.5e-07"),
        (6.02e23, "6.02e+23"),
        (float("nan"), "—"),
    ],
)
def test_format_value_rounded(value: object, shown: str) -> None:
    assert format_value(value, rounded=True) == shown


# -- HTML ------------------------------------------------------------------------------------


def test_every_user_string_is_escaped() -> None:
    html = build_full_report().render()
    document = parse(html)
    assert len(document.scripts) == 1, "only the report's own script"
    assert "alert" not in document.scripts[0]
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert all(tag != "img" for tag, _ in document.tags)


def test_attribute_injection_is_impossible() -> None:
    report = Report('x" onload="alert(1)')
    section = report.section('" autofocus onfocus="alert(1)', intro='"><svg onload=alert(1)>')
    section.table([{'"><b onmouseover=alert(1)>': '" onclick="alert(1)'}], caption="'\"<>")
    html = report.render()
    for _, attributes in parse(html).tags:
        assert not any(name.startswith("on") for name in attributes), attributes


def test_callout_kind_is_checked() -> None:
    section = Report("t").section("s")
    with pytest.raises(ValueError, match="callout kind"):
        section.callout("text", kind='info" onclick="alert(1)')  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "svg",
    [
        "<div>not svg</div>",
        "<svg><script>alert(1)</script></svg>",
        '<svg onload="alert(1)"></svg>',
        '<svg><a href="javascript:alert(1)"><text>x</text></a></svg>',
        '<svg><image xlink:href="http://example.invalid/x.png"/></svg>',
        "<svg><foreignObject><div>x</div></foreignObject></svg>",
        '<svg><style>@import "http://example.invalid/x.css";</style></svg>',
        '<svg><rect style="fill: url(http://example.invalid/p)"/></svg>',
    ],
)
def test_figure_refuses_anything_but_a_chart(svg: str) -> None:
    with pytest.raises(ValueError):
        Report("t").section("s").figure(svg)


def test_figure_takes_matplotlib_output() -> None:
    from matplotlib.figure import Figure

    figure = Figure()
    figure.add_subplot().imshow(np.eye(3))  # embedded as <image href="data:image/png...">
    svg = charts.figure_to_svg(figure)
    assert "data:image/png" in svg
    html = Report("t").section("s").figure(svg, caption=XSS)._body()
    assert html.count("<svg") == 1 and "&lt;script&gt;" in html


def test_no_network_references() -> None:
    html = build_full_report().render()
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= SVG_NAMESPACES, urls - SVG_NAMESPACES
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert "@import" not in html and "url(http" not in html


def test_document_structure() -> None:
    html = build_full_report().render()
    assert html.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in html
    assert re.search(r"Generated by FairPilot \S+ at \d{4}-\d\d-\d\d \d\d:\d\d UTC", html)
    assert '<nav class="toc"' in html  # four sections
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate ids in the page"
    for anchor in re.findall(r'<a href="#([^"]+)"', html):
        assert anchor in ids


def test_table_of_contents_only_for_more_than_two_sections() -> None:
    report = Report("Two sections")
    report.section("One").paragraph("a")
    report.section("Two").paragraph("b")
    assert '<nav class="toc"' not in report.render()
    report.section("Three").paragraph("c")
    assert '<nav class="toc"' in report.render()


def test_table_truncation_alignment_and_missing_values() -> None:
    rows = [{"name": f"r{i}", "value": i * 1.5 if i % 3 else None} for i in range(500)]
    html = Report("t").section("s").table(rows, max_rows=200)._body()
    assert "Showing the first 200 of 500 rows (300 not shown)" in html
    assert html.count("<tr>") == 201  # header and 200 rows
    assert '<th scope="col" class="num">' in html  # numeric column header right-aligned
    assert 'class="num" data-sort="1.5"' in html
    assert 'class="missing num">—</td>' in html


def test_table_columns_dataframe_index_and_empty() -> None:
    section = Section("s")
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=pd.Index(["p", "q"], name="key"))
    html = section.table(frame, columns=None)._body()
    assert html.index(">key<") < html.index(">a<") < html.index(">b<")
    html = Section("s").table([{"a": 1, "b": 2}], columns=["b"])._body()
    assert ">a<" not in html and ">b<" in html
    html = Section("s").table([], caption="nothing")._body()
    assert "No rows." in html
    html = Section("s").table([{"a": 1}, {"a": 2}], sortable=False)._body()
    assert "sortable" not in html and "button" not in html


def test_sections_chain_and_write(tmp_path: Path) -> None:
    report = Report("Chained")
    section = report.section("Only")
    same = (
        section.paragraph("p")
        .callout("c")
        .key_values({"k": 1})
        .metrics({"m": 2})
        .table([{"a": 1}])
        .figure(charts.histogram([1, 2, 3]))
        .details("d", lambda inner: None)
        .bullet_list(["b"])
        .code("x")
    )
    assert same is section
    target = tmp_path / "nested" / "report.html"
    report.write(target)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# -- charts ----------------------------------------------------------------------------------


def _all_charts() -> list[str]:
    return [
        charts.bar_chart(["a", "b"], [1.0, 2.0], title="bars"),
        charts.bar_chart(["a", "b"], [1.0, -2.0], horizontal=False, reference=0.5),
        charts.grouped_bar_chart(["x", "y"], {"s1": [1, None], "s2": [2, 3]}),
        charts.histogram(np.arange(100.0)),
        charts.category_bars({"p": 3, "q": 5}),
    ]


def test_charts_are_embeddable_svg() -> None:
    for svg in _all_charts():
        assert svg.startswith("<svg ")
        assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<metadata" not in svg
        root = re.match(r'<svg id="([^"]+)"', svg)
        assert root is not None
        for rule in re.findall(r"<style[^>]*>(.*?)</style>", svg, flags=re.DOTALL):
            assert rule.strip().startswith(f"#{root[1]} "), rule  # scoped to this chart
        urls = set(re.findall(r"https?://[^\s\"'<>)]+", svg))
        assert urls <= SVG_NAMESPACES


def test_chart_ids_are_unique_and_references_resolve() -> None:
    svgs = _all_charts() + _all_charts()
    seen: set[str] = set()
    for svg in svgs:
        ids = re.findall(r'\bid="([^"]+)"', svg)
        assert len(ids) == len(set(ids))
        assert not seen & set(ids), "two charts share an id"
        seen |= set(ids)
        references = re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', svg)
        for reference in {a or b for a, b in references}:
            assert reference in ids, f"dangling reference #{reference}"


def test_charts_leave_matplotlib_state_alone() -> None:
    import matplotlib.pyplot as plt

    backend, params = matplotlib.get_backend(), dict(matplotlib.rcParams)
    before = plt.get_fignums()
    _all_charts()
    assert plt.get_fignums() == before
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams) == params
    figure = plt.figure()  # pyplot figures (SHAP draws with pyplot) are closed too
    figure.add_subplot().plot([1, 2])
    charts.figure_to_svg(figure)
    assert figure.number not in plt.get_fignums()


def test_charts_take_awkward_input() -> None:
    height = re.compile(r'height="([\d.]+)pt"')
    few = charts.bar_chart(["a"], [1.0])
    many = charts.bar_chart([f"label {i}" for i in range(80)], list(range(80)))
    assert float(height.search(many)[1]) > 5 * float(height.search(few)[1])  # type: ignore[index]
    long_label = "a label that goes on and on " * 10
    for svg in [
        charts.bar_chart([], []),
        charts.bar_chart([long_label, "Ω≈ç√∫ 東京 $50K-$100K \n tab\t"], [math.nan, 1]),
        charts.bar_chart([str(i) for i in range(40)], range(40), horizontal=False),
        charts.grouped_bar_chart([], {}),
        charts.grouped_bar_chart(["a"], {"only none": [None]}),
        charts.histogram([]),
        charts.histogram([math.nan, math.inf, 5.0]),
        charts.histogram([3, 3, 3]),
        charts.category_bars({}),
        charts.category_bars({None: 3, 12: 4}),  # type: ignore[dict-item]
    ]:
        assert svg.startswith("<svg ")
    with pytest.raises(ValueError):
        charts.bar_chart(["a", "b"], [1.0])


def test_chart_text_is_drawn_not_markup() -> None:
    svg = charts.bar_chart([XSS], [1.0], title=XSS)
    assert "<script" not in svg
    assert 'aria-label="&lt;script&gt;alert(1)&lt;/script&gt;"' in svg


def test_pipeline_links_are_shown_and_checked() -> None:
    links = [("Profile", "../profile/report.html"), ("Bias", None), (XSS, "a&b.html")]
    page = Report("Bias analysis", links=links).render()
    nav = re.search(r'<nav class="pipeline".*?</nav>', page)
    assert nav is not None
    assert '<a href="../profile/report.html">Profile</a>' in nav.group()
    assert '<span aria-current="page">Bias</span>' in nav.group()
    assert '<a href="a&amp;b.html">&lt;script&gt;' in nav.group()  # escaped both ways
    assert '<nav class="pipeline"' not in Report("Alone").render()
    for bad in ("javascript:alert(1)", " JavaScript:x", "data:text/html,x", "vbscript:x"):
        with pytest.raises(ValueError, match="cannot be"):
            Report("x", links=[("bad", bad)])


# -- in the browser --------------------------------------------------------------------------


@pytest.mark.browser
def test_full_report_renders_cleanly(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    build_full_report().write(page)
    shot = tmp_path / "report.png"
    check = check_page(page, screenshot=shot)
    assert check.errors == []
    assert check.failed_requests == []
    assert len(check.text) > 1_000
    for heading in HEADINGS:
        assert heading in check.text
    for words in ["No bias detected", "IdLikeColumn", UNICODE, "48,842", "≈0.8735", "—"]:
        assert words in check.text
    assert "Showing the first 200 of 500 rows (300 not shown)" in check.text
    assert "Inside" not in check.text  # details start closed
    assert check.screenshot == shot
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert (int.from_bytes(data[16:20]), int.from_bytes(data[20:24])) == (1280, 900)
    full = check_page(page, screenshot=tmp_path / "report-full.png", full_page=True, layout=True)
    assert full.errors == []
    assert full.layout == []  # long labels, Unicode and 500 rows: nothing overflows or breaks


@pytest.mark.browser
def test_injected_markup_stays_text_in_the_browser(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "xss.html"
    build_full_report(XSS_LOUD).write(page)
    check = check_page(page)
    assert XSS_LOUD in check.text  # shown as the characters the user data holds
    assert check.errors == []  # neither payload ran: each would have logged an error
    assert check.failed_requests == []  # and the <img> was never created
    counted = check_page(
        page,
        script="document.body.innerText = document.querySelectorAll("
        "'script, img, [onerror], [onload]').length + ' active elements'",
    )
    assert counted.text == "1 active elements"  # the report's own <script> alone


@pytest.mark.browser
def test_sorting_and_details_work(chromium: str, tmp_path: Path) -> None:
    report = Report("Sorting")
    rows = [{"name": n, "score": s} for n, s in [("b", 2.5), ("a", None), ("c", 10.0), ("d", 1)]]
    report.section("Table").table(rows).details("More", lambda s: s.paragraph("hidden words"))
    page = tmp_path / "sort.html"
    report.write(page)
    click = "document.querySelectorAll('th button.sort')[1].click();"
    ascending = check_page(page, script=click)
    assert ascending.errors == []
    order = re.findall(r"^([abcd])\t", ascending.text, flags=re.MULTILINE)
    assert order == ["d", "b", "c", "a"]  # by value, the missing one last
    descending = check_page(page, script=click * 2 + "document.querySelector('details').open=true")
    assert re.findall(r"^([abcd])\t", descending.text, flags=re.MULTILINE) == ["c", "b", "d", "a"]
    assert "hidden words" in descending.text


# -- the page check can fail -----------------------------------------------------------------


@pytest.mark.browser
def test_check_catches_script_errors(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><p>hello</p><script>undefinedFunction();</script></body></html>")
    check = check_page(page)
    assert "hello" in check.text
    assert any("undefinedFunction" in error for error in check.errors)
    page.write_text("<html><body><script>console.error('bad thing')</script></body></html>")
    assert any("bad thing" in error for error in check_page(page).errors)


@pytest.mark.browser
def test_check_catches_external_requests(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "external.html"
    page.write_text('<html><body><img src="http://127.0.0.1:9/x.png"><p>t</p></body></html>')
    check = check_page(page)
    assert check.failed_requests == ["http://127.0.0.1:9/x.png"]


@pytest.mark.browser
def test_layout_check_catches_overflow_broken_words_and_empty_charts(
    chromium: str, tmp_path: Path
) -> None:
    report = Report("Layout")
    section = report.section("Broken")
    section.table([{f"column {i}": f"value-{i}-{'w' * 12}" for i in range(14)}])  # too wide
    section.figure(charts.bar_chart([], [], title="Nothing drawn"))
    good = report.section("Fine")
    good.table([{"type": "categorical", "n": 1_484_705}, {"type": "numeric", "n": 3}])
    good.table([{"uri": "s3://" + "x" * 300}])  # a token longer than a cell may break
    good.figure(charts.bar_chart(["a", "b"], [1.0, 2.0], title="Two bars"))
    page = tmp_path / "layout.html"
    report.write(page)
    problems = check_page(page, layout=True).layout
    assert any("table-wrap" in p and "wider than its box" in p for p in problems), problems
    assert any('"Nothing drawn"' in p and "draws no mark" in p for p in problems), problems
    assert not any("Two bars" in p or "categorical" in p or "s3://" in p for p in problems)
    squeezed = tmp_path / "squeezed.html"
    squeezed.write_text(
        '<html><body><table style="width:60px"><tr><td style="overflow-wrap:anywhere">'
        "categorical</td><td>1,484,705</td></tr></table></body></html>"
    )
    words = check_page(squeezed, layout=True).layout
    assert any('"categorical" breaks mid-word' in p for p in words), words
    assert not any("1,484,705" in p for p in words)  # a cell without overflow-wrap keeps it


@pytest.mark.browser
def test_check_sees_an_empty_page(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "empty.html"
    page.write_text("<html><body></body></html>")
    check = check_page(page)
    assert check == PageCheck(text="", errors=[], failed_requests=[], screenshot=None)


@pytest.mark.browser
def test_check_cleans_up_on_failure(chromium: str, tmp_path: Path) -> None:
    def profiles() -> set[str]:
        return {p.name for p in Path(tempfile.gettempdir()).glob("fairpilot-chromium-*")}

    before = profiles()
    with pytest.raises(RuntimeError, match="cannot open"):
        check_page(tmp_path / "missing.html")
    assert profiles() <= before

"""`fairpilot console` in a real browser: Playwright (Python) driving Debian's Chromium.

The sandbox (real API server emulator, real operator, stage pods as local processes) runs the
Adult Dataset with a bias stage; the console serves it from a thread; the browser clicks from
the namespace to the pipeline list, to the Dataset, sees a line of its stage's log arrive in
the live log view, then opens its report through the console and sees the report's title,
and opens a payload among the pipeline's Kafka events.
Every page is checked for script errors and for requests that leave the console.

`FAIRPILOT_SCREENSHOTS=DIR` keeps full-page screenshots of the main pages there.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import CHROMIUM_FLAGS, chromium_path

from fairpilot import API_GROUP, API_VERSION
from fairpilot.api.monitor import WindowSummary
from fairpilot.api.status import ModelMonitorStatus
from fairpilot.cluster import Cluster
from fairpilot.config import OperatorConfig
from fairpilot.console.data import Console
from fairpilot.console.server import running_console
from fairpilot.sandbox.app import Sandbox
from fairpilot.sandbox.emulator import running_emulator
from fairpilot.sandbox.testing import by_name, resource, wait_for

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser
# Playwright starts Chromium itself and talks to it over a pipe: no DevTools port.
FLAGS = [flag for flag in CHROMIUM_FLAGS if not flag.startswith("--remote-debugging")]
FLAGS.remove("--headless")  # Playwright's headless=True says it


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "artifacts", kafka=False) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Any]:
    binary = chromium_path()
    if binary is None:
        pytest.fail("chromium is not installed: run scripts/install-chromium.sh")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=binary, headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def _shoot(page: Any, name: str) -> None:
    folder = os.environ.get("FAIRPILOT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"console-{name}.png"), full_page=True)


def test_from_the_pipeline_list_to_a_report_and_a_live_log(
    sandbox: Sandbox, browser: Any, adult: dict[str, str]
) -> None:
    console = Console(Cluster.for_host(sandbox.url, connections=16), sandbox.config)
    with running_console(console) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        outside: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda message: errors.append(message.text) if message.type == "error" else None,
        )
        page.on(
            "response",
            lambda response: (
                errors.append(f"{response.status} {response.url}")
                if response.status >= 400
                else None
            ),
        )
        page.on(
            "request",
            lambda request: None if request.url.startswith(url) else outside.append(request.url),
        )
        page.goto(url)
        assert page.locator("h1").inner_text() == "Namespaces"

        sandbox.apply(
            [
                resource(
                    "Dataset",
                    "adult",
                    {
                        "uri": adult["train"],
                        "target": "income",
                        "taskType": "binary",
                        "sensitiveFeatures": ["sex", "race"],
                        "pipeline": {"bias": {"positiveLabel": ">50K"}},
                    },
                )
            ]
        )
        page.reload()
        _shoot(page, "namespaces")
        page.get_by_role("link", name="default", exact=True).click()
        page.wait_for_url(f"{url}/ns/default")
        assert "Pipelines in default" in page.locator("h1").inner_text()

        # The Dataset's page while (or soon after) its profile stage runs: the log view
        # connects, waits for a pod if there is none yet, and shows its lines as they come.
        page.locator("section.pipeline h2 a", has_text="adult").click()
        page.wait_for_url(f"{url}/ns/default/datasets/adult")
        log = page.locator("#log")
        log.filter(has_text=re.compile("profile: starting")).wait_for(timeout=120_000)
        assert "fairpilot.job" in log.inner_text()

        wait_for(sandbox, "adult", lambda status: status.get("phase") == "Succeeded", 300)
        report_uri = by_name(sandbox)["adult"]["status"]["reports"]["profile"]
        title = re.search(
            r"<title>(.*?)</title>", Path(report_uri.removeprefix("file://")).read_text()
        )
        assert title is not None
        page.reload()
        page.locator("#log-status").filter(has_text="ended").wait_for(timeout=60_000)
        _shoot(page, "dataset")

        # The pipeline list now shows the bias stage the Dataset owns.
        wait_for(sandbox, "adult-bias", lambda status: status.get("phase") == "Succeeded", 300)
        page.goto(f"{url}/ns/default")
        rows = page.locator("section.pipeline tbody tr")
        assert rows.count() == 2
        assert "BiasAnalysis" in rows.nth(1).inner_text()
        _shoot(page, "pipelines")

        page.locator("section.pipeline h2 a", has_text="adult").click()
        page.get_by_role("link", name="profile").click()
        page.wait_for_load_state()
        assert page.title() == title.group(1)
        assert "/ns/default/artifacts/" in page.url
        _shoot(page, "report")

        page.goto(f"{url}/ns/default/biasanalyses/adult-bias")
        page.locator("#log-status").filter(has_text="ended").wait_for(timeout=60_000)
        _shoot(page, "bias")

        # The Kafka events of the pipeline, as the sink computes them: this sandbox runs no
        # Kafka, so each is pending; a payload opens without script (<details>).
        page.goto(f"{url}/ns/default/datasets/adult")
        reported = page.locator("tr.kafka-event", has_text="bias.reported")
        reported.wait_for()
        assert reported.locator("td.delivered").inner_text().strip() == "pending"
        reported.locator("summary").click()
        payload = json.loads(reported.locator("pre.json").inner_text())
        assert payload["event_type"] == "bias.reported"
        assert payload["dataset_id"] == "adult"
        assert page.locator("tr.kafka-event", has_text="status.changed").count() == 4
        _shoot(page, "kafka-events")

        # The operator's pipeline index, opened through the console, and from it a report:
        # the links between them are relative, so they work below the console's artifact path.
        index = page.get_by_role("link", name="Pipeline index")
        for _ in range(100):  # written after the bias stage's phase change; then final
            page.goto(f"{url}/ns/default/datasets/adult")
            index.click()
            page.wait_for_load_state()
            # The Dataset, its bias stage and the pipeline itself.
            if page.locator("span.phase", has_text="Succeeded").count() == 3:
                break
            time.sleep(0.2)
        assert page.title() == "Pipeline adult"
        assert page.locator("span.phase", has_text="Succeeded").count() == 3
        _shoot(page, "pipeline-index")
        page.get_by_role("link", name="bias", exact=True).click()
        page.wait_for_load_state()
        assert page.title() == "Bias analysis"
        page.get_by_role("link", name="Pipeline index").click()
        page.wait_for_load_state()
        assert page.title() == "Pipeline adult"
        assert errors == []
        assert outside == []
        # What a refusal looks like: a model file is no report.
        refused = page.goto(f"{url}/ns/default/artifacts/~none/model.pkl")
        assert refused is not None and refused.status == 403
        _shoot(page, "refused")


def test_a_monitors_trends_are_drawn_inside_their_charts(browser: Any) -> None:
    """A ModelMonitor's status with windows (written as the operator writes it, no operator
    needed), its page in the browser: a chart per trend, every point and label inside its
    chart, no two labels of a chart on top of each other, nothing wider than the page."""
    windows = [
        WindowSummary(window=n, rows=1000 + n, max_psi=psi, max_psi_feature="age",
                      drifted_features=drifted, prediction_psi=prediction,
                      disparate_impact={"sex": di, "race": di + 0.01},
                      statistical_parity_difference={"sex": 0.2 - di / 10, "race": None},
                      score=score)
        for n, psi, drifted, prediction, di, score in (
            (1, 0.0149, 0, 0.0088, 0.31, 0.9173),
            (2, 3.6827, 2, 0.7553, 0.08, None),
            (3, 1.7391, 1, 0.1990, 0.34, 0.9214),
            (4, 0.2101, 1, 0.2003, 0.33, 0.9190),
        )
    ]  # fmt: skip
    status = ModelMonitorStatus(phase="Succeeded", window=4, windows=windows)
    with running_emulator() as api:
        cluster = Cluster.for_host(api)
        custom = cluster.custom
        spec = {"trainingRunRef": "income", "batches": {"uri": "file:///tmp/b/"}}
        body = resource("ModelMonitor", "watch", spec)
        custom.create_namespaced_custom_object(
            API_GROUP, API_VERSION, "default", "modelmonitors", body
        )
        custom.patch_namespaced_custom_object_status(
            API_GROUP, API_VERSION, "default", "modelmonitors", "watch",
            {"status": status.model_dump(by_alias=True, mode="json", exclude_none=True)},
        )  # fmt: skip
        with running_console(Console(cluster, OperatorConfig(jobs_image="local"))) as url:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/ns/default/modelmonitors/watch")
            charts = page.locator("figure.chart svg")
            charts.first.wait_for()
            assert charts.count() == 5
            drawn = page.evaluate(
                """() => [...document.querySelectorAll('figure.chart svg')].map(svg => {
                    const box = svg.getBoundingClientRect();
                    const inside = el => { const b = el.getBoundingClientRect();
                        return b.left >= box.left - 0.5 && b.right <= box.right + 0.5
                            && b.top >= box.top - 0.5 && b.bottom <= box.bottom + 0.5; };
                    const labels = [...svg.querySelectorAll('text.value')]
                        .map(t => t.getBoundingClientRect());
                    let overlaps = 0;
                    labels.forEach((a, i) => labels.slice(i + 1).forEach(b => {
                        if (a.left < b.right && b.left < a.right && a.top < b.bottom
                            && b.top < a.bottom) overlaps++; }));
                    return {width: box.width, points: svg.querySelectorAll('circle').length,
                            outside: [...svg.querySelectorAll('circle, text')]
                                .filter(el => !inside(el)).map(el => el.textContent),
                            overlaps};
                })"""
            )
            _shoot(page, "monitor")
            wide = page.evaluate("document.scrollingElement.scrollWidth > window.innerWidth")
        assert errors == []
        assert not wide, "the page scrolls sideways"
        # PSI (2 series x 4), drifted (4), disparate impact (2 x 4), parity (4 + none for
        # race), score (3: window 2 had no labels).
        assert [c["points"] for c in drawn] == [8, 4, 8, 4, 3]
        for chart in drawn:
            assert chart["width"] > 300
            assert chart["outside"] == []
            assert chart["overlaps"] == 0

"""Every stage's HTML report, rendered in headless Chromium as a person would open it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from support.browser import check_page, chromium_path
from support.jobs import JobRun

pytestmark = pytest.mark.browser


def report_files(run: JobRun) -> dict[str, Path]:
    return {name: Path(uri.removeprefix("file://")) for name, uri in run.result["reports"].items()}


@pytest.fixture(scope="module", autouse=True)
def _chromium() -> None:
    if chromium_path() is None:
        if os.environ.get("FAIRPILOT_SKIP_BROWSER") == "1":
            pytest.skip("FAIRPILOT_SKIP_BROWSER=1")
        pytest.fail("chromium is not installed: run scripts/install-chromium.sh (make test does)")


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("profiled", ["Dataset profile", "Suggested target", "income"]),
        ("biased", ["Bias analysis", "Female", "Disparate impact", "Before and after mitigation"]),
        ("trained", ["Training run", "Leaderboard", "WeightedEnsemble", "Classifier diagnostics"]),
        ("explained", ["How the model decides", "Global feature importance", "Method and checks"]),
    ],
)
def test_report_renders(
    request: pytest.FixtureRequest, tmp_path: Path, fixture: str, expected: list[str]
) -> None:
    run: JobRun = request.getfixturevalue(fixture)
    texts = []
    for name, path in report_files(run).items():
        html = path.read_text()
        assert not re.search(r"(src|href)=[\"']https?://", html), (
            f"{name} loads something from the network"
        )
        page = check_page(path, screenshot=tmp_path / f"{name}.png", layout=True)
        assert len(page.text) > 200, f"{name} report is (nearly) empty"
        assert page.errors == [], f"{name} report has script errors: {page.errors}"
        assert page.failed_requests == [], f"{name} report requests {page.failed_requests}"
        # At 1280 px with every <details> open: no box wider than its room, no word or number
        # broken mid-word in a table or card, no chart without a drawn mark.
        assert page.layout == [], f"{name} report: {page.layout}"
        texts.append(page.text)
    joined = "\n".join(texts)
    for words in expected:
        assert words in joined


def test_training_diagnostics_are_the_test_metrics(trained: JobRun) -> None:
    """The curves come from the same test predictions as the test metrics."""
    diagnostics = trained.result["diagnostics"]
    test = trained.result["metrics"]["test"]
    assert diagnostics["split"] == "test"
    assert diagnostics["rows"] == trained.result["rows"]["test"]
    assert diagnostics["roc"]["auc"] == pytest.approx(test["roc_auc"], abs=1e-12)
    cm = diagnostics["confusionMatrix"]
    accuracy = (cm["truePositive"] + cm["trueNegative"]) / diagnostics["rows"]
    assert accuracy == pytest.approx(test["accuracy"], abs=1e-12)

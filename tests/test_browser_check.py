"""The page check itself: it must be able to fail, or the report tests prove nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_check import check_page, chromium_path

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        chromium_path() is None, reason="chromium missing: the report tests fail for it"
    ),
]


def test_script_error_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><body><p>hello there</p><script>undefinedFunction();</script></body></html>"
    )
    check = check_page(page)
    assert "hello there" in check.text
    assert any("undefinedFunction" in error for error in check.errors)


def test_external_request_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "external.html"
    page.write_text('<html><body><img src="http://127.0.0.1:9/x.png"><p>text</p></body></html>')
    assert check_page(page).failed_requests == ["http://127.0.0.1:9/x.png"]


def test_empty_page_has_no_text(tmp_path: Path) -> None:
    page = tmp_path / "empty.html"
    page.write_text("<html><body></body></html>")
    check = check_page(page)
    assert check.text.strip() == ""
    assert check.errors == []

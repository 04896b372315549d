"""The review page in a real browser: Playwright drives Debian's headless Chromium (/usr/bin/chromium;
Playwright's own browsers are never downloaded) against `vidgru serve` over a real analyze run.

Screenshots are saved under test-artifacts/ at the repository root (ignored by git; CI can keep it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import SERVE_TOKEN
from tests.serve_process import ServeProcess

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]' installs playwright")
if not CHROMIUM.exists() and shutil.which("chromium") is None:
    pytest.skip("Debian's chromium is not installed: run scripts/system-deps", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_review_page_lists_events_and_draws_the_timeline(
    analyzed: dict[str, Path], review_server: ServeProcess, browser
) -> None:
    records = [json.loads(line) for line in analyzed["events"].read_text().splitlines() if line.strip()]
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    try:
        # The token comes once in the URL; the cookie set in reply carries it for the images and the API.
        page.goto(f"{review_server.url}/?token={SERVE_TOKEN}")
        assert "token" not in page.url
        rows = page.locator("tr.event-row")
        assert rows.count() == len(records)
        assert {rows.nth(i).get_attribute("data-event-id") for i in range(rows.count())} == {
            r["id"] for r in records
        }
        assert page.locator("tr.camera-row[data-camera=intruder]").count() == 1
        # Every thumbnail loaded as an image (a 401 or 404 would leave naturalWidth at 0).
        widths = page.eval_on_selector_all(
            "tr.event-row img", "imgs => imgs.map(i => i.complete && i.naturalWidth)"
        )
        assert len(widths) == len(records) and all(w > 0 for w in widths)

        top = max(records, key=lambda r: r["peak_score"])
        page.locator(f"tr.event-row[data-event-id='{top['id']}'] a.open-event").click()
        page.wait_for_selector("#event-detail svg#score-chart")
        chart = page.locator("svg#score-chart")
        assert chart.locator("polyline.score").count() >= 1
        assert chart.locator("line.threshold").count() == 1
        assert f"threshold {top['threshold']}" in chart.locator("text.threshold-label").text_content()
        points = chart.locator("polyline.score").first.get_attribute("points").split()
        assert len(points) == len(top["timeline"]["scores"])
        box = chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100

        # Mark it as a false positive from the page; the API and the list show it.
        page.fill("#review-note", "headlights")
        with page.expect_response(lambda r: r.url.endswith("/review") and r.request.method == "PUT") as put:
            page.click("#mark-fp")
        assert put.value.status == 200
        page.wait_for_selector("#unmark-fp")
        assert "false positive" in page.locator("#review-state").inner_text()
        assert "headlights" in page.locator("#review-state").inner_text()

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "review-page.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")

        page.click("#unmark-fp")
        page.wait_for_selector("#mark-fp")
    finally:
        page.close()

"""The evaluation page (/evaluation) and the public ranking (/rankings) of #24 in headless Chromium: the ranking
table per kind with each score's inputs, the SYNTHETIC label, a 390 px phone, and the public view with units and
streets only and no person named; no console errors or CSP violations, no request leaving localhost. Fails
(never skips) without Chromium."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
import sqlalchemy as sa

from tests.test_browser import ARTIFACTS, CSP_LISTENER, browser, open_page, server  # noqa: F401 (fixtures)
from tests.test_evaluation_report import committed_month  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def _month(page, month: str) -> None:
    page.evaluate("""(m) => { const s = document.getElementById('month'); s.value = m;
        s.dispatchEvent(new Event('change')); }""", month)
    page.wait_for_function("() => window.citygrid.ready")


def test_evaluation_page_ranks_and_explains_scores(browser, server, committed_month):  # noqa: F811
    with open_page(browser, server + "/evaluation", **DESKTOP) as (page, errors, outside):
        _month(page, "2026-10")
        rows = page.locator("#ranking tbody tr")
        assert rows.count() == 2 and "监督员甲" in rows.nth(0).inner_text()
        assert rows.nth(0).locator("td").nth(3).inner_text() == "C"  # grade
        rows.nth(0).click()
        inputs = page.inner_text("#inputs")
        assert "有效上报率" in inputs and "no data this month, left out" in inputs
        page.click("#kinds button[data-kind=units]")
        page.wait_for_function("() => window.citygrid.ready")
        assert {page.locator("#ranking tbody tr").nth(i).locator("td").nth(1).inner_text()
                for i in range(2)} == {"P1", "P2"}
        assert "report" in page.get_attribute("#report", "href") and "2026-10" in page.get_attribute("#csv", "href")
        assert "按期处置率" in page.inner_text("#definitions") or page.locator("#definitions dt").count() == 4
        page.screenshot(path=str(ARTIFACTS / "evaluation-desktop.png"))
        assert errors == [] and outside == []


def test_evaluation_page_says_synthetic_and_fits_a_phone(browser, server, committed_month, beijing_engine):  # noqa: F811
    with beijing_engine.begin() as conn:
        conn.execute(sa.text("UPDATE cases SET synthetic = true WHERE case_id = :c"), {"c": committed_month["a"]})
    try:
        with open_page(browser, server + "/evaluation", **PHONE) as (page, errors, outside):
            _month(page, "2026-10")
            assert page.is_visible("#synthetic") and "SYNTHETIC" in page.inner_text("#synthetic")
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 390, width  # the table scrolls inside itself, the page does not
            page.screenshot(path=str(ARTIFACTS / "evaluation-phone.png"))
            assert errors == [] and outside == []
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("UPDATE cases SET synthetic = false WHERE case_id = :c"), {"c": committed_month["a"]})


def test_public_rankings_without_signing_in(browser, server, committed_month, beijing_engine):  # noqa: F811
    context = browser.new_context(**PHONE)
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    errors, outside = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: outside.append(r.url) if urlparse(r.url).hostname not in ("127.0.0.1", None)
            and not r.url.startswith("data:") else None)
    try:
        page.goto(server + "/rankings")
        assert urlparse(page.url).path == "/rankings"  # no sign-in
        page.wait_for_function("() => window.citygrid && window.citygrid.ready")
        _month(page, "2026-10")
        tabs = page.locator("#kinds button")
        assert [tabs.nth(i).get_attribute("data-kind") for i in range(tabs.count())] == ["units", "streets"]
        text = page.inner_text("main")
        assert "P1" in text and "监督员甲" not in text and "sup-a" not in text
        page.screenshot(path=str(ARTIFACTS / "rankings-phone.png"))
        assert errors == [] and outside == []
    finally:
        context.close()

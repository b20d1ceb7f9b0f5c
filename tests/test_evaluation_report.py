"""The printable evaluation report (#24 A3) in headless Chromium: it prints to an A4 PDF with one page per kind,
with the Chinese text set in a CJK font, and runs no script (the page's policy allows only its own style).
Fails (never skips) without Chromium."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.test_browser import ARTIFACTS, browser, server  # noqa: F401 (fixtures)
from tests.test_evaluation import make_month

pytestmark = pytest.mark.slow
A4_POINTS = (595.28, 841.89)  # 210 × 297 mm


@pytest.fixture(scope="module")
def committed_month(beijing_engine, case_rules):
    """The October 2026 data of ``test_evaluation.make_month``, committed for the server (removed after)."""
    with beijing_engine.begin() as conn:
        made = make_month(conn, case_rules)
    yield made
    with beijing_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM cases WHERE case_id IN (:a, :b, :c, :d)"), made)
        conn.execute(sa.text("DELETE FROM people WHERE username = 'sup-a'"))


def _pdf(browser, server, path: str) -> bytes:  # noqa: F811
    from tests.test_browser import BROWSER_PASSWORD, BROWSER_USER, sign_in

    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(server + "/evaluation")  # signs in through the login form, then asks for the report
        sign_in(page, server + "/evaluation", BROWSER_USER, BROWSER_PASSWORD) if "/login" in page.url else None
        response = page.goto(server + path)
        assert response.status == 200 and "@page" in page.content()
        page.emulate_media(media="print")
        pdf = page.pdf(prefer_css_page_size=True, print_background=True)
        assert errors == [], errors
        return pdf
    finally:
        context.close()


def _pages(pdf: bytes) -> list[tuple[float, float]]:
    """The page sizes (points) of a PDF: one MediaBox per page object (``/Type /Page``, not ``/Pages``)."""
    pages = len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", pdf))
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([0-9.]+)\s+([0-9.]+)\s*\]", pdf)
    assert len(boxes) == pages and re.findall(rb"/Count\s+([0-9]+)", pdf)[0] == str(pages).encode()
    return [(float(w), float(h)) for w, h in boxes]


def test_the_report_prints_one_a4_page_per_kind(browser, server, committed_month):  # noqa: F811
    pdf = _pdf(browser, server, "/api/v1/evaluation/report?district=110105&month=2026-10")
    (ARTIFACTS / "evaluation-report.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF")
    pages = _pages(pdf)
    assert len(pages) == 5, pages
    assert all(abs(w - A4_POINTS[0]) < 2 and abs(h - A4_POINTS[1]) < 2 for w, h in pages), pages
    assert re.search(rb"/FontName\s*/[A-Z]{6}\+NotoSans(Mono)?CJK", pdf) or b"NotoSansCJK" in pdf


def test_an_empty_month_still_prints_a_page_per_kind(browser, server):  # noqa: F811
    pdf = _pdf(browser, server, "/api/v1/evaluation/report?district=110105&month=2025-01")
    assert len(_pages(pdf)) == 5

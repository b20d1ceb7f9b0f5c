"""The overview page in headless Chromium (Debian's ``chromium``, driven by Playwright): it loads with no
console errors, makes no request that leaves the server, draws its layers, escapes stored text, and works on
a 390 px phone screen. Screenshots are kept in ``tests/artifacts/``. Fails (never skips) without Chromium."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from werkzeug.serving import make_server

from citygrid.app import create_app

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
pytestmark = pytest.mark.slow  # run in the main pass of make test, not again in the TCP DATABASE_URL pass
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server(beijing_db):
    app = create_app({"CITYGRID_SETTINGS": beijing_db})
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(executable).exists(), "Debian's chromium is required for the browser tests (make setup installs it)"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url, **context_args):
    context = browser.new_context(**context_args)
    page = context.new_page()
    errors, outside = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: outside.append(r.url)
            if urlparse(r.url).hostname not in ("127.0.0.1", None) and not r.url.startswith("data:") else None)
    page.goto(url, wait_until="networkidle")
    page.wait_for_function("window.citygrid && window.citygrid.ready", timeout=30_000)
    return context, page, errors, outside


def drawn_features(page) -> int:
    return page.evaluate("""() => { let n = 0;
        window.citygrid.map.eachLayer(l => { if (l.feature) { n += 1; } }); return n; }""")


def test_overview_loads_offline_with_its_layers(browser, server):
    ARTIFACTS.mkdir(exist_ok=True)
    context, page, errors, outside = open_page(browser, server + "/", viewport={"width": 1280, "height": 900})
    try:
        assert errors == [] and outside == []
        labels = page.inner_text(".leaflet-control-layers")
        for layer in ("District boundary", "Supervision grids", "Unit grids", "Street points", "Community points"):
            assert layer in labels
        assert drawn_features(page) > 237 + 298  # supervision grids + community points at least
        page.screenshot(path=str(ARTIFACTS / "overview.png"))
    finally:
        context.close()


def test_clicking_a_point_shows_escaped_text(browser, server, beijing_engine):
    import sqlalchemy as sa

    with beijing_engine.begin() as conn:
        old = conn.execute(sa.text("SELECT name FROM admin_areas WHERE code = '110105001024'")).scalar_one()
        conn.execute(sa.text("UPDATE admin_areas SET name = '<img src=x onerror=alert(1)>' "
                             "WHERE code = '110105001024'"))
    try:
        context, page, errors, _ = open_page(browser, server + "/")
        try:
            opened = page.evaluate("""() => { let done = false;
                window.citygrid.map.eachLayer(l => {
                    if (!done && l.feature && String(l.feature.properties.name).startsWith('<img')) {
                        l.openPopup(); done = true; } });
                return done; }""")
            assert opened
            popup = page.inner_text(".leaflet-popup-content")
            assert "<img src=x onerror=alert(1)>" in popup  # shown as text
            assert page.locator("img[src='x']").count() == 0 and errors == []
        finally:
            context.close()
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("UPDATE admin_areas SET name = :n WHERE code = '110105001024'"), {"n": old})


def test_overview_on_a_phone_screen(browser, server):
    context, page, errors, outside = open_page(browser, server + "/", viewport={"width": 390, "height": 844},
                                               device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        assert errors == [] and outside == []
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing forces horizontal scrolling
        page.screenshot(path=str(ARTIFACTS / "overview-phone.png"))
    finally:
        context.close()


def test_clicking_a_unit_grid_shows_its_card_with_owners(browser, server):
    context, page, errors, outside = open_page(browser, server + "/", viewport={"width": 1000, "height": 800})
    try:
        page.evaluate("() => { window.citygrid.map.setView([39.93, 116.48], 16); }")
        page.wait_for_function("""() => { let n = 0; window.citygrid.map.eachLayer(l => {
            if (l.feature && String(l.feature.id || '').length === 15) { n += 1; } }); return n > 0; }""",
                               timeout=20_000)
        page.evaluate("""() => { const map = window.citygrid.map; const centre = map.getCenter(); let done = false;
            map.eachLayer(l => { if (!done && l.feature && String(l.feature.id || '').length === 15
                                      && l.getBounds().contains(centre)) { l.openPopup(centre); done = true; } }); }""")
        page.wait_for_selector(".cg-card dl", timeout=20_000)
        page.wait_for_timeout(1500)  # the card must stay open (no pan-and-reload closing it)
        assert page.locator(".cg-card dl").is_visible()
        card = page.inner_text(".cg-card")
        assert "管理主体" in card and "办事处" in card and "监督网格" in card
        assert errors == [] and outside == []
        page.screenshot(path=str(ARTIFACTS / "grid-card.png"))
    finally:
        context.close()

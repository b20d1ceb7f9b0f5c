"""The pages in headless Chromium (Debian's ``chromium``, driven by Playwright): each loads with no console
errors and makes no request that leaves the server, draws its layers (vector tiles included), escapes stored
text, and works on a 390 px phone screen; clicks open grid and component cards, search finds things, the
caseload slider and opacity work, a new case shows on the cases page, a supervisor locates themself.
Screenshots are kept in ``tests/artifacts/``. Fails (never skips) without Chromium."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

from citygrid.app import create_app
from tests.conftest import serving

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
pytestmark = pytest.mark.slow  # run in the main pass of make test, not again in the TCP DATABASE_URL pass
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]


BROWSER_USER, BROWSER_PASSWORD = "browser-admin", "browser test password"
CSP_LISTENER = """document.addEventListener("securitypolicyviolation", (e) => console.error(
    "Content Security Policy violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline code")));"""


@pytest.fixture(scope="module")
def server(beijing_db, beijing_engine):
    from citygrid.accounts import service as accounts

    with beijing_engine.begin() as conn:
        if not any(u["username"] == BROWSER_USER for u in accounts.list_users(conn)):
            accounts.add_user(conn, BROWSER_USER, ["admin"], password=BROWSER_PASSWORD)
    with serving(create_app({"CITYGRID_SETTINGS": beijing_db}), beijing_db) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(executable).exists(), "Debian's chromium is required for the browser tests (make setup installs it)"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def open_page(browser, url, **context_args):
    """A new context on ``url``, signed in, with the page's console errors and CSP violations collected: yields
    ``(page, errors, outside)`` (requests that left the server) and closes the context when the block ends.
    Predicates of ``wait_for_function`` are written as functions: Playwright polls a bare expression with
    ``eval``, which the pages' policy (rightly) forbids."""
    context = browser.new_context(**context_args)
    page = context.new_page()
    errors, outside = [], []
    # Every CSP violation fails a test: Chromium logs most as errors, some as warnings, and the page reports
    # each one as a securitypolicyviolation event (logged here as an error naming the policy).
    context.add_init_script(CSP_LISTENER)
    page.on("console", lambda m: errors.append(m.text)
            if m.type == "error" or "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: outside.append(r.url)
            if urlparse(r.url).hostname not in ("127.0.0.1", None) and not r.url.startswith("data:") else None)
    try:
        sign_in(page, url)
        page.wait_for_load_state("networkidle")
        # ready: the page's main layer is drawn; the overview adds its other layers after that (complete).
        page.wait_for_function("() => window.citygrid && window.citygrid.ready && window.citygrid.complete !== false",
                               timeout=30_000)
        yield page, errors, outside
    finally:
        context.close()


def sign_in(page, url: str, username: str = BROWSER_USER, password: str = BROWSER_PASSWORD) -> None:
    """Open ``url``: the server sends the login form first; fill it in and land on the page asked for."""
    page.goto(url)
    assert "/login" in page.url, page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    wanted = urlparse(url)
    assert urlparse(page.url).path == wanted.path, page.url
    if page.locator("#whoami").count():  # every page but a message page (403/404) names who is signed in
        assert page.inner_text("#whoami") == username


def drawn_features(page) -> int:
    return page.evaluate("""() => { let n = 0;
        window.citygrid.map.eachLayer(l => { if (l.feature) { n += 1; } }); return n; }""")


def tile_features(page, layer: str) -> int:
    """Features in the loaded vector tiles of ``window.citygrid.layers[layer]``."""
    return page.evaluate("""(name) => { const layer = window.citygrid.layers[name]; let n = 0;
        if (!layer || !layer._vectorTiles) { return 0; }
        Object.values(layer._vectorTiles).forEach(t => { n += Object.keys(t._features || {}).length; }); return n; }""",
                         layer)


def click_map_centre(page) -> None:
    box = page.locator(".folium-map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_overview_loads_offline_with_its_layers(browser, server):
    ARTIFACTS.mkdir(exist_ok=True)
    with open_page(browser, server + "/", viewport={"width": 1280, "height": 900}) as (page, errors, outside):
        assert errors == [] and outside == []
        page.hover(".leaflet-control-layers")
        labels = page.inner_text(".leaflet-control-layers")
        for layer in ("District boundary", "Supervision grids", "Unit grids", "Components", "Frontage units",
                      "Street points", "Community points"):
            assert layer in labels
        assert drawn_features(page) > 298  # community points at least
        assert tile_features(page, "unitGrids") > 8000  # every Chaoyang unit grid is drawn at district zoom
        assert "owners" in page.inner_text(".cg-legend")
        page.screenshot(path=str(ARTIFACTS / "overview.png"))
        page.select_option("#role", "enforcement")
        page.wait_for_function("() => document.querySelector('.cg-legend').textContent.includes('enforcement owners')")
        assert "综合执法队" in page.inner_text(".cg-legend")
        page.screenshot(path=str(ARTIFACTS / "overview-enforcement.png"))


def test_the_overview_asks_for_unit_grid_tiles_first_in_the_district_extent_it_was_sent(browser, server):
    """#23 page_overview: the page comes with each district's extent (EPSG:4326), so the unit-grid tiles are asked
    for before the boundary, and the other layers (supervision grids, roads, areas, the owners' legend) only
    once the unit grids are drawn: they do not queue in front of the tiles the page is waiting for."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    events: list[tuple[str, str]] = []
    page.on("request", lambda r: events.append(("request", urlparse(r.url).path + "?" + urlparse(r.url).query)))
    page.on("console", lambda m: events.append(("error", m.text)) if m.type == "error" else None)
    try:
        sign_in(page, server + "/")
        page.wait_for_function("() => window.citygrid && window.citygrid.complete === true", timeout=30_000)
        box = page.evaluate("() => window.citygrid.data.per_district['110105'].bbox")
        fitted = page.evaluate("""() => { const b = window.citygrid.map.getBounds();
            return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; }""")
    finally:
        context.close()
    assert not [e for e in events if e[0] == "error"], events
    requested = [url for kind, url in events if kind == "request"]

    def first(fragment: str) -> int:
        return next(i for i, url in enumerate(requested) if fragment in url)

    unit = first("/tiles/unit_grids/")
    assert unit < first("/api/v1/districts/110105?simplify=10")
    for later in ("/tiles/supervision_grids/", "/api/v1/districts/110105/areas", "/api/v1/grids/owners",
                  "/api/v1/districts/110105/lines"):
        assert unit < first(later), later
    last_unit = max(i for i, url in enumerate(requested) if "/tiles/unit_grids/" in url)
    assert last_unit < first("/tiles/supervision_grids/") and last_unit < first("/api/v1/districts/110105/areas")
    west, south, east, north = box
    assert 116.2 < west < east < 116.8 and 39.7 < south < north < 40.2  # Chaoyang, lon/lat
    assert fitted[0] <= west and fitted[1] <= south and fitted[2] >= east and fitted[3] >= north


def test_the_pages_run_under_a_csp_that_blocks_injected_script(browser, server):
    for path in ("/", "/caseload", "/cases"):
        with open_page(browser, server + path, viewport={"width": 1000, "height": 800}) as (page, errors, outside):
            assert errors == [] and outside == []
            policy = page.evaluate("""() => fetch(location.href).then(r => r.headers.get(
                "content-security-policy"))""")
            assert "'unsafe-inline'" not in policy and "script-src 'self' 'sha256-" in policy
            ran = page.evaluate("""() => { const s = document.createElement("script");
                s.textContent = "window.cgInjected = true;"; document.head.appendChild(s);
                return window.cgInjected === true; }""")
            page.wait_for_timeout(200)
            assert ran is False and any("Content Security Policy" in e for e in errors), errors


def test_clicking_a_point_shows_escaped_text(browser, server, beijing_engine):
    import sqlalchemy as sa

    with beijing_engine.begin() as conn:
        old = conn.execute(sa.text("SELECT name FROM admin_areas WHERE code = '110105001024'")).scalar_one()
        conn.execute(sa.text("UPDATE admin_areas SET name = '<img src=x onerror=alert(1)>' "
                             "WHERE code = '110105001024'"))
    try:
        with open_page(browser, server + "/") as (page, errors, _):
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
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("UPDATE admin_areas SET name = :n WHERE code = '110105001024'"), {"n": old})


@pytest.mark.parametrize("path", ["/", "/caseload", "/cases"])
def test_every_page_on_a_phone_screen(browser, server, path):
    with open_page(browser, server + path, viewport={"width": 390, "height": 844},
                   device_scale_factor=2, is_mobile=True, has_touch=True) as (page, errors, outside):
        assert errors == [] and outside == []
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing forces horizontal scrolling
        map_height = page.locator(".folium-map").bounding_box()["height"]
        assert map_height > 844 / 2  # the map, not the controls, fills the phone
        page.screenshot(path=str(ARTIFACTS / f"phone-{path.strip('/') or 'overview'}.png"))


def test_clicking_a_unit_grid_shows_its_card_with_owners(browser, server):
    with open_page(browser, server + "/", viewport={"width": 1000, "height": 800}) as (page, errors, outside):
        page.evaluate("() => { window.citygrid.map.setView([39.93, 116.48], 16); }")
        page.wait_for_function("""() => { const l = window.citygrid.layers.unitGrids;
            return l && Object.entries(l._vectorTiles).some(([key, t]) => key.endsWith(':16')
                                                                    && Object.keys(t._features).length > 0); }""",
                               timeout=20_000)
        page.wait_for_timeout(300)
        click_map_centre(page)  # a real click on the canvas tile
        page.wait_for_selector(".cg-card dl", timeout=20_000)
        page.wait_for_timeout(1000)  # the card stays open
        assert page.locator(".cg-card dl").is_visible()
        card = page.inner_text(".cg-card")
        for label in ("管理主体", "责任主体", "执法主体", "监督主体", "监督网格"):
            assert label in card
        assert "办事处" in card and "综合执法队" in card
        assert errors == [] and outside == []
        page.screenshot(path=str(ARTIFACTS / "grid-card.png"))


def test_search_finds_a_grid_a_case_and_an_address(browser, server, beijing_engine):
    import sqlalchemy as sa

    with beijing_engine.connect() as conn:
        grid = conn.execute(sa.text("SELECT code FROM unit_grids ORDER BY code LIMIT 1")).scalar_one()
    with open_page(browser, server + "/", viewport={"width": 1000, "height": 800}) as (page, errors, outside):
        for query, expected in ((grid, "unit_grid: " + grid), ("南郎家园", "community: 南郎家园社区")):
            page.fill("#search", query)
            page.click("#search-form button")
            page.wait_for_function("(t) => document.getElementById('summary').textContent.includes(t)",
                                   arg=expected, timeout=15_000)
        page.fill("#search", "火星上的地址")
        page.click("#search-form button")
        page.wait_for_function("() => document.getElementById('summary').textContent.startsWith('nothing found')")
        assert errors == [] and outside == []
        page.screenshot(path=str(ARTIFACTS / "search.png"))


def test_a_component_is_drawn_from_tiles_and_its_card_shows_history(browser, server, beijing_engine):
    import sqlalchemy as sa

    obj_id = "1101050118999001"
    with beijing_engine.begin() as conn:
        for valid_from, valid_to, lon in (("2024-01-01", "2025-06-01", 116.4801), ("2025-06-01", None, 116.48)):
            conn.execute(sa.text(
                """INSERT INTO components (district_code, obj_id, valid_from, valid_to, scheme, class_code,
                                           obj_name, obj_state, synthetic, geom)
                   VALUES ('110105', :o, :f, CAST(:t AS timestamptz), 'cjt214', '0118', '<b>测试路灯</b>', '完好',
                           true, ST_Transform(ST_SetSRID(ST_MakePoint(:lon, 39.93), 4326), 4548))"""
            ), {"o": obj_id, "f": valid_from, "t": valid_to, "lon": lon})
    try:
        with open_page(browser, server + "/", viewport={"width": 1000, "height": 800}) as (page, errors, outside):
            page.evaluate("() => { window.citygrid.map.setView([39.93, 116.48], 18); }")
            page.wait_for_function("""() => { const l = window.citygrid.layers.components;
                return l && Object.values(l._vectorTiles).some(t => Object.keys(t._features).length > 0); }""",
                                   timeout=20_000)
            page.wait_for_timeout(300)
            click_map_centre(page)
            page.wait_for_selector(".cg-card ul li", timeout=20_000)
            card = page.inner_text(".cg-card")
            assert obj_id in card and "路灯" in card and "<b>测试路灯</b>" in card and "SYNTHETIC" in card
            assert "2 versions" in card and page.locator(".cg-card li").count() == 2
            assert errors == [] and outside == []
            page.screenshot(path=str(ARTIFACTS / "component-card.png"))
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM components WHERE obj_id = :o"), {"o": obj_id})


@pytest.fixture(scope="module")
def synthetic_history(beijing_engine):
    """A small seeded SYNTHETIC case history in the test district for the caseload page (removed after)."""
    import sqlalchemy as sa

    from citygrid.cases import synthetic

    with beijing_engine.begin() as conn:
        synthetic.generate(conn, "110105", 600)
    yield
    with beijing_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM cases WHERE district_code = '110105' AND synthetic"))


def test_caseload_page_choropleth_density_and_month_slider(browser, server, synthetic_history):
    with open_page(browser, server + "/caseload", viewport={"width": 1280, "height": 900}) as (page, errors, outside):
        assert errors == [] and outside == []
        assert "SYNTHETIC" in page.inner_text("#summary")
        page.wait_for_function("() => window.citygrid.layers.density && window.citygrid.layers.density._image "
                               "&& window.citygrid.layers.density._image.complete")
        assert tile_features(page, "choropleth") > 8000
        assert page.locator(".leaflet-image-layer").count() == 1
        page.screenshot(path=str(ARTIFACTS / "caseload.png"))
        page.evaluate("""() => { const s = document.getElementById('month'); s.value = 2;
            s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); }""")
        page.wait_for_function("() => window.citygrid.ready")
        label = page.inner_text("#month-label")
        assert len(label) == 7 and label[4] == "-"  # YYYY-MM
        assert label in page.inner_text(".cg-legend")
        page.evaluate("""() => { const s = document.getElementById('opacity'); s.value = 20;
            s.dispatchEvent(new Event('input')); }""")
        assert page.evaluate("window.citygrid.layers.density.options.opacity") == pytest.approx(0.2)
        page.select_option("#level", "community")
        page.wait_for_function("() => window.citygrid.ready && window.citygrid.layers.choropleth.getLayers "
                               "&& window.citygrid.layers.choropleth.getLayers().length > 100")
        assert errors == [] and outside == []
        page.screenshot(path=str(ARTIFACTS / "caseload-community-month.png"))


def test_new_case_appears_on_the_cases_page_with_escaped_text(browser, server, beijing_engine, beijing_admin_token):
    import sqlalchemy as sa

    from citygrid.app import create_app
    from tests.conftest import signed_in

    api = signed_in(create_app({"CITYGRID_SETTINGS": server.settings}).test_client(), beijing_admin_token)
    made = api.post("/api/v1/cases", json={"lon": 116.5012, "lat": 39.9187, "kind": "event", "class_code": "0505",
                                           "description": "<script>alert('x')</script>乱停车", "source": "supervisor"})
    case_id = made.get_json()["case"]["case_id"]
    try:
        with open_page(browser, server + "/cases",
                       viewport={"width": 1000, "height": 800}) as (page, errors, outside):
            assert errors == [] and outside == []
            page.evaluate("""(id) => { const group = window.citygrid.layers.cases; let target = null;
                group.eachLayer(l => { if (l.caseId === id) { target = l; } });
                if (!target) { throw new Error('case ' + id + ' not on the page'); }
                group.zoomToShowLayer(target, () => target.openPopup()); }""", case_id)
            page.wait_for_selector(".cg-card", timeout=15_000)
            page.wait_for_function("() => !document.querySelector('.cg-card').textContent.includes('owners …')")
            card = page.inner_text(".cg-card")
            assert "<script>alert('x')</script>乱停车" in card and "机动车乱停放" in card and "reported" in card
            assert "管理主体" in card and page.evaluate("window.__xss === undefined")
            assert errors == []
            page.screenshot(path=str(ARTIFACTS / "cases.png"))
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM cases WHERE case_id = :c"), {"c": case_id})


def test_supervisor_view_on_a_phone_with_locate_me(browser, server, beijing_engine):
    import sqlalchemy as sa

    with beijing_engine.connect() as conn:
        team = conn.execute(sa.text("SELECT code FROM supervision_teams ORDER BY code LIMIT 1")).scalar_one()
    with open_page(
browser, server + f"/cases?team={team}", viewport={"width": 390, "height": 844}, device_scale_factor=2,
is_mobile=True, has_touch=True, geolocation={"latitude": 39.93, "longitude": 116.48},
permissions=["geolocation"]) as (page, errors, outside):
        assert page.input_value("#team") == team
        page.wait_for_function("() => window.citygrid.map.hasLayer && document.getElementById('summary').textContent")
        assert f"team={team}" in page.url
        page.click("#locate")
        page.wait_for_function(
            "() => document.getElementById('summary').textContent.startsWith('you are in unit grid')", timeout=15_000)
        assert page.evaluate("window.citygrid.map.getZoom()") >= 16
        assert errors == [] and outside == []
        page.screenshot(path=str(ARTIFACTS / "cases-supervisor-phone.png"))

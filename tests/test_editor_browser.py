"""The grid editor of #23 in headless Chromium (Debian's ``chromium``, driven by Playwright), as a planner at
1280×800: a draft made with the page's button; a grid split by a line drawn with the mouse (Leaflet-Geoman's line
draw, the request sent by the page's own code): the redrawn layer holds the new grid, the draft has one grid more,
the impact preview and the edit log show the change, and Undo takes it back; a grid reshaped by dragging its edge
and a shared vertex moved; a line that does not cross the grid and a merge of two far-apart grids refused with the
reason shown and the geometry highlighted, nothing changed; another planner's edit made meanwhile answers 409 and
the page reloads the draft naming who edited it. Every page: no console errors (but the 4xx answers provoked on
purpose), no request leaving localhost, screenshots in ``tests/artifacts/``. Fails (never skips) without Chromium.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.test_browser import ARTIFACTS, browser, server  # noqa: F401 (fixtures used here)
from tests.test_desk_browser import PASSWORD, page_as

pytestmark = pytest.mark.slow  # run in the main pass of make test, not again in the TCP DATABASE_URL pass
DISTRICT = "110105"
GRID = "110105015033002"  # a unit grid of 十里堡社区 (supervision grid 110105S0153), about 6.7 ha
FAR = (39.9261, 116.5125)  # a point about 1.3 km north-east of it (another grid, not adjacent)
PLANNER, OTHER = "editor-planner", "editor-planner-2"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}


@pytest.fixture(scope="module")
def planners(beijing_engine):
    """Two planner accounts (committed; the test database lives for this run only); the drafts they make are
    dropped when the module ends (their grids and edit log go with them)."""
    from citygrid.accounts import service as accounts

    with beijing_engine.begin() as conn:
        known = {u["username"] for u in accounts.list_users(conn)}
        for name in (PLANNER, OTHER):
            if name not in known:
                accounts.add_user(conn, name, ["planner"], password=PASSWORD)
        token = accounts.issue_token(conn, OTHER, label="editor browser test")["token"]
    yield {"other_token": token}
    with beijing_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM grid_versions WHERE district_code = :d AND status = 'draft' "
                             "AND author IN (:a, :b)"), {"d": DISTRICT, "a": PLANNER, "b": OTHER})


def unit_count(engine, version: int) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM unit_grids WHERE district_code = :d AND version_id = :v"),
                            {"d": DISTRICT, "v": version}).scalar_one()


def wait_ready(page) -> None:
    page.wait_for_timeout(150)
    page.wait_for_function("() => window.citygrid.ready", timeout=30_000)


def new_draft(page) -> int:
    """Make a draft with the page's button; its version number once the page has opened it."""
    page.click("#new-draft")
    page.wait_for_function("() => window.citygrid.editor.state.version && "
                           "document.getElementById('draft-info').textContent.includes('revision 0')", timeout=60_000)
    wait_ready(page)
    return page.evaluate("() => window.citygrid.editor.state.version")


def show_grid(page, code: str = GRID, zoom: int = 17) -> dict:
    """Centre the map on a grid of the draft at ``zoom`` (found through the API like the page finds it), wait for
    the viewport's grids; the grid's GeoJSON geometry (EPSG:4326) as the page drew it."""
    feature = page.evaluate("(code) => window.citygrid.editor.state && fetch('/api/v1/grids/' + code)"
                            ".then(r => r.json())", code)
    ring = feature["geometry"]["coordinates"][0]
    lon = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
    lat = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
    page.evaluate("([lat, lon, z]) => { window.citygrid.map.setView([lat, lon], z, { animate: false }); }",
                  [lat, lon, zoom])
    wait_ready(page)
    page.wait_for_function("(code) => !!window.citygrid.editor.byCode[code]", arg=code, timeout=30_000)
    return page.evaluate("(code) => window.citygrid.editor.byCode[code].feature.geometry", code)


def centre_of(geometry: dict) -> tuple[float, float]:
    """A point inside the grid (lat, lon): the vertex mean is inside these compact grids."""
    ring = geometry["coordinates"][0][:-1]
    return sum(p[1] for p in ring) / len(ring), sum(p[0] for p in ring) / len(ring)


def pixel(page, lat: float, lon: float) -> tuple[float, float]:
    """The page coordinates of a WGS84 point on the map."""
    x, y = page.evaluate("([lat, lon]) => { const p = window.citygrid.map.latLngToContainerPoint([lat, lon]);"
                         " return [p.x, p.y]; }", [lat, lon])
    box = page.locator(".folium-map").bounding_box()
    return box["x"] + x, box["y"] + y


def click_at(page, lat: float, lon: float) -> None:
    page.mouse.click(*pixel(page, lat, lon))


def draw_line(page, points: list[tuple[float, float]]) -> None:
    """Geoman's line draw with the mouse: a click per vertex, a double click on the last."""
    for lat, lon in points[:-1]:
        click_at(page, lat, lon)
        page.wait_for_timeout(120)
    page.mouse.dblclick(*pixel(page, *points[-1]))


def drag(page, start: tuple[float, float], by: tuple[float, float]) -> None:
    """Drag with the mouse from page coordinates ``start`` by ``by`` pixels."""
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + by[0] / 2, start[1] + by[1] / 2, steps=4)
    page.mouse.move(start[0] + by[0], start[1] + by[1], steps=4)
    page.mouse.up()


def lonlat_at(page, x: float, y: float) -> tuple[float, float]:
    """The WGS84 (lon, lat) under page coordinates ``x``, ``y`` of the map."""
    box = page.locator(".folium-map").bounding_box()
    return tuple(page.evaluate("([x, y]) => { const p = window.citygrid.map.containerPointToLatLng([x, y]);"
                               " return [p.lng, p.lat]; }", [x - box["x"], y - box["y"]]))


def status_says(page, text: str) -> str:
    """The page's status line once it says ``text`` (the test fails with what it says instead)."""
    try:
        page.wait_for_function("(t) => document.getElementById('status').textContent.includes(t)", arg=text,
                               timeout=30_000)
    except Exception:
        pytest.fail(f"the page never said {text!r}; it says {page.inner_text('#status')!r}")
    wait_ready(page)
    return page.inner_text("#status")


def test_a_planner_splits_a_grid_by_drawing_a_line_and_undoes_it(browser, server, planners, beijing_engine):  # noqa: F811
    with page_as(browser, server + "/editor", PLANNER, **DESKTOP) as (page, _errors, outside):
        version = new_draft(page)
        before = unit_count(beijing_engine, version)
        geometry = show_grid(page)
        lat, lon = centre_of(geometry)
        xs = [p[0] for p in geometry["coordinates"][0]]
        click_at(page, lat, lon)  # select it
        assert GRID in page.inner_text("#selection")
        drawn = page.evaluate("() => Object.keys(window.citygrid.editor.byCode).length")
        page.click("#tool-split")
        # west to east through the middle, overshooting the grid on both sides by 40 % of its width
        span = max(xs) - min(xs)
        draw_line(page, [(lat, min(xs) - 0.4 * span), (lat, max(xs) + 0.4 * span)])
        said = status_says(page, "split done")
        assert "revision 1" in said and f"changed {GRID}" in said  # the largest part keeps the code
        added = said.split("added ")[1].split(";")[0].split(", ")
        assert len(added) == 1 and added[0] != GRID
        assert page.evaluate("(code) => !!window.citygrid.editor.byCode[code]", added[0])  # the redrawn layer has it
        assert page.evaluate("() => Object.keys(window.citygrid.editor.byCode).length") == drawn + 1
        assert unit_count(beijing_engine, version) == before + 1  # the draft has one grid more
        assert "revision 1" in page.inner_text("#draft-info")
        page.wait_for_function("(code) => document.getElementById('impact-grids') && "
                               "document.getElementById('impact-grids').textContent.includes(code)", arg=added[0],
                               timeout=30_000)
        impact = page.inner_text("#impact")
        assert "2 unit grids change" in impact and f"{GRID} changed" in impact and f"{added[0]} added" in impact
        assert "#1 split" in page.inner_text("#log") and PLANNER in page.inner_text("#log")
        page.screenshot(path=str(ARTIFACTS / "editor-split.png"))

        page.click("#undo")
        said = status_says(page, "undo done")
        assert "revision 2" in said
        assert not page.evaluate("(code) => !!window.citygrid.editor.byCode[code]", added[0])
        assert page.evaluate("() => Object.keys(window.citygrid.editor.byCode).length") == drawn
        assert unit_count(beijing_engine, version) == before
        page.wait_for_function("() => document.getElementById('impact').textContent.includes('0 unit grids change')",
                               timeout=30_000)
        assert "undone" in page.inner_text("#log")
        assert outside == []


def test_reshape_by_dragging_an_edge_then_move_the_new_shared_vertex(browser, server, planners):  # noqa: F811
    with page_as(browser, server + "/editor", PLANNER, **DESKTOP) as (page, _errors, outside):
        new_draft(page)
        geometry = show_grid(page)
        lat, lon = centre_of(geometry)
        click_at(page, lat, lon)
        page.click("#tool-reshape")
        ring = geometry["coordinates"][0]
        # the longest edge's middle handle (Geoman's), dragged 30 px outward: a new corner in the neighbour's land
        i = max(range(len(ring) - 1),
                key=lambda k: (ring[k + 1][0] - ring[k][0]) ** 2 + (ring[k + 1][1] - ring[k][1]) ** 2)
        a, b = pixel(page, ring[i][1], ring[i][0]), pixel(page, ring[i + 1][1], ring[i + 1][0])
        c = pixel(page, lat, lon)
        middle = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        out = (middle[0] - c[0], middle[1] - c[1])
        norm = (out[0] ** 2 + out[1] ** 2) ** 0.5
        drag(page, middle, (30 * out[0] / norm, 30 * out[1] / norm))
        page.click("#reshape-send")
        said = status_says(page, "reshape done")
        changed = said.split("changed ")[1].split(" — ")[0].split(", ")
        assert GRID in changed and len(changed) == 2  # the neighbour gave the land
        reshaped = page.evaluate("(code) => window.citygrid.editor.byCode[code].feature.geometry", GRID)
        added = [p for p in reshaped["coordinates"][0] if p not in ring]
        assert added, "the page did not redraw the grid from the server's answer"
        page.screenshot(path=str(ARTIFACTS / "editor-reshape.png"))

        # the corner the reshape made is shared with the neighbour now: move it
        # the tip of the bulge: the new corner nearest where the handle was dropped (the server may also add
        # corners where the new outline meets other grids' corners)
        tip = lonlat_at(page, middle[0] + 30 * out[0] / norm, middle[1] + 30 * out[1] / norm)
        new_corner = min(added, key=lambda p: (p[0] - tip[0]) ** 2 + (p[1] - tip[1]) ** 2)
        click_at(page, lat, lon)
        page.click("#tool-move")
        # back towards the grid by 12 px, still outside the old edge, so only the two grids sharing it change;
        # with Alt held (Geoman's snapping off: it would snap the corner back onto the neighbour's copy of it)
        page.keyboard.down("Alt")
        drag(page, pixel(page, new_corner[1], new_corner[0]), (-12 * out[0] / norm, -12 * out[1] / norm))
        page.keyboard.up("Alt")
        said = status_says(page, "move-vertex done")
        assert GRID in said and "revision 2" in said
        log = page.inner_text("#log")
        assert "#1 reshape" in log and "#2 move-vertex" in log
        page.screenshot(path=str(ARTIFACTS / "editor-move-vertex.png"))
        assert outside == []


def test_rejected_edits_show_the_reason_and_the_geometry(browser, server, planners, beijing_engine):  # noqa: F811
    with page_as(browser, server + "/editor", PLANNER, allow_refusals=True, **DESKTOP) as (page, _errors, outside):
        version = new_draft(page)
        before = unit_count(beijing_engine, version)
        geometry = show_grid(page)
        lat, lon = centre_of(geometry)
        xs = [p[0] for p in geometry["coordinates"][0]]
        span = max(xs) - min(xs)
        click_at(page, lat, lon)
        page.click("#tool-split")
        draw_line(page, [(lat, lon - 0.2 * span), (lat, lon + 0.2 * span)])  # inside the grid: crosses nothing
        said = status_says(page, "Refused")
        assert "not_crossing" in said
        assert page.evaluate("() => window.citygrid.layers.highlight.getLayers().length") >= 1
        assert "revision 0" in page.inner_text("#draft-info") and unit_count(beijing_engine, version) == before
        page.screenshot(path=str(ARTIFACTS / "editor-refused-split.png"))

        page.evaluate("([lat, lon]) => { window.citygrid.map.setView([lat, lon], 15, { animate: false }); }",
                      [(lat + FAR[0]) / 2, (lon + FAR[1]) / 2])
        wait_ready(page)
        page.click("#clear-selection")
        click_at(page, lat, lon)
        click_at(page, *FAR)
        assert len(page.evaluate("() => window.citygrid.editor.state.selected")) == 2
        page.click("#tool-merge")
        said = status_says(page, "Refused")
        assert "not_adjacent" in said
        assert page.evaluate("() => window.citygrid.layers.highlight.getLayers().length") >= 1
        assert "revision 0" in page.inner_text("#draft-info") and unit_count(beijing_engine, version) == before
        assert page.inner_text("#log").startswith("no edits yet")
        page.screenshot(path=str(ARTIFACTS / "editor-refused-merge.png"))
        assert outside == []


def test_an_edit_against_a_stale_revision_reloads_the_draft(browser, server, planners):  # noqa: F811
    from citygrid.app import create_app
    from tests.conftest import signed_in

    other = signed_in(create_app({"CITYGRID_SETTINGS": server.settings}).test_client(), planners["other_token"])
    with page_as(browser, server + "/editor", PLANNER, allow_refusals=True, **DESKTOP) as (page, _errors, outside):
        version = new_draft(page)
        geometry = show_grid(page)
        # meanwhile another planner edits the same draft (a reshape to the same outline is an edit all the same)
        made = other.post(f"/api/v1/grids/versions/{version}/edits?district={DISTRICT}",
                          json={"op": "reshape", "code": GRID, "geometry": geometry, "expected_revision": 0})
        assert made.status_code == 200, made.get_json()
        page.click("#undo")  # made against revision 0
        said = status_says(page, "edited since")
        assert OTHER in said and "reshape" in said and "revision 1" in said
        page.wait_for_function("() => document.getElementById('draft-info').textContent.includes('revision 1')",
                               timeout=30_000)
        wait_ready(page)
        assert "#1 reshape" in page.inner_text("#log") and OTHER in page.inner_text("#log")
        page.click("#undo")  # now against revision 1: the other planner's edit is undone
        said = status_says(page, "undo done")
        assert "revision 2" in said
        page.screenshot(path=str(ARTIFACTS / "editor-conflict.png"))
        assert outside == []

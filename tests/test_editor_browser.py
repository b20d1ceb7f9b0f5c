"""The grid editor of #23 in headless Chromium (Debian's ``chromium``, driven by Playwright), as a planner at
1280×800: a draft made with the page's button; a grid split by a line drawn with the mouse (Leaflet-Geoman's line
draw, the request sent by the page's own code): the redrawn layer holds the new grid, the draft has one grid more,
the impact preview and the edit log show the change, and Undo takes it back; a grid reshaped by dragging its edge
and a shared vertex moved; a line that does not cross the grid and a merge of two far-apart grids refused with the
reason shown and the geometry highlighted, nothing changed; another planner's edit made meanwhile answers 409 and
the page reloads the draft naming who edited it; a grid moved to a neighbouring supervision grid and that
supervision grid given to another team with the page's lists (each checked in the database, the redrawn grid and
the preview), then the draft published with a date (the version published, the one it replaced retired, the
draft gone from the list; the test database's published version restored afterwards). Every page: no console
errors (but the 4xx answers provoked on purpose), no request leaving localhost, screenshots in
``tests/artifacts/``. Fails (never skips) without Chromium.
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


def movable_grid(engine, version: int) -> tuple[str, str, str]:
    """(unit grid, its supervision grid, a neighbouring supervision grid) such that moving the grid there keeps
    both supervision grids one piece (what the server checks; found here so the page's edit is not refused)."""
    with engine.connect() as conn:
        pairs = conn.execute(sa.text(
            """SELECT u.code, u.supervision_code, min(n.supervision_code) FROM unit_grids u JOIN unit_grids n
                  ON n.district_code = u.district_code AND n.version_id = u.version_id
                 AND n.supervision_code <> u.supervision_code AND ST_Intersects(n.geom, u.geom)
               WHERE u.district_code = :d AND u.version_id = :v
                 AND ST_Length(ST_CollectionExtract(ST_Intersection(ST_Boundary(n.geom), ST_Boundary(u.geom)),
                                                    2)) > 50
               GROUP BY u.code, u.supervision_code ORDER BY u.code LIMIT 40"""), {"d": DISTRICT, "v": version}).all()
        for code, source, target in pairs:
            rest = conn.execute(sa.text(
                "SELECT ST_NumGeometries(ST_Multi(ST_Union(geom))) FROM unit_grids WHERE district_code = :d "
                "AND version_id = :v AND supervision_code = :s AND code <> :c"),
                {"d": DISTRICT, "v": version, "s": source, "c": code}).scalar_one()
            if rest == 1:
                return code, source, target
    raise AssertionError("no unit grid can move to a neighbouring supervision grid")


def draft_row(engine, version: int, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), {"d": DISTRICT, "v": version, **params}).one()


def test_reassign_set_team_and_publish_from_the_page(browser, server, planners, beijing_engine):  # noqa: F811
    import datetime as dt

    from citygrid.spatial import tilewarm
    from citygrid.spatial.db import deployment_zone

    with beijing_engine.connect() as conn:
        old = conn.execute(sa.text("SELECT version_id FROM grid_versions WHERE district_code = :d "
                                   "AND status = 'published'"), {"d": DISTRICT}).scalar_one()
    version = None
    try:
        with page_as(browser, server + "/editor", PLANNER, **DESKTOP) as (page, _errors, outside):
            version = new_draft(page)
            code, source, target = movable_grid(beijing_engine, version)
            lat, lon = centre_of(show_grid(page, code))
            click_at(page, lat, lon)  # select it: the supervision list shows its own supervision grid
            assert code in page.inner_text("#selection") and page.input_value("#supervision") == source
            page.select_option("#supervision", target)
            page.click("#reassign")
            said = status_says(page, "reassign done")
            assert f"changed {code}" in said and "revision 1" in said
            assert draft_row(beijing_engine, version, "SELECT supervision_code FROM unit_grids WHERE "
                             "district_code = :d AND version_id = :v AND code = :c", c=code)[0] == target
            assert draft_row(beijing_engine, version, "SELECT ST_Covers(ST_Buffer(s.geom, 0.01), ST_PointOnSurface("
                             "u.geom)) FROM supervision_grids s, unit_grids u WHERE s.district_code = :d AND "
                             "s.version_id = :v AND s.code = :s AND u.district_code = :d AND u.version_id = :v AND "
                             "u.code = :c", s=target, c=code)[0]  # the outline holds it now
            assert page.evaluate("(c) => window.citygrid.editor.byCode[c].feature.properties.supervision_code",
                                 code) == target  # redrawn from the server's answer
            page.wait_for_function("(c) => document.getElementById('impact-grids') && "
                                   "document.getElementById('impact-grids').textContent.includes(c)", arg=code,
                                   timeout=30_000)
            assert f"{source} → {target}" in page.inner_text("#impact-grids")

            team = draft_row(beijing_engine, version, "SELECT team_code FROM supervision_grids WHERE "
                             "district_code = :d AND version_id = :v AND code = :s", s=target)[0]
            options = page.eval_on_selector_all("#team option", "(os) => os.map((o) => o.value)")
            other = next(t for t in options if t and t != team)
            page.select_option("#supervision", target)
            page.select_option("#team", other)
            page.click("#set-team")
            said = status_says(page, "set-team done")
            assert f"supervision grid {target}" in said and "revision 2" in said
            assert draft_row(beijing_engine, version, "SELECT team_code FROM supervision_grids WHERE "
                             "district_code = :d AND version_id = :v AND code = :s", s=target)[0] == other
            page.wait_for_function("(t) => document.getElementById('impact-teams') && "
                                   "document.getElementById('impact-teams').textContent.includes(t)", arg=other,
                                   timeout=30_000)
            log = page.inner_text("#log")
            assert "#1 reassign" in log and "#2 set-team" in log
            page.screenshot(path=str(ARTIFACTS / "editor-reassign-set-team.png"))

            day = (dt.date.today() + dt.timedelta(days=2)).isoformat()
            page.fill("#effective-from", day)
            page.click("#publish")
            said = status_says(page, "published")
            assert f"version {version} published, effective {day}" in said
            status, start = draft_row(beijing_engine, version, "SELECT status, effective_from FROM "
                                      "grid_versions WHERE district_code = :d AND version_id = :v")
            with beijing_engine.connect() as conn:
                zone = deployment_zone(conn)
            local = start.astimezone(zone)  # the start of that day where the deployment is
            assert status == "published" and (local.date().isoformat(), local.time()) == (day, dt.time(0))
            replaced = draft_row(beijing_engine, old, "SELECT status, effective_to FROM grid_versions WHERE "
                                 "district_code = :d AND version_id = :v")
            assert replaced[0] == "retired" and replaced[1] is not None
            wait_ready(page)
            drafts_listed = page.eval_on_selector_all("#draft option", "(os) => os.map((o) => o.value)")
            assert str(version) not in drafts_listed  # no longer a draft to open
            page.screenshot(path=str(ARTIFACTS / "editor-published.png"))
            assert outside == []
    finally:
        # the published version made current again for the other tests (the tiles warmed meanwhile dropped)
        tilewarm.wait(DISTRICT, timeout=300)
        with beijing_engine.begin() as conn:
            if version is not None:
                conn.execute(sa.text("DELETE FROM grid_versions WHERE district_code = :d AND version_id = :v "
                                     "AND version_id <> :old"), {"d": DISTRICT, "v": version, "old": old})
            conn.execute(sa.text("UPDATE grid_versions SET status = 'published', effective_to = NULL "
                                 "WHERE district_code = :d AND version_id = :v"), {"d": DISTRICT, "v": old})
            conn.execute(sa.text("DELETE FROM tile_store"))


def test_too_many_drafts_are_refused_and_a_draft_is_dropped_from_the_page(browser, server, planners,  # noqa: F811
                                                                          beijing_engine):
    from citygrid.gridding import drafts

    def open_drafts() -> list[int]:
        with beijing_engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT version_id FROM grid_versions WHERE district_code = :d "
                                             "AND status = 'draft' ORDER BY 1"), {"d": DISTRICT}).scalars())

    with beijing_engine.begin() as conn:  # the district's drafts up to the limit (the fixture drops them)
        for _ in range(server.settings.max_open_drafts - len(open_drafts())):
            drafts.create(conn, DISTRICT, author=PLANNER)
    full = open_drafts()
    with page_as(browser, server + "/editor", PLANNER, allow_refusals=True, **DESKTOP) as (page, _errors, outside):
        page.click("#new-draft")
        said = status_says(page, "open drafts")
        assert f"{len(full)} open drafts" in said and str(full[-1]) in said and "drop" in said
        assert open_drafts() == full
        shown = page.evaluate("() => window.citygrid.editor.state.version")
        assert shown == full[-1]  # the page opened the newest draft
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#drop-draft")
        said = status_says(page, "dropped")
        assert f"draft {shown} dropped" in said
        assert open_drafts() == full[:-1]
        listed = page.eval_on_selector_all("#draft option", "(os) => os.map((o) => o.value)")
        assert str(shown) not in listed and str(full[-2]) in listed
        page.once("dialog", lambda dialog: dialog.dismiss())  # asked again and declined: nothing dropped
        page.click("#drop-draft")
        page.wait_for_timeout(500)
        assert open_drafts() == full[:-1]
        before = page.evaluate("() => window.citygrid.editor.state.version")
        page.click("#new-draft")  # room again
        status_says(page, "已新建草稿")
        page.wait_for_function("(v) => window.citygrid.editor.state.version !== v", arg=before, timeout=60_000)
        wait_ready(page)
        version = page.evaluate("() => window.citygrid.editor.state.version")
        assert version > shown and open_drafts() == [*full[:-1], version]
        page.screenshot(path=str(ARTIFACTS / "editor-drop-draft.png"))
        assert outside == []

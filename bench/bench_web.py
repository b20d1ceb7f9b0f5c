"""Web map benchmarks on the Chaoyang demo database.

``mvt_tile``: p95 latency of unit-grid tiles (z14–z16) and component tiles (z15–z16, over 300,000 SYNTHETIC
components made in a rolled-back transaction) through the app, cold (empty tile cache) and cached, vs the
anchor of serving the same layer as one GeoJSON document (all current unit grids; all components), same run.

``page_overview``: time from navigation to the overview page being interactive with every Chaoyang unit grid
drawn (``window.citygrid.ready``: boundary drawn, all unit-grid tiles of the district view loaded), in headless
Chromium against ``citygrid serve --prod``, cold (fresh server) and warm; the anchor is the same page drawing
the unit grids from GeoJSON instead of tiles. Measured after a publish (#23), as a city sees it: in a database of
its own (``citygrid_bench_web``, the Chaoyang demo's grids, made once), a draft of the current version is
published and its grid tiles warmed (``spatial.tilewarm``, what a publish does), then a fresh server is started.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import sqlalchemy as sa

from bench.common import BENCH_PASSWORD, BENCH_USER, bench_token, demo_connection, prod_server
from bench.results import entry
from citygrid.spatial import tiles

CENTRE = (116.48, 39.93)  # lon, lat inside Chaoyang
COMPONENTS = 300_000
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def _tiles(z: int, radius: int) -> list[tuple[int, int, int]]:
    cx, cy = _tile(*CENTRE, z)
    return [(z, cx + dx, cy + dy) for dx in range(-radius, radius + 1) for dy in range(-radius, radius + 1)]


def _synthetic_components(conn) -> None:
    """300,000 SYNTHETIC current components inside Chaoyang (seeded), in the caller's rolled-back transaction."""
    # ST_GeneratePoints is seeded; classes are spread over the taxonomy by the point's number.
    conn.execute(sa.text(
        """WITH points AS (SELECT row_number() OVER () AS g, d.geom
                             FROM (SELECT (ST_Dump(ST_GeneratePoints(geom, :n, 2026))).geom AS geom FROM districts
                                    WHERE district_code = '110105') d),
                classes AS (SELECT row_number() OVER (ORDER BY code) - 1 AS i, code, name FROM taxonomy_classes
                             WHERE kind = 'component' AND scheme = 'cjt214'),
                n AS (SELECT count(*) AS k FROM classes)
           INSERT INTO components (district_code, obj_id, scheme, class_code, obj_name, synthetic, geom)
           SELECT '110105', '110105' || c.code || lpad(p.g::text, 6, '0'), 'cjt214', c.code, c.name, true, p.geom
             FROM points p, n JOIN classes c ON true WHERE c.i = (p.g * 7919) % n.k"""
    ), {"n": COMPONENTS})
    conn.execute(sa.text("ANALYZE components"))


def _p95(values: list[float]) -> float:
    return float(np.percentile(np.array(values), 95))


def mvt_tile() -> dict:
    from citygrid.app import create_app
    from citygrid.webmap.context import Backend

    with demo_connection("citygrid") as conn:
        _synthetic_components(conn)

        @contextmanager
        def connect() -> Iterator:
            savepoint = conn.begin_nested()
            try:
                yield conn
            finally:
                savepoint.rollback()

        client = create_app({"CITYGRID_BACKEND": Backend(engine=None, connect=connect, database="citygrid"),
                             "TESTING": True}).test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {bench_token('citygrid')}"
        timings: dict[str, dict[str, list[float]]] = {}
        sizes: dict[str, list[int]] = {}
        for layer, zooms in (("unit_grids", (14, 15, 16)), ("components", (15, 16))):
            tiles.CACHE.clear()
            cold, warm = [], []
            for z in zooms:
                for tz, tx, ty in _tiles(z, 3):
                    url = f"/tiles/{layer}/{tz}/{tx}/{ty}.mvt"
                    t0 = time.perf_counter()
                    response = client.get(url)
                    cold.append(time.perf_counter() - t0)
                    assert response.status_code in (200, 204), (url, response.status_code)
                    sizes.setdefault(layer, []).append(len(response.data))
                    t0 = time.perf_counter()
                    again = client.get(url)
                    warm.append(time.perf_counter() - t0)
                    assert again.headers["X-Tile-Cache"] == "hit"
            timings[layer] = {"cold": cold, "cached": warm}
        anchors = {}
        t0 = time.perf_counter()
        first = client.get("/api/v1/grids?kind=unit&district=110105&limit=5000")
        second = client.get("/api/v1/grids?kind=unit&district=110105&limit=5000&offset=5000")
        anchors["unit_grids"] = time.perf_counter() - t0
        grid_count = len(first.get_json()["features"]) + len(second.get_json()["features"])
        t0 = time.perf_counter()
        document = conn.execute(sa.text(
            """SELECT json_build_object('type', 'FeatureCollection', 'features', json_agg(json_build_object(
                          'type', 'Feature', 'id', obj_id,
                          'geometry', ST_AsGeoJSON(ST_Transform(geom, 4326), 7)::json,
                          'properties', json_build_object('class_code', class_code, 'obj_name', obj_name))))::text
                 FROM components WHERE district_code = '110105' AND valid_to IS NULL""")).scalar_one()
        anchors["components"] = time.perf_counter() - t0
    ours = _p95(timings["unit_grids"]["cold"] + timings["components"]["cold"])
    anchor = anchors["unit_grids"] + anchors["components"]
    return entry(
        "mvt_tile", sum(len(t["cold"]) for t in timings.values()), ours,
        "the same layers as one GeoJSON document each (all unit grids via /api/v1/grids; all components)", anchor,
        "ours_s is the p95 of cold tiles (empty cache) over 7×7 tiles around central Chaoyang at each zoom: unit "
        "grids z14–z16 and 300,000 SYNTHETIC components z15–z16; anchor_s is building both GeoJSON documents; "
        "in-process (no network), same database and run",
        unit_grids_cold_p95_s=round(_p95(timings["unit_grids"]["cold"]), 4),
        unit_grids_cached_p95_s=round(_p95(timings["unit_grids"]["cached"]), 5),
        components_cold_p95_s=round(_p95(timings["components"]["cold"]), 4),
        components_cached_p95_s=round(_p95(timings["components"]["cached"]), 5),
        unit_grids_geojson_s=round(anchors["unit_grids"], 4), unit_grids_geojson_features=grid_count,
        unit_grids_geojson_mb=round((len(first.data) + len(second.data)) / 1e6, 2),
        components_geojson_s=round(anchors["components"], 4),
        components_geojson_mb=round(len(document) / 1e6, 1),
        tile_kb_p95={layer: round(float(np.percentile(v, 95)) / 1024, 1) for layer, v in sizes.items()})


def _time_to_ready(browser, url: str) -> tuple[float, int]:
    """Seconds from navigation to ``window.citygrid.ready`` in a fresh context (no browser cache), and the
    number of unit grids drawn."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    base = url.split("/", 3)
    signed = context.request.post(f"{base[0]}//{base[2]}/login",
                                  data={"username": BENCH_USER, "password": BENCH_PASSWORD})
    assert signed.ok, signed.status  # the session cookie is now the context's; the page load is what is timed
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function("() => window.citygrid && window.citygrid.ready", timeout=60_000, polling=20)
    elapsed = time.perf_counter() - t0
    drawn = page.evaluate("""() => { const layer = window.citygrid.layers.unitGrids; let n = 0;
        if (!layer._vectorTiles) { return layer.getLayers().length; }
        Object.values(layer._vectorTiles).forEach(t => { n += Object.keys(t._features).length; });
        return n; }""")
    context.close()
    return elapsed, drawn


WEB_DATABASE = "citygrid_bench_web"
DISTRICT = "110105"


def _web_database() -> str:
    """The page benchmark's own database (``BENCH_WEB_DATABASE`` names another): the Chaoyang demo's grids,
    made afresh when missing or of an older schema (a few minutes; later runs reuse it)."""
    import os

    from citygrid import deploy
    from citygrid.config import Settings
    from citygrid.errors import SchemaMismatch
    from citygrid.spatial import db

    name = os.environ.get("BENCH_WEB_DATABASE", WEB_DATABASE)
    settings = Settings.from_env(name)
    if db.database_exists(settings):
        engine = db.make_engine(db.database_url(settings))
        try:
            db.check_schema(engine)
            with engine.connect() as conn:
                if conn.execute(sa.text("SELECT to_regclass('tile_store')")).scalar() is not None:
                    return name
        except SchemaMismatch:
            pass
        finally:
            engine.dispose()
    db.drop_database(settings)
    deploy.init_deployment(settings, 4548, "北京市 bench")
    deploy.load_demo(settings, "chaoyang", history=False, census=False, roster=False)
    return name


def _publish_and_warm(database: str) -> dict:
    """Publish a draft of the current version (the same grids, a new version: every grid tile's key changes)
    and warm its grid tiles as a publish does; returns the warm's report and how long it took."""
    from citygrid.config import Settings
    from citygrid.gridding import drafts, service
    from citygrid.spatial import db, tilewarm

    engine = db.make_engine(db.database_url(Settings.from_env(database)))
    try:
        with engine.begin() as conn:
            draft = drafts.create(conn, DISTRICT, author="bench")
            service.publish(conn, DISTRICT, draft["version"], None, author="bench")
            plan = tilewarm.plan(conn, DISTRICT)
        t0 = time.perf_counter()
        report = tilewarm.warm(engine.begin, plan)
        return {"warm_tiles_s": round(time.perf_counter() - t0, 2), "tiles_per_layer": plan.count(),
                "tiles_stored": {k: v["stored"] for k, v in report.items()},
                "tile_store_mb": round(sum(v["bytes"] for v in report.values()) / 1e6, 1)}
    finally:
        engine.dispose()


def page_overview() -> dict:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    database = _web_database()
    bench_token(database)  # makes sure the bench user exists
    warmed = _publish_and_warm(database)
    with prod_server(database, "page_server.log") as port, sync_playwright() as p:
        base = f"http://127.0.0.1:{port}"
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            cold, drawn = _time_to_ready(browser, base + "/")  # fresh server: empty tile cache
            warm = [_time_to_ready(browser, base + "/")[0] for _ in range(3)]
            anchor = [_time_to_ready(browser, base + "/?unit_grids=geojson") for _ in range(3)]
        finally:
            browser.close()
    anchor_s = float(np.median([a[0] for a in anchor]))
    return entry("page_overview", drawn, cold, "the same page drawing the unit grids from one GeoJSON layer "
                 "(/?unit_grids=geojson: two 5,000-grid pages of /api/v1/grids), median of three loads", anchor_s,
                 "ours_s: navigation until the overview is interactive with every unit grid of Chaoyang drawn from "
                 "vector tiles, after a publish whose tiles were warmed, on a fresh `serve --prod` (empty memory "
                 "cache); warm_s: median of three later loads; no browser cache in any load; headless Chromium "
                 "1280×900; own database (citygrid_bench_web)",
                 warm_s=round(float(np.median(warm)), 3), unit_grids_drawn=drawn, anchor_features=anchor[0][1],
                 target_s=1.0, target_ratio=0.8, **warmed)


def run(wanted: set[str]) -> list[dict]:
    results = []
    if "mvt_tile" in wanted:
        results.append(mvt_tile())
    if "page_overview" in wanted:
        results.append(page_overview())
    return results

"""HTTP: health, districts (GeoJSON in EPSG:4326), areas, lines, taxonomy, JSON errors, the overview page."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import pytest
import shapely
import sqlalchemy as sa
from shapely.geometry import shape

from citygrid.app import create_app
from citygrid.spatial import db
from citygrid.webmap.context import Backend
from tests.conftest import assert_error

STATIC = Path(__file__).resolve().parent.parent / "citygrid" / "webmap" / "static"


def test_healthz_reports_versions_revision_and_srid(client):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["database_reachable"] is True
    assert body["schema_revision"] == db.head_revision() and body["srid"] == 4548
    assert body["postgis_version"].startswith("3") and body["postgresql_version"]


def test_districts_list(client):
    body = client.get("/api/v1/districts").get_json()
    chaoyang = next(d for d in body["districts"] if d["code"] == "110105")
    assert chaoyang["streets"] == 43 and chaoyang["communities"] == 598 and chaoyang["roads"] == 0


def test_district_geojson_is_wgs84_lonlat(client):
    feature = client.get("/api/v1/districts/110105").get_json()
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "MultiPolygon"
    lon, lat = feature["geometry"]["coordinates"][0][0][0]
    # WGS84, i.e. west/south of the GCJ-02 source by ~0.006° / 0.0013°.
    assert 116.33 < lon < 116.65 and 39.80 < lat < 40.12
    assert feature["properties"]["source_crs"] == "GCJ-02"


def test_district_simplify_reduces_vertices(client):
    """``simplify=100`` (metres) drops most vertices and keeps the shape: a valid multipolygon of about the same
    area, no point of it more than the tolerance (about 0.0012° of longitude here) from the full boundary."""
    full = shape(client.get("/api/v1/districts/110105").get_json()["geometry"])
    simple = shape(client.get("/api/v1/districts/110105?simplify=100").get_json()["geometry"])
    assert shapely.get_num_coordinates(simple) < shapely.get_num_coordinates(full) / 2
    assert simple.geom_type == "MultiPolygon" and simple.is_valid
    assert simple.area == pytest.approx(full.area, rel=0.02) and simple.hausdorff_distance(full) < 0.0015


@pytest.mark.parametrize(("url", "status", "code", "field", "reason"), [
    ("/api/v1/districts/999999", 404, "not_found", None, "no district 999999"),
    ("/api/v1/districts/abc", 400, "invalid_input", "code", "must be 6 digits"),
    ("/api/v1/districts/110105%27%20OR%201=1--", 400, "invalid_input", "code", "contains white space"),
    ("/api/v1/districts/110105?simplify=-1", 400, "invalid_input", "simplify", "between 0 and 1000"),
    ("/api/v1/districts/110105?simplify=nan", 400, "invalid_input", "simplify", "between 0 and 1000"),
    ("/api/v1/districts/110105?simplify=abc", 400, "invalid_input", "simplify", "must be a number, not 'abc'"),
    ("/api/v1/districts/110105/areas?level=county", 400, "invalid_input", "level", "one of street, community"),
    ("/api/v1/districts/999999/areas", 404, "not_found", None, "999999"),
    ("/api/v1/districts/110105/lines?kind=canal", 400, "invalid_input", "kind", "one of road, water, rail"),
    ("/api/v1/taxonomy?kind=thing", 400, "invalid_input", "kind", "one of component, event"),
    ("/api/v1/taxonomy?scheme=nope", 404, "not_found", None, "no taxonomy scheme 'nope'"),
    ("/api/v1/nothing-here", 404, "not_found", None, None),
])
def test_bad_requests_get_json_errors(client, url, status, code, field, reason):
    assert_error(client.get(url), status, code, field=field, reason=reason)


def test_method_not_allowed_is_json(client):
    assert_error(client.post("/api/v1/districts"), 405, "method_not_allowed")


def test_areas_split_located_and_unlocated(client):
    body = client.get("/api/v1/districts/110105/areas?level=street").get_json()
    assert len(body["features"]) == 28 and len(body["unlocated"]) == 15
    assert all(f["properties"]["level"] == "street" for f in body["features"])


def test_lines_empty_for_chaoyang(client):
    assert client.get("/api/v1/districts/110105/lines").get_json()["features"] == []


def test_taxonomy_lists_both_kinds(client):
    body = client.get("/api/v1/taxonomy").get_json()
    kinds = {c["kind"] for c in body["classes"]}
    assert kinds == {"component", "event"}
    assert sum(c["kind"] == "component" for c in body["classes"]) == 85
    assert sum(c["kind"] == "event" for c in body["classes"]) == 54
    manhole = next(c for c in body["classes"] if c["kind"] == "component" and c["code"] == "0101")
    assert manhole["name"] == "上水井盖" and manhole["verified"] is True


def test_database_down_answers_503():
    @contextmanager
    def down():
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))
        yield

    app = create_app({"CITYGRID_BACKEND": Backend(engine=None, connect=down, database="x")})
    with app.test_client() as c:
        # The credential cannot be checked either: 503, not 401
        assert_error(c.get("/api/v1/districts", headers={"Authorization": "Bearer cg_x"}), 503, "unavailable")
        body = c.get("/healthz").get_json()
        assert body["database_reachable"] is False and c.get("/healthz").status_code == 503


def test_unexpected_error_is_500_without_trace():
    @contextmanager
    def broken():
        raise RuntimeError("secret internals")
        yield

    app = create_app({"CITYGRID_BACKEND": Backend(engine=None, connect=broken, database="x")})
    body = assert_error(app.test_client().get("/api/v1/districts", headers={"Authorization": "Bearer cg_x"}),
                        500, "internal")
    assert "secret" not in body["message"]


def test_overview_page_uses_only_local_assets(client):
    html = client.get("/").get_data(as_text=True)
    assert "朝阳区" in html
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        if ref.startswith("data:"):  # inline, e.g. the empty favicon
            continue
        assert ref.startswith("/"), ref
        assert client.get(ref).status_code == 200
    for path in STATIC.rglob("*.js"):
        text = path.read_text(errors="ignore")
        if "vendor" not in path.parts:
            assert not re.search(r"https?://", text), path
    assert "innerHTML" not in (STATIC / "overview.js").read_text()


def test_overview_escapes_names(client, bj):
    bj.execute(sa.text("UPDATE districts SET name = '<script>alert(1)</script>' WHERE district_code = '110105'"))
    html = client.get("/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html

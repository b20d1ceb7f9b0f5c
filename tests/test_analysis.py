"""Caseload per area: counts, normalisation, filters, formats, bad input."""

from __future__ import annotations

import csv
import io

import pytest

from citygrid.cases import synthetic
from tests.conftest import assert_error


@pytest.fixture
def history(bj):
    return synthetic.generate(bj, "110105", 300, seed=5)


def test_caseload_counts_add_up_per_level(client, history):
    totals = {}
    for level in ("unit", "supervision", "community", "street"):
        body = client.get(f"/api/v1/caseload?district=110105&level={level}").get_json()
        totals[level] = body["total_cases"]
        assert all(r["cases"] >= 0 for r in body["rows"])
    assert totals["unit"] == totals["supervision"] == 300
    assert totals["street"] == 300 and totals["community"] <= 300  # street-level land has no community


def test_caseload_normalised_and_filtered(client, history):
    rows = client.get("/api/v1/caseload?district=110105&level=supervision").get_json()["rows"]
    busy = max(rows, key=lambda r: r["cases"])
    assert busy["cases_per_km2"] == pytest.approx(busy["cases"] / busy["area_km2"], rel=1e-2)
    assert busy["cases_per_100_components"] is None  # no census loaded here
    only = client.get("/api/v1/caseload?district=110105&level=supervision&class_code=0102").get_json()
    assert 0 < only["total_cases"] < 300
    none = client.get("/api/v1/caseload?district=110105&synthetic=false").get_json()
    assert none["total_cases"] == 0
    window = client.get("/api/v1/caseload?district=110105&start=2026-10-01&end=2026-11-02").get_json()
    assert 0 < window["total_cases"] < 300


def test_caseload_geojson_and_csv(client, history):
    geo = client.get("/api/v1/caseload?district=110105&level=supervision&format=geojson").get_json()
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == 237
    assert geo["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    text = client.get("/api/v1/caseload?district=110105&level=street&format=csv").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 43 and sum(int(r["cases"]) for r in rows) == 300


@pytest.mark.parametrize(("query", "field", "reason"), [
    ("caseload?", "district", "district is required"),
    ("caseload?district=110105&level=block", "level", "one of unit, supervision, community, street"),
    ("caseload?district=110105&format=xml", "format", "one of json, geojson, csv"),
    ("caseload?district=110105&class_code=x%20y", "class_code", "contains white space"),
    ("caseload?district=110105&class_code=" + "9" * 17, "class_code", "17 characters long; at most 16"),
    ("caseload?district=110105&start=2026-12-01&end=2026-01-01", "start", "start must not be after end"),
    ("caseload?district=110105&start=soon", "start", "ISO 8601 date or date-time"),
    ("caseload?district=110105&synthetic=maybe", "synthetic", "one of true, false"),
    ("caseload?district=110105&source=a;drop", "source", "a short word such as supervisor or hotline"),
    ("density.png?district=110105&cell_m=5", "cell_m", "between 10 and 1000"),
    ("density.png?district=110105&kernel=box", "kernel", "one of gaussian, epanechnikov, quartic"),
    ("density.png?district=110105&bandwidth_m=1", "bandwidth_m", "between 50 and 5000"),
    ("density.png?district=abc", "district", "district code 'abc' must be 6 digits"),
    ("density.json?district=110105&start=2026-12-01&end=2026-01-01", "start", "start must not be after end"),
])
def test_caseload_and_density_bad_input(client, query, field, reason):
    assert_error(client.get(f"/api/v1/{query}"), 400, "invalid_input", field=field, reason=reason)


@pytest.mark.parametrize(("query", "reason"), [
    ("caseload?district=999999", "district 999999 has no grid version"),
    ("density.bmp?district=110105", "no density format 'bmp' (png, tif, json)"),
])
def test_caseload_and_density_not_found(client, query, reason):
    assert_error(client.get(f"/api/v1/{query}"), 404, "not_found", reason=reason)


def test_density_png_tif_and_json(client, history, tmp_path):
    import rasterio

    png = client.get("/api/v1/density.png?district=110105&cell_m=200&bandwidth_m=600")
    assert png.status_code == 200 and png.data[:8] == b"\x89PNG\r\n\x1a\n"
    meta = client.get("/api/v1/density.json?district=110105&cell_m=200").get_json()
    (south, west), (north, east) = meta["bounds_lonlat"]
    assert meta["points"] == 300 and 116.3 < west < east < 116.7 and 39.7 < south < north < 40.2
    tif = client.get("/api/v1/density.tif?district=110105&cell_m=200&class_code=0102")
    (tmp_path / "d.tif").write_bytes(tif.data)
    with rasterio.open(tmp_path / "d.tif") as src:
        assert src.crs.to_epsg() == 4548 and src.tags()["class_code"] == "0102" and src.tags()["cell_m"] == "200"


def test_density_defaults_still_answer(client, history):
    meta = client.get("/api/v1/density.json?district=110105")
    assert meta.status_code == 200 and meta.get_json()["cell_m"] == 50 and meta.get_json()["bandwidth_m"] == 300
    assert client.get("/api/v1/density.png?district=110105").status_code == 200


@pytest.mark.parametrize(("query", "field", "needle"), [
    ("cell_m=10&bandwidth_m=5000", "cell_m", "the limit is 1,000,000 cells per request: use cell_m of at least 29 m"),
    ("cell_m=30&bandwidth_m=5000", "bandwidth_m", "the limit is 100 cells: use bandwidth_m of at most 3000 m"),
])
def test_density_too_costly_is_400_naming_the_limit(client, query, field, needle):
    response = client.get(f"/api/v1/density.png?district=110105&{query}")
    body = response.get_json()
    assert response.status_code == 400 and body["details"][0]["field"] == field and needle in body["message"]

"""Gi* hot spots (#24): equal to esda's G_Local on real grids, permutation p-values agreeing with esda's
statistically, ArcGIS's classes with and without FDR, islands, the API (formats, parameters, roles, district
scope, hostile input) and the CLI."""

from __future__ import annotations

import csv
import io
import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import shapely
from click.testing import CliRunner
from scipy import stats

from citygrid.cases import synthetic
from citygrid.cli import cli
from citygrid.hotspots import gistar, store, weights
from tests.conftest import assert_error, signed_in


def _esda(y: np.ndarray, w: sp.csr_matrix, permutations: int = 0, seed: int = 7):
    from esda.getisord import G_Local
    from libpysal.graph import Graph

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return G_Local(y, Graph.from_sparse(w), transform="B", star=True, permutations=permutations, seed=seed,
                       n_jobs=1)


@pytest.fixture(scope="module")
def guancheng(zhengzhou_engine):
    """Guancheng's unit grids (deployment CRS) and seeded counts with a planted cluster."""
    with zhengzhou_engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT max(version_id) FROM unit_grids WHERE district_code = '410104'"
                                       ).scalar_one()
        found = store.areas(conn, district="410104", version=version, level="unit")
    polygons = shapely.from_wkb([a["wkb"] for a in found])
    rng = np.random.default_rng(24)
    y = rng.poisson(2.0, len(polygons)).astype(float)
    centre = shapely.centroid(polygons[len(polygons) // 2])
    y[shapely.distance(shapely.centroid(polygons), centre) < 800] += 6  # a planted hot spot
    return polygons, y


def test_z_scores_equal_esda_on_guancheng_grids(guancheng):
    polygons, y = guancheng
    assert len(polygons) > 3000
    for w in (weights.queen(polygons), weights.distance_band(polygons, 400.0)):
        ours = gistar.z_scores(y, w)
        assert np.max(np.abs(ours - _esda(y, w).Zs)) <= 1e-6


def test_permutation_p_values_agree_with_esda_statistically(guancheng):
    polygons, y = guancheng
    w = weights.queen(polygons)
    ours = gistar.permutation_p(y, w, 999, seed=3)
    theirs = np.round(_esda(y, w, 999).p_sim.astype(float), 6)  # esda keeps them as float32
    assert abs((ours < 0.05).mean() - (theirs < 0.05).mean()) < 0.03
    assert stats.ks_2samp(ours, theirs).statistic < 0.05
    assert np.array_equal(ours, gistar.permutation_p(y, w, 999, seed=3))  # seeded: the same answer again
    assert ours.min() >= 1 / 1000 and ours.max() <= 0.5 + 1 / 1000  # folded, one-sided


def test_permutations_hold_the_focal_value_and_draw_others():
    # Three areas in a row, the middle one's neighbourhood is all three: nothing left to permute for it.
    w = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float))
    p = gistar.permutation_p(np.array([1.0, 5.0, 9.0]), w, 99, seed=1)
    assert p[1] == pytest.approx(1 / 100)  # every draw equals the observed sum: folded count 0


def test_classes_are_arcgis_labels_and_fdr_is_benjamini_hochberg():
    z = np.array([3.0, 2.2, 1.7, 0.3, -1.7, -2.2, -3.0])
    p = gistar.normal_p(z)
    assert [gistar.BIN_LABELS[b] for b in gistar.classes(z, p, fdr=False)] == [
        "Hot Spot - 99% Confidence", "Hot Spot - 95% Confidence", "Hot Spot - 90% Confidence", "Not Significant",
        "Cold Spot - 90% Confidence", "Cold Spot - 95% Confidence", "Cold Spot - 99% Confidence"]
    many = np.concatenate([p, np.full(200, 0.5)])
    corrected = gistar.classes(np.concatenate([z, np.ones(200)]), many, fdr=True)
    assert corrected[3:].tolist() == [0] * 204 and abs(corrected[0]) < 3  # fewer and weaker after FDR
    # the cut-off is Benjamini-Hochberg's: the largest p(k) with p(k) < k alpha / n
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.uniform(0, 0.001, 20), rng.uniform(0, 1, 180)])
    ordered = np.sort(values)
    passing = np.flatnonzero(ordered < np.arange(1, 201) * 0.05 / 200)
    assert (values < gistar.fdr_cutoff(values, 0.05)).sum() == passing.max() + 1


def test_an_island_is_compared_with_itself_and_constant_counts_are_not_significant():
    squares = [shapely.box(x, 0, x + 1, 1) for x in range(6)] + [shapely.box(50, 50, 51, 51)]
    w = weights.queen(squares)
    assert weights.islands(w).tolist() == [6]
    y = np.array([1.0, 1, 1, 1, 1, 1, 30])
    result = gistar.analyse(y, w, permutations=99)
    assert result.neighbours[6] == 0 and result.z[6] > 2.0
    assert result.p_sim[6] == 1.0 and result.gi_bin[6] == 0  # nothing to permute: not significant
    assert result.z[6] == pytest.approx(_esda(y, w).Zs[6])
    flat = gistar.analyse(np.full(7, 3.0), w, permutations=99)
    assert np.all(flat.z == 0) and np.all(flat.gi_bin == 0) and not flat.significant.any()


# ------------------------------------------------------------------------------------------------ the API
@pytest.fixture
def history(bj):
    return synthetic.generate(bj, "110105", 300, seed=5)


def test_gi_star_per_level_with_the_parameters_used(client, history):
    body = client.get("/api/v1/hotspots?district=110105&level=supervision&permutations=99&seed=11").get_json()
    assert body["total_cases"] == 300 and body["synthetic"] is True and len(body["rows"]) == 237
    assert {k: body[k] for k in ("district", "level", "weights", "permutations", "seed", "alpha", "fdr")} == {
        "district": "110105", "level": "supervision", "weights": "queen", "permutations": 99, "seed": 11,
        "alpha": 0.05, "fdr": False}
    assert sum(body["classes"].values()) == 237
    row = max(body["rows"], key=lambda r: r["z"])
    assert set(row) == {"code", "name", "cases", "neighbours", "z", "p", "p_sim", "gi_bin", "class", "significant"}
    assert row["class"] == gistar.BIN_LABELS[row["gi_bin"]] and row["p"] == pytest.approx(min(1, 2 * row["p_sim"]))
    again = client.get("/api/v1/hotspots?district=110105&level=supervision&permutations=99&seed=11").get_json()
    assert again["rows"] == body["rows"]  # a replay answers the same
    normal = client.get("/api/v1/hotspots?district=110105&level=street&permutations=0&fdr=true").get_json()
    assert normal["fdr"] is True and all(r["p_sim"] is None for r in normal["rows"])
    assert "Benjamini-Hochberg" in normal["fdr_method"]


def test_gi_star_geojson_csv_and_filters(client, history):
    geo = client.get("/api/v1/hotspots?district=110105&level=street&format=geojson&permutations=9").get_json()
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == 43 and geo["level"] == "street"
    assert geo["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert "z" in geo["features"][0]["properties"]
    text = client.get("/api/v1/hotspots?district=110105&level=street&format=csv&permutations=9").get_data(
        as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 43 and sum(int(r["cases"]) for r in rows) == 300 and "class" in rows[0]
    none = client.get("/api/v1/hotspots?district=110105&level=street&synthetic=false&permutations=0").get_json()
    assert none["total_cases"] == 0 and none["synthetic"] is False
    assert all(r["gi_bin"] == 0 for r in none["rows"])
    band = client.get("/api/v1/hotspots?district=110105&level=street&weights=distance&distance_m=2500"
                      "&permutations=0").get_json()
    assert band["weights"] == "distance" and band["distance_m"] == 2500


@pytest.mark.parametrize(("query", "field", "reason"), [
    ("", "district", "district is required"),
    ("district=110105&level=block", "level", "one of unit, supervision, community, street"),
    ("district=110105&format=xml", "format", "one of json, geojson, csv"),
    ("district=110105&permutations=10000", "permutations", "between 0 and 9999"),
    ("district=110105&permutations=-1", "permutations", "between 0 and 9999"),
    ("district=110105&permutations=1e3", "permutations", "must be an integer"),
    ("district=110105&alpha=NaN", "alpha", "between 0.001 and 0.2"),
    ("district=110105&alpha=Infinity", "alpha", "between 0.001 and 0.2"),
    ("district=110105&weights=rook", "weights", "one of queen, distance"),
    ("district=110105&weights=distance&distance_m=-Infinity", "distance_m", "between 10 and 20000"),
    ("district=110105&weights=distance&distance_m=20000", "distance_m", "pairs of areas"),
    ("district=110105&fdr=yes", "fdr", "one of true, false"),
    ("district=110105&seed=99999999999", "seed", "must be an integer"),
    ("district=110105&class_code=%3Dcmd", "class_code", ""),
    ("district=110105&start=2026-12-01&end=2026-01-01", "start", "start must not be after end"),
    ("district=11%000105", "district", ""),
    ("district=" + "1" * 5000, "district", ""),
])
def test_gi_star_bad_input(client, query, field, reason):
    assert_error(client.get(f"/api/v1/hotspots?{query}"), 400, "invalid_input", field=field, reason=reason or None)


def test_gi_star_readers_and_district_scope(bj, app_of, client_as, history):
    assert client_as("hs-analyst", ["analyst"]).get("/api/v1/hotspots?district=110105&level=street"
                                                    "&permutations=0").status_code == 200
    for role in ("lead", "planner", "dispatcher"):
        assert client_as(f"hs-{role}", [role]).get("/api/v1/hotspots?district=110105&level=street"
                                                   "&permutations=0").status_code == 200
    assert_error(client_as("hs-gis", ["gis"]).get("/api/v1/hotspots?district=110105"), 403, "forbidden")
    assert app_of.test_client().get("/api/v1/hotspots?district=110105").status_code == 401
    from citygrid.accounts import service as accounts

    accounts.add_user(bj, "hs-home", ["analyst"], district="110105", password="correct horse battery")
    home = signed_in(app_of.test_client(), accounts.issue_token(bj, "hs-home", label="test")["token"])
    assert home.get("/api/v1/hotspots?district=110105&level=street&permutations=0").status_code == 200
    assert_error(home.get("/api/v1/hotspots?district=410104&level=street"), 403, "forbidden",
                 reason="works in district 110105, not 410104")
    assert_error(home.get("/api/v1/hotspots/emerging?district=410104&level=street"), 403, "forbidden")


def test_gi_star_unknown_district(client):
    assert_error(client.get("/api/v1/hotspots?district=999999"), 404, "not_found",
                 reason="district 999999 has no grid version")


def test_cli_hotspots(beijing_db):
    # the CLI reads the committed test database in a transaction of its own (no cases there: all zero)
    result = CliRunner().invoke(cli, ["--database", beijing_db.database, "hotspots", "--district", "110105",
                                      "--level", "street", "--permutations", "9"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["level"] == "street" and len(body["rows"]) == 43 and body["permutations"] == 9
    bad = CliRunner().invoke(cli, ["--database", beijing_db.database, "hotspots", "--district", "110105",
                                   "--alpha", "nan"])
    assert bad.exit_code == 2 and "alpha" in bad.stderr
    missing = CliRunner().invoke(cli, ["--database", beijing_db.database, "hotspots"])
    assert missing.exit_code == 2 and "--district is required" in missing.stderr
    csv_out = CliRunner().invoke(cli, ["--database", beijing_db.database, "hotspots", "--district", "110105",
                                       "--level", "street", "--permutations", "0", "--format", "csv"])
    assert csv_out.exit_code == 0 and csv_out.stdout.startswith("code,name,cases,neighbours,z,p")

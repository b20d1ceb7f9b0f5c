"""Emerging hot spots (#24): every one of the 17 categories from a constructed z-series, the space-time Gi*
equal to esda's on the space-time weights, the Mann-Kendall test equal to pymannkendall's, local time bins,
the API and its bounds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from citygrid.cases import synthetic
from citygrid.hotspots import emerging, gistar, weights
from citygrid.hotspots.queries import bin_starts
from tests.conftest import assert_error, submitted_case

T = 10  # 90 % of the bins is nine of them
CONSTRUCTED = {
    "New Hot Spot": [0.1, -0.2, 0.3, 0.0, 0.5, -0.4, 0.2, 0.1, 0.3, 2.5],
    "Consecutive Hot Spot": [0.1, -0.2, 0.3, 0.0, 0.5, -0.4, 0.2, 2.2, 2.6, 2.4],
    "Intensifying Hot Spot": [1.0, 2.1, 2.5, 2.9, 3.3, 3.7, 4.1, 4.5, 4.9, 5.3],
    "Persistent Hot Spot": [3.0, 2.5, 3.2, 2.6, 3.1, 2.7, 3.0, 2.8, 2.9, 3.05],
    "Diminishing Hot Spot": [6.0, 5.6, 5.1, 4.7, 4.2, 3.8, 3.3, 2.9, 2.5, 2.1],
    "Sporadic Hot Spot": [2.4, 0.1, 2.2, 0.3, -0.5, 2.8, 0.2, 0.0, 2.1, 2.3],
    "Oscillating Hot Spot": [0.2, -2.4, 0.1, 0.3, 2.2, 0.0, -0.3, 0.4, 0.1, 2.6],
    "Historical Hot Spot": [3.0, 2.5, 3.2, 2.6, 3.1, 2.7, 3.0, 2.8, 2.9, 1.0],
    "No Pattern Detected": [2.4, 0.1, 0.3, 0.2, -0.5, 0.8, 0.2, 0.0, 0.1, 0.3],
}
# Each cold twin is its hot series mirrored.
CONSTRUCTED |= {name.replace("Hot", "Cold"): [-v for v in series] for name, series in CONSTRUCTED.items()
                if "Hot" in name}


def _categories(z: np.ndarray, alpha: float = 0.05) -> tuple[list[str], list[str]]:
    """(vectorised, rule-by-rule) category names of z-series (two-sided normal p, no FDR)."""
    p = gistar.normal_p(z)
    hot, cold = (p < alpha) & (z > 0), (p < alpha) & (z < 0)
    trend_z, _, significant, _ = emerging.mann_kendall(z, alpha)
    fast = [emerging.CATEGORIES[c] for c in emerging.classify(hot, cold, trend_z, significant)]
    plain = [emerging.CATEGORIES[emerging.category(hot[i], cold[i], trend_z[i], significant[i])]
             for i in range(len(z))]
    return fast, plain


def test_all_seventeen_categories_from_constructed_series():
    assert len(CONSTRUCTED) == 17 == len(emerging.CATEGORIES)
    names = list(CONSTRUCTED)
    fast, plain = _categories(np.array([CONSTRUCTED[n] for n in names], dtype=float))
    assert fast == names and plain == names


@pytest.mark.parametrize(("series", "expected"), [
    # the final bin decides the side: 90 % cold, yet hot at the end (also "historical cold" by the words)
    ([-3.0] * 9 + [3.0], "Oscillating Hot Spot"),
    # a run of one hot bin after an earlier cold one is oscillating, not new
    ([0.0] * 8 + [-2.5, 2.5], "Oscillating Hot Spot"),
    # 90 % hot with the final bin not hot is historical whatever the trend (sfdep: persistent)
    ([2.5] * 9 + [0.0], "Historical Hot Spot"),
    # hot before the final run, with a gap: sporadic, not consecutive
    ([2.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.5, 2.5], "Sporadic Hot Spot"),
    # hot earlier, the final bin not significant and under 90 %: no pattern (sfdep: sporadic)
    ([2.5, 2.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "No Pattern Detected"),
])
def test_where_the_words_allow_two_readings(series, expected):
    fast, plain = _categories(np.array([series], dtype=float))
    assert fast == plain == [expected]


def test_vectorised_and_rule_by_rule_agree_on_random_series():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2.0, (3000, 12)) + rng.normal(0, 1.5, (3000, 1)) + np.linspace(0, 2, 12) * rng.normal(
        0, 1, (3000, 1))
    fast, plain = _categories(z)
    assert fast == plain and len(set(fast)) >= 12


def test_mann_kendall_equals_pymannkendall_with_ties():
    import pymannkendall as mk

    rng = np.random.default_rng(9)
    z = np.round(rng.normal(0, 1, (200, 24)) + np.linspace(0, 1, 24), 1)  # rounded: many ties
    z[0] = 1.5  # all tied
    stat, p, significant, tau = emerging.mann_kendall(z)
    for i, row in enumerate(z):
        reference = mk.original_test(row)
        assert stat[i] == pytest.approx(reference.z, abs=1e-12) and p[i] == pytest.approx(reference.p, abs=1e-12)
        assert significant[i] == reference.h and tau[i] == pytest.approx(reference.Tau)


@pytest.mark.parametrize("k", [0, 1, 3])
def test_space_time_gi_star_equals_esda_on_the_space_time_weights(k):
    from esda.getisord import G_Local
    from libpysal.graph import Graph

    squares = [shapely.box(x, y, x + 1, y + 1) for x in range(9) for y in range(7)] + [shapely.box(40, 40, 41, 41)]
    w = weights.queen(squares)
    rng = np.random.default_rng(k)
    counts = rng.poisson(1.2, (len(squares), 11)).astype(float)
    counts[:8, 6:] += 4
    ours = emerging.space_time_z(counts, w, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = G_Local(counts.T.ravel(), Graph.from_sparse(weights.space_time(w, 11, k)), transform="B",
                            star=True, permutations=0)
    assert np.max(np.abs(ours - reference.Zs.reshape(11, -1).T)) <= 1e-9


def test_bins_are_local_months_and_monday_weeks():
    import datetime as dt

    assert [d.isoformat() for d in bin_starts(dt.date(2025, 11, 15), dt.date(2026, 2, 1), "month")] == [
        "2025-11-01", "2025-12-01", "2026-01-01", "2026-02-01"]
    weeks = bin_starts(dt.date(2026, 1, 1), dt.date(2026, 1, 20), "week")
    assert [d.isoformat() for d in weeks] == ["2025-12-29", "2026-01-05", "2026-01-12", "2026-01-19"]


# ------------------------------------------------------------------------------------------------ the API
@pytest.fixture
def history(bj):
    return synthetic.generate(bj, "110105", 300, seed=5)


def test_emerging_answers_categories_per_area_with_the_parameters_used(client, history):
    body = client.get("/api/v1/hotspots/emerging?district=110105&level=supervision").get_json()
    assert body["bin"] == "month" and body["k"] == 1 and body["fdr"] is True and body["synthetic"] is True
    assert body["time_zone"] == "Asia/Shanghai" and len(body["bins"]) >= 12
    assert len(body["rows"]) == 237 and sum(body["categories"].values()) == 237
    assert body["total_cases"] == sum(r["cases"] for r in body["rows"]) == 300
    row = body["rows"][0]
    assert len(row["counts"]) == len(row["z"]) == len(row["gi_bin"]) == len(body["bins"])
    assert row["pattern"] == emerging.CATEGORIES[row["category"]]
    weekly = client.get("/api/v1/hotspots/emerging?district=110105&level=street&bin=week&k=2&fdr=false"
                        "&start=2026-06-01&end=2026-10-31").get_json()
    assert weekly["bins"][0] == "2026-06-01" and len(weekly["bins"]) == 22 and weekly["k"] == 2
    text = client.get("/api/v1/hotspots/emerging?district=110105&level=street&format=csv").get_data(as_text=True)
    assert text.startswith("code,name,cases,category,pattern,trend_z")
    geo = client.get("/api/v1/hotspots/emerging?district=110105&level=street&format=geojson").get_json()
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == 43 and "bins" in geo


def test_emerging_bins_in_the_deployments_local_time(bj, client, case_rules):
    case = submitted_case(bj, case_rules, lon=116.5012, lat=39.9187)
    # 17:30 UTC on 31 March is 01:30 on 1 April in Beijing: an April case
    bj.execute(sa.text("UPDATE cases SET reported_at = '2026-03-31T17:30:00Z' WHERE case_id = :i"),
               {"i": case["case_id"]})
    body = client.get("/api/v1/hotspots/emerging?district=110105&synthetic=false&start=2026-01-01"
                      "&end=2026-06-30").get_json()
    assert body["bins"] == ["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01", "2026-05-01", "2026-06-01"]
    assert body["synthetic"] is False and body["total_cases"] == 1
    (row,) = [r for r in body["rows"] if r["cases"]]
    assert row["counts"] == [0, 0, 0, 1, 0, 0]


@pytest.mark.parametrize(("query", "field", "reason"), [
    ("district=110105&bin=day", "bin", "one of month, week"),
    ("district=110105&k=13", "k", "between 0 and 12"),
    ("district=110105&k=-1", "k", "between 0 and 12"),
    ("district=110105&start=2020-01-01&end=2026-12-31&bin=week", "bin", "at most 120 bins"),
    ("district=110105&start=2026-01-01&end=2026-02-10", "bin", "at least 4 bins"),
    ("district=110105&alpha=0", "alpha", "between 0.001 and 0.2"),
    ("district=110105&weights=distance&distance_m=NaN", "distance_m", "between 10 and 20000"),
    ("district=110105&level=%0A", "level", ""),
    ("district=110105&synthetic=false", "start", "no case matches"),
])
def test_emerging_bad_input(client, query, field, reason):
    assert_error(client.get(f"/api/v1/hotspots/emerging?{query}"), 400, "invalid_input", field=field,
                 reason=reason or None)


def test_finds_the_planted_emerging_hot_spot(bj, client):
    """The demo's planted emerging hot spot (``cases.synthetic_events.PLANTED``: monthly counts rising over the
    last six months around one point) comes out as a new or consecutive hot spot, and a 99 % Gi* hot spot over
    those months, with nothing but the planted cases in the district."""
    from citygrid.cases.synthetic_events import PLANTED, plant

    plant(bj, "110105")
    spot = PLANTED["110105"]["emerging_hotspot"]
    code = client.get(f"/api/v1/grids/at?lon={spot['lon']}&lat={spot['lat']}").get_json()["code"]
    body = client.get("/api/v1/hotspots/emerging?district=110105&start=2025-11-01&end=2026-10-31").get_json()
    row = next(r for r in body["rows"] if r["code"] == code)
    assert row["pattern"] in ("New Hot Spot", "Consecutive Hot Spot"), row
    assert body["synthetic"] is True and sum(row["counts"][:6]) == 0 < row["counts"][-1]  # none before, now many
    # the default 999 permutations: a two-sided p down to 0.002, below the 99 % class's 0.01
    gi = client.get("/api/v1/hotspots?district=110105&start=2026-05-01&end=2026-10-31").get_json()
    assert next(r for r in gi["rows"] if r["code"] == code)["class"] == "Hot Spot - 99% Confidence"

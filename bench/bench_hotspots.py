"""``hotspot_gi`` and ``emerging_hotspot`` (#24) over the Chaoyang demo's unit grids and case counts.

``hotspot_gi``: Gi* with 999 conditional permutations — ours (``hotspots.gistar.analyse``: sparse z-scores,
permutations vectorised over areas of similar neighbour counts, classes) vs esda's ``G_Local(y, w,
transform="B", star=True, permutations=999)`` as installed (no numba in our venv: esda falls back to plain
Python, with joblib over the cores), same weights, same run; ``max_abs_dz`` between the z-scores, and the share
of grids significant at 0.05 by each one's pseudo p-values.

``emerging_hotspot``: the unit grids x the 24 local months up to the newest case — ours
(``hotspots.emerging.analyse``: the space-time Gi* without building its weights, a vectorised Mann-Kendall, the
categories for all grids at once) vs the straightforward reference: esda's ``G_Local`` over the space-time
weights of the whole cube (``weights.space_time``; built before the clock starts), FDR over its two-sided
p-values, ``pymannkendall.original_test`` per grid and the rule-by-rule ``emerging.category`` per grid;
``categories_identical`` compares the two.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import warnings

import numpy as np
import shapely
import sqlalchemy as sa

from bench.common import demo_connection, timed
from bench.results import entry
from citygrid.hotspots import emerging, gistar, store, weights
from citygrid.hotspots.queries import bin_starts
from citygrid.spatial.analysis.queries import CaseloadFilter

DISTRICT = "110105"
MONTHS = 24


def _grids_and_cases(conn) -> tuple[int, list[dict], np.ndarray]:
    version = conn.execute(sa.text("SELECT max(version_id) FROM grid_versions WHERE district_code = :d "
                                   "AND status = 'published'"), {"d": DISTRICT}).scalar_one()
    found = store.areas(conn, district=DISTRICT, version=version, level="unit")
    return version, found, shapely.from_wkb([a.pop("wkb") for a in found])


def _gi(conn) -> dict:
    version, found, polygons = _grids_and_cases(conn)
    index = {a["code"]: i for i, a in enumerate(found)}
    y = np.zeros(len(found))
    for code, cases, _ in store.counts(conn, district=DISTRICT, version=version, level="unit", f=CaseloadFilter()):
        if code in index:
            y[index[code]] += cases
    w = weights.queen(polygons)
    from esda.getisord import G_Local
    from libpysal.graph import Graph

    graph = Graph.from_sparse(w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        G_Local(y[:50], Graph.from_sparse(w[:50, :50]), transform="B", star=True, permutations=9)  # warm-up
        ours_s, ours = timed(lambda: gistar.analyse(y, w, permutations=999, seed=2026), repeat=3)
        anchor_s, theirs = timed(lambda: G_Local(y, graph, transform="B", star=True, permutations=999, seed=2026),
                                 repeat=3)
    their_p = np.round(theirs.p_sim.astype(float), 6)
    return entry("hotspot_gi", len(y), ours_s, "esda G_Local(transform='B', star=True, permutations=999), as "
                 "installed", anchor_s, "Chaoyang unit grids (queen), the demo's SYNTHETIC case counts per grid; "
                 "best of 3 each; numba is not installed, so esda's permutations run as plain Python (joblib "
                 "over the cores); ours is single-threaded numpy",
                 max_abs_dz=float(np.max(np.abs(ours.z - theirs.Zs))), cases=int(y.sum()),
                 significant_05_ours=round(float((ours.p_sim < 0.05).mean()), 4),
                 significant_05_esda=round(float((their_p < 0.05).mean()), 4),
                 numba_installed=importlib.util.find_spec("numba") is not None)


def _cube(conn) -> tuple[np.ndarray, object, list[dt.date]]:
    version, found, polygons = _grids_and_cases(conn)
    zone = conn.execute(sa.text("SELECT current_setting('TimeZone')")).scalar_one()
    rows = store.binned_counts(conn, district=DISTRICT, version=version, level="unit", f=CaseloadFilter(),
                               unit="month", zone=zone)
    last = max(r[1] for r in rows)
    month = last.year * 12 + last.month - 1 - (MONTHS - 1)
    bins = bin_starts(dt.date(month // 12, month % 12 + 1, 1), last, "month")
    index, position = {a["code"]: i for i, a in enumerate(found)}, {b: t for t, b in enumerate(bins)}
    counts = np.zeros((len(found), len(bins)))
    for code, start, cases, _ in rows:
        if code in index and start in position:
            counts[index[code], position[start]] += cases
    return counts, weights.queen(polygons), bins


def _reference(counts: np.ndarray, graph, alpha: float = 0.05) -> np.ndarray:
    """esda over the cube, pymannkendall and the plain rules per grid."""
    import pymannkendall as mk
    from esda.getisord import G_Local

    n, bins = counts.shape
    z = G_Local(counts.T.ravel(), graph, transform="B", star=True, permutations=0).Zs.reshape(bins, n).T
    p = gistar.normal_p(z)
    significant = p < gistar.fdr_cutoff(p.ravel(), alpha)
    hot, cold = significant & (z > 0), significant & (z < 0)
    out = np.zeros(n, dtype=int)
    for i in range(n):
        trend = mk.original_test(z[i], alpha)
        out[i] = emerging.category(hot[i], cold[i], trend.z, trend.h)
    return out


def _emerging(conn) -> dict:
    from libpysal.graph import Graph

    counts, w, bins = _cube(conn)
    graph = Graph.from_sparse(weights.space_time(w, len(bins), 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours_s, ours = timed(lambda: emerging.analyse(counts, w, k=1, alpha=0.05, fdr=True), repeat=3)
        anchor_s, theirs = timed(lambda: _reference(counts, graph), repeat=1)
    found = {emerging.CATEGORIES[c]: int((ours.category == c).sum()) for c in np.unique(ours.category)}
    return entry("emerging_hotspot", int(counts.size), ours_s, "esda G_Local over the cube's space-time weights "
                 "(k=1) + FDR + pymannkendall.original_test and the plain rules per grid", anchor_s,
                 f"Chaoyang unit grids x {len(bins)} local months ({bins[0]} to {bins[-1]}; months before the demo's "
                 "SYNTHETIC history are empty bins); one cube-wide Gi* as ArcGIS computes it, so esda runs once over "
                 "the whole cube rather than once per bin; weights built before the clock; ours best of 3",
                 categories_identical=bool(np.array_equal(ours.category, theirs)), grids=int(counts.shape[0]),
                 bins=len(bins), non_empty_bins=int((counts.sum(axis=0) > 0).sum()), categories=found)


def run(wanted: set[str]) -> list[dict]:
    out = []
    with demo_connection("citygrid") as conn:
        if "hotspot_gi" in wanted:
            out.append(_gi(conn))
        if "emerging_hotspot" in wanted:
            out.append(_emerging(conn))
    return out

"""Recurring places: space-time clusters of cases of one class that name no component (seed 002; DOMAIN.md §9
and §12.8 leave "the same problem" to us).

The method is ST-DBSCAN (Birant & Kut 2007) with its two radii: two cases of the same class are neighbours when
they lie at most ``eps_m`` metres apart (in the deployment CRS) **and** were reported at most ``window_days``
apart; a case with at least ``min_cases`` neighbours (itself included) is a core case, and clusters grow through
core cases as in DBSCAN. scikit-learn's DBSCAN runs it on a precomputed sparse graph of exactly those
neighbours (the spatial radius graph with the pairs too far apart in time removed), so the result is DBSCAN's
own. A place repeated every few weeks for months chains into one cluster; two bursts more than ``window_days``
apart at one place stay two clusters. Each cluster is ranked by size, then by its latest case (the most recent
first), and drawn as the convex hull of its cases buffered by half of ``eps_m`` (deployment CRS; the caller
reprojects it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import shapely
from sklearn.cluster import DBSCAN
from sklearn.neighbors import radius_neighbors_graph

from citygrid.recurrence.components import DAY_S


@dataclass(frozen=True)
class PlaceParams:
    """ST-DBSCAN parameters: ``eps_m`` metres, ``window_days`` days, ``min_cases`` cases (a core case's
    neighbours, itself included)."""

    eps_m: float = 50.0
    window_days: float = 90.0
    min_cases: int = 3


def st_dbscan(x: np.ndarray, y: np.ndarray, t_days: np.ndarray, params: PlaceParams) -> np.ndarray:
    """Cluster labels (0, 1, …; -1 for noise) of points x, y (deployment CRS, metres) reported at ``t_days``
    (days on any common origin), all of one class.

    Examples
    --------
    >>> st_dbscan(np.array([0., 5, 10, 0]), np.array([0., 0, 0, 0]), np.array([0., 1, 2, 400]), PlaceParams())
    array([ 0,  0,  0, -1])
    """
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=int)
    graph = radius_neighbors_graph(np.column_stack([x, y]), params.eps_m, mode="distance",
                                   include_self=False).tocoo()
    near_in_time = np.abs(t_days[graph.row] - t_days[graph.col]) <= params.window_days
    # Distances of 0 (two reports at one point) stay neighbours: a sparse graph's stored zeros would be read
    # as absent by some consumers, so every kept pair gets at least a millimetre.
    data = np.maximum(graph.data[near_in_time], 1e-3)
    neighbours = sp.csr_matrix((data, (graph.row[near_in_time], graph.col[near_in_time])), shape=(n, n))
    return DBSCAN(eps=params.eps_m, min_samples=params.min_cases, metric="precomputed").fit(neighbours).labels_


def clusters(cases: list[dict[str, Any]], params: PlaceParams) -> list[dict[str, Any]]:
    """The space-time clusters of ``cases`` (dicts with ``case_id``, ``kind``, ``class_code``, ``class_name``,
    ``x``, ``y`` (deployment CRS), ``reported_at``, ``unit_grid_code``, ``synthetic``), each class on its own,
    ranked (``rank`` from 1; see the module docstring).

    Each cluster: ``cluster_id`` (``<kind>/<class>-<n>``, n by time of its first case within the class),
    ``kind``, ``class_code``, ``class_name``, ``cases``, ``case_ids``, ``first_reported``, ``last_reported``,
    ``span_days``, ``unit_grids`` (sorted codes), ``synthetic``, ``hull`` (shapely Polygon, deployment CRS) and
    ``centre`` (shapely Point, deployment CRS).
    """
    found: list[dict[str, Any]] = []
    by_class: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for case in cases:
        by_class.setdefault((case["kind"], case["class_code"]), []).append(case)
    for (kind, code), rows in sorted(by_class.items()):
        if len(rows) < params.min_cases:
            continue
        x = np.array([r["x"] for r in rows], dtype=float)
        y = np.array([r["y"] for r in rows], dtype=float)
        t = np.array([r["reported_at"].timestamp() for r in rows], dtype=float) / DAY_S
        labels = st_dbscan(x, y, t, params)
        groups = [np.flatnonzero(labels == label) for label in range(labels.max() + 1)]
        groups.sort(key=lambda idx: t[idx].min())
        for number, idx in enumerate(groups, start=1):
            found.append(_cluster(f"{kind}/{code}-{number}", [rows[i] for i in idx], x[idx], y[idx], params))
    found.sort(key=lambda c: (-c["cases"], -c["last_reported"].timestamp(), c["cluster_id"]))
    return [{"rank": i, **c} for i, c in enumerate(found, start=1)]


def _cluster(cluster_id: str, rows: list[dict[str, Any]], x: np.ndarray, y: np.ndarray,
             params: PlaceParams) -> dict[str, Any]:
    """One cluster's summary (``clusters``); the hull and centre in the points' CRS."""
    rows = sorted(rows, key=lambda r: (r["reported_at"], r["case_id"]))
    points = shapely.multipoints(np.column_stack([x, y]))
    first, last = rows[0]["reported_at"], rows[-1]["reported_at"]
    return {
        "cluster_id": cluster_id, "kind": rows[0]["kind"], "class_code": rows[0]["class_code"],
        "class_name": rows[0].get("class_name"), "cases": len(rows), "case_ids": [r["case_id"] for r in rows],
        "first_reported": first, "last_reported": last, "span_days": round((last - first).total_seconds() / DAY_S, 1),
        "unit_grids": sorted({r["unit_grid_code"] for r in rows if r.get("unit_grid_code")}),
        "synthetic": any(r["synthetic"] for r in rows),
        "hull": shapely.convex_hull(points).buffer(params.eps_m / 2, quad_segs=4),
        "centre": shapely.Point(float(x.mean()), float(y.mean())),
    }

"""What front ends call for hot spots: Gi* over the areas of a level for a period and filters (``hotspots``)
and emerging hot spots over local time bins (``emerging``). Each answer carries the parameters it used.

Areas and weights are in the deployment CRS; geometry in answers is GeoJSON in EPSG:4326. The case filters are
the caseload's (``spatial.analysis.queries.CaseloadFilter``; its ``source`` is not used here).

Examples
--------
>>> HotspotParams().permutations, EmergingParams().bin
(999, 'month')
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from sqlalchemy.engine import Connection

from citygrid.errors import InvalidInput
from citygrid.gridding.queries import version as grid_version
from citygrid.hotspots import emerging as ehsa
from citygrid.hotspots import gistar, store, weights
from citygrid.spatial.analysis.queries import LEVELS, CaseloadFilter
from citygrid.spatial.db import deployment_zone

__all__ = ["BINS", "EMERGING_FIELDS", "GI_FIELDS", "LEVELS", "MAX_BINS", "MAX_PERMUTATIONS", "MIN_BINS",
           "EmergingParams", "HotspotParams", "emerging", "hotspots"]

MAX_PERMUTATIONS = 9999
MAX_BINS, MIN_BINS = 120, 4
MAX_K = 12
BINS = ("month", "week")
DEFAULT_DISTANCE_M = 500.0
MIN_DISTANCE_M, MAX_DISTANCE_M = 10.0, 20_000.0
# Bounds on the work one request may ask for: neighbour pairs of a distance band, and permutation draws.
MAX_PAIRS = 2_000_000
# Conditional-permutation draws one request may ask for: the default 999 permutations over a district's unit
# grids fit, ten times as many would hold a heavy slot for many seconds.
MAX_DRAWS = 100_000_000
GI_FIELDS = ("code", "name", "cases", "neighbours", "z", "p", "p_sim", "gi_bin", "class", "significant")
EMERGING_FIELDS = ("code", "name", "cases", "category", "pattern", "trend_z", "trend_p", "tau", "hot_bins",
                   "cold_bins")
FDR_METHOD = "Benjamini-Hochberg (esda.fdr), once per confidence level (90, 95, 99 %)"


@dataclass(frozen=True)
class HotspotParams:
    """How to compute Gi*: the areas' ``level``, ``weights`` (queen | distance, ``distance_m`` metres of the
    deployment CRS between centroids), ``permutations`` (0: normal p-values) and their ``seed``, ``alpha`` of the
    ``significant`` flag, ``fdr`` (Benjamini-Hochberg)."""

    level: str = "unit"
    weights: str = "queen"
    distance_m: float | None = None
    permutations: int = 999
    seed: int = 2026
    alpha: float = 0.05
    fdr: bool = False


@dataclass(frozen=True)
class EmergingParams:
    """How to compute emerging hot spots: ``level``, ``weights``/``distance_m`` as ``HotspotParams``, ``bin``
    (month | week of local time), ``k`` previous bins in the neighbourhood, ``alpha`` of the bins and the trend,
    ``fdr`` over the cube's bins."""

    level: str = "unit"
    weights: str = "queen"
    distance_m: float | None = None
    bin: str = "month"
    k: int = 1
    alpha: float = 0.05
    fdr: bool = True


def _check_common(level: str, kind: str, distance_m: float | None, alpha: float) -> float | None:
    """Validate what both analyses share; the distance band's threshold in metres (None for queen)."""
    if level not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}", field="level")
    if kind not in weights.KINDS:
        raise InvalidInput(f"weights must be one of {', '.join(weights.KINDS)}", field="weights")
    if not (isinstance(alpha, float | int) and math.isfinite(alpha) and 0 < alpha <= 0.2):
        raise InvalidInput("alpha must be a number above 0 and at most 0.2", field="alpha")
    if kind == "queen":
        return None
    distance = DEFAULT_DISTANCE_M if distance_m is None else distance_m
    if not (math.isfinite(distance) and MIN_DISTANCE_M <= distance <= MAX_DISTANCE_M):
        raise InvalidInput(f"distance_m must be between {MIN_DISTANCE_M:g} and {MAX_DISTANCE_M:g} metres",
                           field="distance_m")
    return distance


def _weights(polygons: np.ndarray, kind: str, distance: float | None, permutations: int = 0) -> Any:
    """The weights of ``polygons`` (deployment CRS); a distance band that would link too many pairs, or need
    more than ``MAX_DRAWS`` permutation draws, is refused before it is built (the expected pairs from the areas'
    density). The weights of the last few area sets are kept (``_WEIGHTS``): queen contiguity of a district's
    unit grids is slow to build, and a published version's areas do not change."""
    if kind == "distance" and len(polygons):
        covered = float(shapely.area(polygons).sum()) or 1.0
        expected = len(polygons) ** 2 * math.pi * distance**2 / covered
        if expected > MAX_PAIRS:
            raise InvalidInput(f"distance_m={distance:g} would link about {expected:,.0f} pairs of areas (at most "
                               f"{MAX_PAIRS:,}); choose a shorter distance or a coarser level", field="distance_m")
        _check_draws(permutations, int(expected) + len(polygons))
    key = (kind, distance, hashlib.blake2b(b"".join(shapely.to_wkb(polygons)), digest_size=16).digest())
    with _WEIGHTS_LOCK:
        found = _WEIGHTS.get(key)
    if found is None:
        found = weights.build(list(polygons), kind, distance)
        with _WEIGHTS_LOCK:
            _WEIGHTS[key] = found
            while len(_WEIGHTS) > _WEIGHTS_KEPT:
                _WEIGHTS.pop(next(iter(_WEIGHTS)))
    return found.copy()


_WEIGHTS: dict[tuple, Any] = {}
_WEIGHTS_KEPT = 8
_WEIGHTS_LOCK = threading.Lock()


def _check_draws(permutations: int, links: int) -> None:
    """``InvalidInput`` when ``permutations`` over ``links`` neighbour links (areas included) exceed
    ``MAX_DRAWS``."""
    if permutations * links > MAX_DRAWS:
        raise InvalidInput(f"{permutations} permutations over {links:,} neighbour links is more work than one "
                           f"request may ask for ({MAX_DRAWS:,} draws; at most {MAX_DRAWS // max(links, 1):,} "
                           "permutations here); ask for fewer permutations, a coarser level or a shorter distance",
                           field="permutations")


def _areas(conn: Connection, district: str, level: str, with_geometry: bool) -> tuple[int, list[dict], np.ndarray]:
    """(grid version, the level's areas in code order, their polygons in the deployment CRS)."""
    version_id = grid_version(conn, district)["version_id"]
    found = store.areas(conn, district=district, version=version_id, level=level, with_geojson=with_geometry)
    polygons = shapely.from_wkb([a.pop("wkb") for a in found]) if found else np.array([], dtype=object)
    return version_id, found, polygons


def hotspots(conn: Connection, district: str, f: CaseloadFilter, p: HotspotParams, *,
             with_geometry: bool = False) -> dict[str, Any]:
    """Gi* of the cases matching ``f`` per area of ``p.level`` of ``district``'s current grid version.

    Returns
    -------
    The parameters used (district, level, version, start, end, weights, distance_m, permutations, seed, alpha,
    fdr, fdr_method), ``total_cases``, ``synthetic`` (any counted case synthetic), ``islands`` (areas without a
    neighbour), ``classes`` (areas per ArcGIS class) and ``rows``: code, name, cases, neighbours, z, p, p_sim,
    gi_bin, class, significant (and ``geometry`` in EPSG:4326 with ``with_geometry``).
    """
    distance = _check_common(p.level, p.weights, p.distance_m, p.alpha)
    if not 0 <= p.permutations <= MAX_PERMUTATIONS:
        raise InvalidInput(f"permutations must be between 0 and {MAX_PERMUTATIONS}", field="permutations")
    version_id, found, polygons = _areas(conn, district, p.level, with_geometry)
    w = _weights(polygons, p.weights, distance, p.permutations)
    _check_draws(p.permutations, w.nnz + len(found))
    index = {a["code"]: i for i, a in enumerate(found)}
    y, synthetic = np.zeros(len(found)), 0
    for code, cases, synthetic_cases in store.counts(conn, district=district, version=version_id, level=p.level,
                                                       f=f):
        if code in index:
            y[index[code]] += cases
            synthetic += synthetic_cases
    result = gistar.analyse(y, w, permutations=p.permutations, seed=p.seed, fdr=p.fdr, alpha=p.alpha)
    rows = [_gi_row(a, i, y, result) for i, a in enumerate(found)]
    labels = [gistar.BIN_LABELS[b] for b in sorted(gistar.BIN_LABELS, reverse=True)]
    return {"district": district, "level": p.level, "version": version_id, "start": f.start, "end": f.end,
            "kind": f.kind, "class_code": f.class_code, "status": f.status, "weights": p.weights,
            "distance_m": distance, "permutations": p.permutations, "seed": p.seed, "alpha": p.alpha,
            "fdr": p.fdr, "fdr_method": FDR_METHOD if p.fdr else None, "total_cases": int(y.sum()),
            "synthetic": synthetic > 0, "islands": len(weights.islands(w)),
            "classes": {label: sum(1 for r in rows if r["class"] == label) for label in labels}, "rows": rows}


def _gi_row(area: dict[str, Any], i: int, y: np.ndarray, r: gistar.GiStar) -> dict[str, Any]:
    row = {"code": area["code"], "name": area["name"], "cases": int(y[i]), "neighbours": int(r.neighbours[i]),
           "z": round(float(r.z[i]), 6), "p": round(float(r.p[i]), 6),
           "p_sim": None if r.p_sim is None else round(float(r.p_sim[i]), 6), "gi_bin": int(r.gi_bin[i]),
           "class": gistar.BIN_LABELS[int(r.gi_bin[i])], "significant": bool(r.significant[i])}
    if "geometry" in area:
        row["geometry"] = area["geometry"]
    return row


def bin_starts(first: dt.date, last: dt.date, unit: str) -> list[dt.date]:
    """The first local day of every ``unit`` (month, or week from Monday) from the one holding ``first`` to the
    one holding ``last``.

    >>> [d.isoformat() for d in bin_starts(dt.date(2026, 1, 31), dt.date(2026, 3, 1), "month")]
    ['2026-01-01', '2026-02-01', '2026-03-01']
    """
    if unit == "month":
        months = (last.year - first.year) * 12 + last.month - first.month
        return [dt.date(first.year + (first.month - 1 + m) // 12, (first.month - 1 + m) % 12 + 1, 1)
                for m in range(max(0, months) + 1)]
    monday = first - dt.timedelta(days=first.weekday())
    return [monday + dt.timedelta(weeks=i) for i in range(max(0, (last - monday).days // 7) + 1)]


def _local_day(instant: str, zone: ZoneInfo, *, exclusive: bool = False) -> dt.date:
    when = dt.datetime.fromisoformat(str(instant).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    if exclusive:
        when -= dt.timedelta(microseconds=1)
    return when.astimezone(zone).date()


def _bins(conn: Connection, district: str, f: CaseloadFilter, unit: str, zone: ZoneInfo) -> list[dt.date]:
    """The bins of the period of ``f`` (its open ends: the first / last matching case), at most ``MAX_BINS``."""
    first = _local_day(f.start, zone) if f.start else None
    last = _local_day(f.end, zone, exclusive=True) if f.end else None
    if first is None or last is None:
        span = store.case_span(conn, district=district, f=f, zone=zone.key)
        first, last = first or span[0], last or span[1]
    if first is None or last is None:
        raise InvalidInput("no case matches the filters, so there is no period to bin: give start and end",
                           field="start")
    if last < first:
        raise InvalidInput("the period ends before it starts", field="end")
    months = (last.year - first.year) * 12 + last.month - first.month + 1
    count = months if unit == "month" else ((last - first).days + first.weekday()) // 7 + 1
    if count > MAX_BINS:
        raise InvalidInput(f"the period holds {count} {unit}s; at most {MAX_BINS} bins (a shorter period, or "
                           "bin=month)", field="bin")
    if count < MIN_BINS:
        raise InvalidInput(f"the period holds {count} {unit}(s); emerging hot spots need at least {MIN_BINS} bins "
                           "(a longer period, or bin=week)", field="bin")
    return bin_starts(first, last, unit)


def emerging(conn: Connection, district: str, f: CaseloadFilter, p: EmergingParams, *,
             with_geometry: bool = False) -> dict[str, Any]:
    """Emerging hot spots of the cases matching ``f`` per area of ``p.level`` and local ``p.bin``.

    Returns
    -------
    The parameters used (as ``hotspots``, plus bin, k, neighbourhood), ``bins`` (each bin's first local day),
    ``synthetic``, ``categories`` (areas per category) and ``rows``: code, name, cases, category (code), pattern
    (its name), trend_z, trend_p, tau, hot_bins, cold_bins, and per bin ``counts``, ``z`` and ``gi_bin``.
    """
    distance = _check_common(p.level, p.weights, p.distance_m, p.alpha)
    if p.bin not in BINS:
        raise InvalidInput(f"bin must be one of {', '.join(BINS)}", field="bin")
    if not 0 <= p.k <= MAX_K:
        raise InvalidInput(f"k must be between 0 and {MAX_K}", field="k")
    zone = deployment_zone(conn)
    bins = _bins(conn, district, f, p.bin, zone)
    version_id, found, polygons = _areas(conn, district, p.level, with_geometry)
    w = _weights(polygons, p.weights, distance)
    counts, synthetic = _cube(conn, district, version_id, f, p, zone, found, bins)
    result = ehsa.analyse(counts, w, k=p.k, alpha=p.alpha, fdr=p.fdr)
    flat_p = result.p.ravel()
    gi_bins = gistar.classes(result.z.ravel(), flat_p, fdr=p.fdr).reshape(result.z.shape)
    rows = [_emerging_row(a, i, counts, result, gi_bins) for i, a in enumerate(found)]
    return {"district": district, "level": p.level, "version": version_id, "start": f.start, "end": f.end,
            "kind": f.kind, "class_code": f.class_code, "status": f.status, "weights": p.weights,
            "distance_m": distance, "bin": p.bin, "k": p.k, "alpha": p.alpha, "fdr": p.fdr,
            "fdr_method": "Benjamini-Hochberg (esda.fdr) over every bin of the cube" if p.fdr else None,
            "neighbourhood": f"the area and its spatial neighbours, in the bin and the {p.k} before it",
            "time_zone": zone.key, "bins": [b.isoformat() for b in bins], "total_cases": int(counts.sum()),
            "synthetic": synthetic > 0, "islands": len(weights.islands(w)),
            "categories": {name: int((result.category == code).sum()) for code, name in ehsa.CATEGORIES.items()},
            "rows": rows}


def _cube(conn: Connection, district: str, version_id: int, f: CaseloadFilter, p: EmergingParams, zone: ZoneInfo,
          found: list[dict[str, Any]], bins: list[dt.date]) -> tuple[np.ndarray, int]:
    """(counts: areas x bins, synthetic cases counted) of the cases matching ``f`` inside the bins."""
    index = {a["code"]: i for i, a in enumerate(found)}
    position = {b: t for t, b in enumerate(bins)}
    counts, synthetic = np.zeros((len(found), len(bins))), 0
    for code, start, cases, synthetic_cases in store.binned_counts(
            conn, district=district, version=version_id, level=p.level, f=f, unit=p.bin, zone=zone.key):
        if code in index and start in position:
            counts[index[code], position[start]] += cases
            synthetic += synthetic_cases
    return counts, synthetic


def _emerging_row(area: dict[str, Any], i: int, counts: np.ndarray, r: ehsa.Emerging,
                  gi_bins: np.ndarray) -> dict[str, Any]:
    code = int(r.category[i])
    row = {"code": area["code"], "name": area["name"], "cases": int(counts[i].sum()), "category": code,
           "pattern": ehsa.CATEGORIES[code], "trend_z": round(float(r.trend_z[i]), 6),
           "trend_p": round(float(r.trend_p[i]), 6), "tau": round(float(r.tau[i]), 6),
           "hot_bins": int(r.hot[i].sum()), "cold_bins": int(r.cold[i].sum()),
           "counts": [int(c) for c in counts[i]], "z": [round(float(v), 4) for v in r.z[i]],
           "gi_bin": [int(b) for b in gi_bins[i]]}
    if "geometry" in area:
        row["geometry"] = area["geometry"]
    return row

"""``gcj02_200k``: GCJ-02 -> WGS84 for 200,000 points, our vectorised inverse vs prcoords (scalar, exact)."""

from __future__ import annotations

import time

import numpy as np
import prcoords

from bench.results import entry
from citygrid.spatial.crs import gcj02_to_wgs84

N = 200_000


def run(wanted: set[str]) -> list[dict]:
    rng = np.random.default_rng(2026)
    lon, lat = rng.uniform(116.2, 116.7, N), rng.uniform(39.7, 40.2, N)  # Beijing, GCJ-02
    t0 = time.perf_counter()
    ours = gcj02_to_wgs84(lon, lat)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = [prcoords.gcj_wgs_bored(prcoords.Coords(la, lo)) for lo, la in zip(lon, lat, strict=True)]
    anchor_s = time.perf_counter() - t0
    ref_lat = np.fromiter((c.lat for c in ref), float, N)
    ref_lon = np.fromiter((c.lon for c in ref), float, N)
    max_diff_m = float(max(np.abs(ours[0] - ref_lon).max() * 85_000, np.abs(ours[1] - ref_lat).max() * 111_000))
    return [entry("gcj02_200k", N, ours_s, "prcoords.gcj_wgs_bored (pure-Python loop)", anchor_s,
                  "same points, same run; max_diff_m is the largest disagreement in metres",
                  max_diff_m=round(max_diff_m, 4))]

"""Synthetic census for benchmarking (SYNTHETIC: seeded random points; not real components).

``make_census(path, n, boundary, seed)`` writes a GeoPackage of ``n`` points inside ``boundary`` (EPSG:4548),
with standard Chinese headers, classes drawn from the taxonomy, 16-digit ObjIDs and dates. Seed 2026.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely

CLASSES = ("0101", "0102", "0103", "0104", "0105", "0106", "0116", "0117", "0201", "0301", "0401", "0402")


def random_points_inside(boundary, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform random points inside ``boundary`` (rejection sampling in its bounding box)."""
    minx, miny, maxx, maxy = boundary.bounds
    xs, ys = [], []
    shapely.prepare(boundary)
    while sum(len(x) for x in xs) < n:
        x, y = rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)
        keep = shapely.contains_xy(boundary, x, y)
        xs.append(x[keep])
        ys.append(y[keep])
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def make_census(path: Path, n: int, boundary, district: str, srid: int, seed: int = 2026) -> Path:
    """Write ``n`` synthetic components inside ``boundary`` (deployment CRS) to a GeoPackage at ``path``."""
    rng = np.random.default_rng(seed)
    x, y = random_points_inside(boundary, n, rng)
    classes = np.array(CLASSES)[rng.integers(0, len(CLASSES), n)]
    serial = pd.Series(classes).groupby(classes).cumcount().to_numpy() + 1
    frame = pd.DataFrame({
        "标识码": np.char.add(np.char.add(district, classes), np.char.zfill(serial.astype(str), 6)),
        "小类代码": classes,
        "部件名称": "合成部件",
        "主管部门": "合成主管部门",
        "初始日期": "2024-06-01",
        "数据来源": "SYNTHETIC bench/census_data.py seed 2026",
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    pyogrio.write_dataframe(
        __import__("geopandas").GeoDataFrame(frame, geometry=shapely.points(x, y), crs=f"EPSG:{srid}"),
        path, driver="GPKG", layer="census",
    )
    return path

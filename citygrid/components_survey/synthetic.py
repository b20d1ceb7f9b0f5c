"""A seeded, SYNTHETIC component census for the demo districts (no public census exists for them).

How it is made (random draws from ``numpy.random.default_rng(seed)``), so the map and the caseload per
100 components have something plausible to show:
- **where**: along the district's roads (OpenStreetMap, Guancheng); where a district has no road data
  (Chaoyang), along its supervision-grid boundaries, which follow street and community lines, as a stand-in;
- **what**: each class at its own spacing along those lines — street lamps every 40 m on alternate sides,
  rain grates every 60 m at the kerb, manhole covers every 80 m near the centre line (water, sewage,
  rain, power, telecom), trees every 25 m, litter bins every 150 m — with a few metres of jitter;
- **who**: owning/managing/maintaining departments named by class, each name marked （合成）.
The points are written to a GeoPackage and imported through the census importer (validation, IDs, grid
assignment, reconciliation) with ``synthetic = true``. All geometry is in the deployment CRS (metres).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy.engine import Connection

from citygrid.components_survey.census import CensusOptions, CensusResult, import_file
from citygrid.spatial import store as spatial_store
from citygrid.spatial.boundaries import district_boundary
from citygrid.spatial.db import deployment_srid


@dataclass(frozen=True)
class Placement:
    """One class along the lines: every ``spacing_m``, ``offset_m`` to the side (alternating if ``alternate``)."""

    codes: tuple[str, ...]
    spacing_m: float
    offset_m: float
    alternate: bool
    owner: str


PLACEMENTS = (
    Placement(("0118",), 40.0, 9.0, True, "路灯管理所（合成）"),
    Placement(("0104",), 60.0, 7.0, False, "排水管理处（合成）"),
    Placement(("0101", "0102", "0103", "0105", "0107"), 80.0, 2.0, True, "市政设施管理处（合成）"),
    Placement(("0402",), 25.0, 11.0, True, "园林绿化所（合成）"),
    Placement(("0305",), 150.0, 8.0, False, "环境卫生服务中心（合成）"),
)
JITTER_M = 1.5
INSIDE_M = 15.0


def placement_lines(conn: Connection, district: str) -> list[shapely.LineString]:
    """Roads of the district (storage CRS), else its supervision-grid boundaries (current version), kept
    ``INSIDE_M`` inside the district boundary so that no offset point lands outside it."""
    inside = district_boundary(conn, district).buffer(-INSIDE_M)
    lines = [shapely.from_wkb(wkb) for wkb in spatial_store.road_lines_wkb(conn, district)]
    if lines:
        clipped = shapely.intersection(np.array(lines, dtype=object), inside)
        return [part for geom in clipped for part in shapely.get_parts(geom) if part.geom_type == "LineString"]
    boundaries = spatial_store.supervision_boundaries_wkb(conn, district)
    if boundaries is None:
        return []
    merged = shapely.intersection(shapely.from_wkb(boundaries), inside)
    return [part for part in shapely.get_parts(merged) if part.geom_type == "LineString"]


def census_points(lines: list[shapely.LineString], seed: int = 2026) -> gpd.GeoDataFrame:
    """The synthetic components along ``lines`` (coordinates in the lines' CRS, metres): columns class_code,
    obj_name, DeptName1–3, ObjState, DataSource, geometry; no ObjID (the importer issues them)."""
    rng = np.random.default_rng(seed)
    records: list[dict[str, Any]] = []
    geoms: list[shapely.Point] = []
    for placement in PLACEMENTS:
        for line in lines:
            length = line.length
            if length < placement.spacing_m:
                continue
            at = np.arange(placement.spacing_m / 2, length, placement.spacing_m)
            at = np.clip(at + rng.normal(0, JITTER_M, len(at)), 0, length)
            on = shapely.line_interpolate_point(line, at)
            ahead = shapely.line_interpolate_point(line, np.minimum(at + 1.0, length))
            dx = shapely.get_x(ahead) - shapely.get_x(on)
            dy = shapely.get_y(ahead) - shapely.get_y(on)
            norm = np.hypot(dx, dy)
            norm[norm == 0] = 1.0
            side = np.where(np.arange(len(at)) % 2 == 0, 1.0, -1.0) if placement.alternate else np.ones(len(at))
            offset = placement.offset_m * side + rng.normal(0, JITTER_M / 2, len(at))
            x = shapely.get_x(on) - dy / norm * offset
            y = shapely.get_y(on) + dx / norm * offset
            codes = rng.choice(placement.codes, len(at))
            geoms.extend(shapely.points(x, y))
            records.extend({"class_code": str(code), "DeptName1": placement.owner, "DeptName2": placement.owner,
                            "DeptName3": placement.owner, "ObjState": "完好", "DataSource": "synthetic demo census"}
                           for code in codes)
    return gpd.GeoDataFrame(records, geometry=geoms)


def generate(conn: Connection, district: str, seed: int = 2026) -> CensusResult:
    """Make and import the district's synthetic census inside the caller's transaction."""
    srid = deployment_srid(conn)
    frame = census_points(placement_lines(conn, district), seed).set_crs(srid)
    with tempfile.TemporaryDirectory(prefix="citygrid-synthetic-census-") as tmp:
        path = Path(tmp) / f"synthetic-census-{district}.gpkg"
        frame.to_file(path, layer="components", driver="GPKG", engine="pyogrio")
        return import_file(conn, path, CensusOptions(district=district, synthetic=True, max_bad_ratio=0.05))

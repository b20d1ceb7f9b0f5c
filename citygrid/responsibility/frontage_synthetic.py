"""Seeded, SYNTHETIC frontage units (门前三包) for the Guancheng demo: no public list of a district's frontage units
exists, so the demo draws a few hundred along its real OpenStreetMap roads.

How they are made (``numpy.random.default_rng(seed)``), so that the map, the grid card, geocoding and dispatch to
a frontage unit have something plausible to show:

- **where**: a point along the district's roads, chosen in proportion to road length; the frontage is a strip
  of pavement 8–30 m along the road and 3–6 m deep, 6–12 m to one side of the centre line (a carriageway's half
  width), kept inside the district and clear of the units drawn before it;
- **what**: mostly shops (70 %), then institutions, property companies, markets and others; names say
  示例 … （合成） and the contact is a placeholder; the credit codes are well-formed (their check character is
  right) under the made-up organisation part ``XY…``, so that no real company's code is used.

The units go through the frontage importer (``frontage_import.import_frontage``: the same checks, parties and
source record as a real list) with ``synthetic = true`` and the source ``sources.SYNTHETIC_SOURCE``. Geometry
is in the deployment CRS (metres).
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy.engine import Connection

from citygrid.loaders.vector import VectorFile
from citygrid.responsibility import store
from citygrid.responsibility.frontage import credit_check_character
from citygrid.responsibility.frontage_import import FrontageFile, import_frontage
from citygrid.spatial import crs
from citygrid.spatial import store as spatial_store
from citygrid.spatial.boundaries import district_boundary
from citygrid.spatial.db import deployment_srid
from citygrid.spatial.sources import SYNTHETIC_SOURCE

DEFAULT_UNITS = 240
SEED = 2026
KINDS = (("shop", 0.70, "示例商铺"), ("institution", 0.10, "示例单位"), ("property_company", 0.08, "示例物业"),
         ("market", 0.04, "示例市场"), ("other", 0.08, "示例门店"))
MAX_TRIES = 20


def _credit_code(district: str, serial: int) -> str:
    """A well-formed credit code of the district (enterprise, 91) under the made-up organisation part XY…."""
    first17 = f"91{district[:6].rjust(6, '0')}XY{serial:07d}"
    return first17 + credit_check_character(first17)


def _strip(line: shapely.LineString, at: float, rng: np.random.Generator) -> shapely.Polygon:
    """A pavement strip beside ``line`` (deployment CRS, metres) around distance ``at`` along it: 8–30 m long,
    3–6 m deep, 6–12 m from the centre line, on a random side."""
    length, depth, gap = rng.uniform(8, 30), rng.uniform(3, 6), rng.uniform(6, 12)
    a = line.interpolate(max(at - 1.0, 0.0))
    b = line.interpolate(min(at + 1.0, line.length))
    tangent = np.array([b.x - a.x, b.y - a.y])
    norm = float(np.hypot(*tangent)) or 1.0
    t = tangent / norm
    n = np.array([-t[1], t[0]]) * (1 if rng.random() < 0.5 else -1)
    p = line.interpolate(at)
    centre = np.array([p.x, p.y]) + n * (gap + depth / 2)
    corners = [centre + sx * t * length / 2 + sy * n * depth / 2 for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    return shapely.Polygon(corners)


def draw_units(lines: list[shapely.LineString], inside: Any, n: int, seed: int, district: str
               ) -> gpd.GeoDataFrame:
    """``n`` synthetic units along ``lines`` (deployment CRS), each frontage within ``inside`` and overlapping no
    other; fewer when the roads give no room. Attributes as the frontage importer reads them."""
    rng = np.random.default_rng(seed)
    lengths = np.array([line.length for line in lines])
    weights = lengths / lengths.sum()
    kinds, shares, labels = zip(*KINDS, strict=True)
    rows, shapes, tree_shapes = [], [], []
    for serial in range(1, n + 1):
        for _ in range(MAX_TRIES):
            line = lines[int(rng.choice(len(lines), p=weights))]
            strip = _strip(line, float(rng.uniform(0, line.length)), rng)
            if inside.contains(strip) and not any(strip.intersects(s) for s in tree_shapes):
                break
        else:
            continue
        tree_shapes.append(strip.buffer(2.0))
        k = int(rng.choice(len(kinds), p=np.array(shares) / sum(shares)))
        rows.append({"name": f"{labels[k]} {serial:03d}（合成）", "kind": kinds[k],
                     "credit_code": _credit_code(district, serial), "contact_person": "示例联系人（合成）",
                     "contact_phone": f"0000-{serial:07d}"})
        shapes.append(strip)
    return gpd.GeoDataFrame(rows, geometry=shapes)


def generate(conn: Connection, district: str, n: int = DEFAULT_UNITS, seed: int = SEED) -> dict[str, Any]:
    """Seed ``n`` SYNTHETIC frontage units along the district's roads unless it has frontage units already
    (then nothing changes). Returns the importer's summary, or ``{"skipped": reason}``."""
    if store.frontage_unit_count(conn, district):
        return {"skipped": "the district has frontage units"}
    lines = [g for wkb in spatial_store.road_lines_wkb(conn, district)
             for g in shapely.get_parts(shapely.from_wkb(wkb)) if g.length > 30]
    if not lines:
        return {"skipped": "the district has no roads to place units along"}
    inside = district_boundary(conn, district).buffer(-5.0)
    shapely.prepare(inside)
    frame = draw_units(lines, inside, n, seed, district)
    srid = deployment_srid(conn)
    vf = VectorFile(frame=frame, source_crs=crs.parse_crs(f"EPSG:{srid}"), crs_from="user")
    return import_frontage(conn, FrontageFile(vf), district=district, source=SYNTHETIC_SOURCE, synthetic=True)

"""Unit-grid codes: 6-digit district + 3-digit street + 3-digit community + 3-digit serial (15 digits).

This follows the one real example found (``320582110152102``, see data/taxonomy/README.md). Serials run
west→east in north→south bands inside a community. Grids that belong to a street but to no community (a street
whose communities have no location) carry community ``000`` and use the six digits after the street as their
serial (``000001``…): up to 999 they read as community 000, serial 001…999, and a large rural street can
still be numbered. The code registry keeps every code unique either way.

A grid that matches a grid of the previous version (intersection over union ≥ 0.98, same street and
community) keeps its code; a new grid takes the next serial never issued under its prefix, so codes of
retired grids are never reused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from citygrid.errors import Conflict
from citygrid.gridding.shapes import reading_order

MATCH_IOU = 0.98


@dataclass(frozen=True)
class PreviousGrid:
    code: str
    geom: BaseGeometry


def code_prefix(district: str, street_code: str | None, community_code: str | None) -> tuple[str, int]:
    """The prefix a grid's serial follows, and the serial's width.

    With a community: 12 digits (district, street = digits 7–9 of its code, community = digits 10–12) and a
    3-digit serial. Without: 9 digits (district, street) and a 6-digit serial.
    """
    street = street_code[6:9] if street_code and len(street_code) >= 9 else "000"
    if community_code and len(community_code) >= 12:
        return f"{district}{street}{community_code[9:12]}", 3
    return f"{district}{street}", 6


def assign_codes(
    district: str,
    polygons: list[BaseGeometry],
    street_codes: list[str | None],
    community_codes: list[str | None],
    previous: list[PreviousGrid],
    issued_max: dict[str, int],
    band_m: float,
) -> list[str]:
    """A 15-digit code for every polygon (deployment CRS).

    Parameters
    ----------
    previous : grids of the version this one replaces (their codes may be kept).
    issued_max : highest serial ever issued per 12-digit prefix (from the code registry).
    band_m : height of the north→south reading bands (about the side of a target-sized grid).
    """
    prefixes = [code_prefix(district, s, c) for s, c in zip(street_codes, community_codes, strict=True)]
    codes: list[str | None] = [None] * len(polygons)
    if previous:
        tree = shapely.STRtree([p.geom for p in previous])
        used: set[str] = set()
        for i, poly in enumerate(polygons):
            for j in tree.query(poly, predicate="intersects"):
                prev = previous[j]
                if prev.code in used or not prev.code.startswith(prefixes[i][0]):
                    continue
                inter = poly.intersection(prev.geom).area
                if inter / (poly.area + prev.geom.area - inter) >= MATCH_IOU:
                    codes[i] = prev.code
                    used.add(prev.code)
                    break
    points = shapely.point_on_surface(np.asarray(polygons, dtype=object))
    xs, ys = shapely.get_x(points), shapely.get_y(points)
    order = reading_order(xs, ys, band_m)
    next_serial = dict(issued_max)
    for c in codes:
        if c:
            prefix, _ = code_prefix_of(c)
            next_serial[prefix] = max(next_serial.get(prefix, 0), int(c[len(prefix):]))
    for i in order:
        if codes[i] is not None:
            continue
        prefix, width = prefixes[i]
        serial = next_serial.get(prefix, 0) + 1
        if serial >= 10**width:
            raise Conflict(f"grid-code prefix {prefix} would need serial {serial}, more than {width} digits; "
                           "raise --target-area-m2 or split the community")
        next_serial[prefix] = serial
        codes[i] = f"{prefix}{serial:0{width}d}"
    return [c for c in codes if c is not None]


def code_prefix_of(code: str) -> tuple[str, int]:
    """Inverse of ``code_prefix`` for a stored 15-digit code: community ``000`` means a street-level grid."""
    return (code[:9], 6) if code[9:12] == "000" else (code[:12], 3)


def band_height(target_area_m2: float) -> float:
    return math.sqrt(target_area_m2)

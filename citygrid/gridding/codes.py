"""Unit-grid codes, built from whatever the district's code is (``citygrid.codes`` holds the formats).

**cn-admin** (the default scheme): 6-digit district + 3-digit street + 3-digit community + 3-digit serial
(15 digits). This follows the one real example found (``320582110152102``, see data/taxonomy/README.md). Serials run
west→east in north→south bands inside a community. Grids that belong to a street but to no community (land
beyond the reach of any located community) take community digits from the reserved range 900–999, which no
NBS community code uses (those stop at 399): the n-th such grid of a street is community ``900 + (n−1)//999``,
serial ``(n−1) % 999 + 1``, so a large rural street can hold 99,900 grids and every code still decodes.
A district with no street data at all numbers its grids under street ``000`` the same way.

**alnum** (a city's own codes, up to 12 characters): district code + ``U`` + a 6-digit serial numbered
across the whole district (``NYCBKU000001``), up to 999,999 grids; the grid's street and community are
recorded beside the code (their codes have no fixed width to embed).

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

from citygrid.codes import SCHEMES, CodeScheme
from citygrid.errors import Conflict, InvalidInput
from citygrid.gridding.shapes import reading_order

MATCH_IOU = 0.98


@dataclass(frozen=True)
class PreviousGrid:
    code: str
    geom: BaseGeometry


STREET_LEVEL_FIRST = 900
PER_COMMUNITY = 999
MAX_STREET_LEVEL = (1000 - STREET_LEVEL_FIRST) * PER_COMMUNITY
CN_ADMIN = SCHEMES["cn-admin"]
ALNUM = SCHEMES["alnum"]
ALNUM_UNIT_TAIL = "U"
ALNUM_SERIAL_DIGITS = 6
MAX_ALNUM_SERIAL = 10**ALNUM_SERIAL_DIGITS - 1


def code_prefix(district: str, street_code: str | None, community_code: str | None,
                scheme: CodeScheme = CN_ADMIN) -> tuple[str, int]:
    """The prefix a grid's running number follows, and the largest number it may reach.

    cn-admin, with a community: 12 digits (district, street = digits 7–9 of its code, community = digits
    10–12), up to 999. Without: 9 digits (district, street), up to 99,900 (see the module docstring).
    alnum: the district code + ``U``, up to 999,999, whatever the street and community.
    """
    if not scheme.areas_prefixed:
        return f"{district}{ALNUM_UNIT_TAIL}", MAX_ALNUM_SERIAL
    street = street_code[6:9] if street_code and len(street_code) >= 9 else "000"
    if community_code and len(community_code) >= 12:
        return f"{district}{street}{community_code[9:12]}", PER_COMMUNITY
    return f"{district}{street}", MAX_STREET_LEVEL


def format_code(prefix: str, number: int) -> str:
    """Code of the ``number``-th grid (1-based) under ``prefix``: 15 digits under a 12- or 9-digit cn-admin
    prefix, or an alnum prefix (ending in ``U``) + 6 digits."""
    if prefix.endswith(ALNUM_UNIT_TAIL):
        return f"{prefix}{number:0{ALNUM_SERIAL_DIGITS}d}"
    if len(prefix) == 12:
        return f"{prefix}{number:03d}"
    block, serial = divmod(number - 1, PER_COMMUNITY)
    return f"{prefix}{STREET_LEVEL_FIRST + block:03d}{serial + 1:03d}"


def assign_codes(
    district: str,
    polygons: list[BaseGeometry],
    street_codes: list[str | None],
    community_codes: list[str | None],
    previous: list[PreviousGrid],
    issued_max: dict[str, int],
    band_m: float,
    scheme: CodeScheme = CN_ADMIN,
) -> list[str]:
    """A unit-grid code for every polygon (deployment CRS), in the deployment's code ``scheme``.

    Parameters
    ----------
    previous : grids of the version this one replaces (their codes may be kept).
    issued_max : highest serial ever issued per 12-digit prefix (from the code registry).
    band_m : height of the north→south reading bands (about the side of a target-sized grid).
    """
    prefixes = [code_prefix(district, s, c, scheme) for s, c in zip(street_codes, community_codes, strict=True)]
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
            prefix, number = parse_code(c)
            next_serial[prefix] = max(next_serial.get(prefix, 0), number)
    for i in order:
        if codes[i] is not None:
            continue
        prefix, limit = prefixes[i]
        serial = next_serial.get(prefix, 0) + 1
        if serial > limit:
            where = "split the community" if scheme.areas_prefixed else "split the district"
            raise Conflict(f"grid-code prefix {prefix} would need number {serial}, more than {limit}; "
                           f"raise --target-area-m2 or {where}")
        next_serial[prefix] = serial
        codes[i] = format_code(prefix, serial)
    return [c for c in codes if c is not None]


def parse_code(code: str) -> tuple[str, int]:
    """Inverse of ``format_code``: (prefix, running number) of a stored unit-grid code of either scheme
    (the two cannot be confused: a cn-admin code is 15 digits, an alnum one has a ``U`` before its serial)."""
    if ALNUM.matches("unit_grid", code) and not CN_ADMIN.matches("unit_grid", code):
        return code[:-ALNUM_SERIAL_DIGITS], int(code[-ALNUM_SERIAL_DIGITS:])
    if not CN_ADMIN.matches("unit_grid", code):
        raise InvalidInput(f"{code!r} is not a unit-grid code", field="code")
    community = int(code[9:12])
    if community >= STREET_LEVEL_FIRST:
        return code[:9], (community - STREET_LEVEL_FIRST) * PER_COMMUNITY + int(code[12:15])
    return code[:12], int(code[12:15])


def band_height(target_area_m2: float) -> float:
    return math.sqrt(target_area_m2)

"""Import a district's boundary (``citygrid districts import``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection

from citygrid import codes as code_schemes
from citygrid.districts.common import column, text, valid_polygonal
from citygrid.errors import InvalidInput
from citygrid.loaders.vector import VectorFile
from citygrid.spatial import crs, store, timezones
from citygrid.spatial.db import deployment_srid, deployment_zone

DISTRICT_CODE_COLUMNS = ("adcode", "district_code", "code", "dm", "行政区划代码", "区划代码")


def import_district(
    conn: Connection, vf: VectorFile, *, code: str, name: str, source: str = "", licence: str = "",
    actor: str = "system",
) -> dict[str, Any]:
    """Store (or replace) the boundary of district ``code`` from ``vf``.

    The file may hold one district, or several with a code column (``adcode``, ``code``…) from which the row
    whose code starts with ``code`` is taken; several rows with no code column are merged.

    Returns a summary: code, name, area_km2 (storage CRS), features_used, repaired, warnings.
    """
    scheme = code_schemes.deployment_scheme(conn)
    scheme.check("district", code, field="code")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("district name must be 1 to 100 characters", field="name")
    frame = vf.frame[~(vf.frame.geometry.isna() | vf.frame.geometry.is_empty)]
    if frame.empty:
        raise InvalidInput("the file holds no geometry", field="file")
    code_col = column(list(frame.columns), None, DISTRICT_CODE_COLUMNS, "code")
    if len(frame) > 1 and code_col:
        codes = frame[code_col].map(text)
        # A Chinese file may carry 12-digit forms of the county code (110105000000).
        chosen = frame[(codes.str[:6] == code) if scheme.areas_prefixed else (codes == code)]
        if chosen.empty:
            found = ", ".join(sorted(set(codes))[:20])
            raise InvalidInput(f"no feature with {code_col} = {code} in the file (found: {found})", field="code")
        frame = chosen
    geoms = np.asarray(frame.geometry.values, dtype=object)
    kinds = set(shapely.get_type_id(geoms))
    if not kinds <= {3, 6}:
        raise InvalidInput("a district boundary must be Polygon or MultiPolygon", field="geometry")
    srid = deployment_srid(conn)
    crs.check_extent_fits(srid, crs.lonlat_bounds(geoms, vf.source_crs))
    projected = crs.to_storage(geoms, vf.source_crs, srid)
    repaired = False
    parts = []
    for geom in projected:
        fixed, was_fixed = valid_polygonal(geom)
        repaired |= was_fixed
        parts.append(fixed)
    boundary = shapely.union_all(parts)
    if boundary.is_empty or boundary.area <= 0:
        raise InvalidInput("the boundary has no area", field="geometry")
    if boundary.geom_type == "Polygon":
        boundary = shapely.MultiPolygon([boundary])
    before = store.district_row(conn, code)
    store.upsert_district(
        conn, code=code, name=name, wkb=shapely.to_wkb(boundary), srid=srid, source=source, licence=licence,
        source_crs=vf.source_crs.label,
    )
    summary = {
        "code": code, "name": name, "area_km2": round(boundary.area / 1e6, 3), "features_used": len(frame),
        "repaired": repaired,
        "warnings": list(vf.warnings) + (["invalid geometry repaired (make_valid)"] if repaired else [])
                    + _zone_warning(conn, boundary, srid),
    }
    store.audit(
        conn, actor=actor, action="replace" if before else "create", object_kind="district", object_id=code,
        district=code,
        before={"name": before["name"], "area_km2": round(before["area_m2"] / 1e6, 3)} if before else None,
        after={"name": name, "area_km2": summary["area_km2"], "source": source},
    )
    return summary


def _zone_warning(conn: Connection, boundary: BaseGeometry, srid: int) -> list[str]:
    """A warning when the district (``boundary`` in EPSG:``srid``) lies in another IANA zone than the
    deployment records: ``db init`` derives the zone from the CRS's area of use before any district exists,
    which for a UTM zone is the zone at its central meridian and 42° (Europe/Rome for Vienna in EPSG:32633)."""
    here = crs.to_lonlat(np.array([boundary.point_on_surface()], dtype=object), srid)[0]
    found = timezones.zone_at(here.x, here.y)
    recorded = deployment_zone(conn).key
    if found is None or found == recorded:
        return []
    return [f"the district lies in the time zone {found}, but the deployment's is {recorded} (times without an "
            f"offset are read in it); if the city keeps {found}'s time, run: citygrid db init --timezone {found}"]

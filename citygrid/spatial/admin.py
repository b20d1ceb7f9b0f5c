"""Import a city's own administrative data: district boundary, street and community areas, linear features.

Each function takes a ``VectorFile`` (see ``citygrid.loaders.vector``) and a connection inside the caller's
transaction, validates everything first and writes only when the whole input is acceptable (a list of row
problems is raised as ``InvalidInput.details`` otherwise). Geometry is reprojected to the deployment's storage
CRS (``deployment.srid``); the district must belong in that CRS (``crs.check_extent_fits``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep
from sqlalchemy.engine import Connection

from citygrid import codes as code_schemes
from citygrid.errors import InvalidInput, NotFound
from citygrid.loaders.vector import VectorFile
from citygrid.spatial import crs, store, timezones
from citygrid.spatial.db import deployment_srid, deployment_zone

LEVEL_WORDS = {
    "street": {"street", "town", "街道", "乡镇", "地区", "4"},
    "community": {"community", "village", "社区", "村", "5"},
}
DISTRICT_CODE_COLUMNS = ("adcode", "district_code", "code", "dm", "行政区划代码", "区划代码")
LINE_CLASS_COLUMNS = {"road": ("highway", "fclass", "class", "type", "道路等级"),
                      "water": ("waterway", "fclass", "class", "type"),
                      "rail": ("railway", "fclass", "class", "type")}
NAME_COLUMNS = ("name", "name:zh", "名称", "name_zh")
MAX_AREA_OUTSIDE_M = 50.0  # a point or polygon may stray this far outside the district boundary


def _column(frame_columns: list[str], given: str | None, candidates: tuple[str, ...], what: str) -> str | None:
    if given:
        if given not in frame_columns:
            raise InvalidInput(f"no column {given!r} (columns: {', '.join(frame_columns)})", field=what)
        return given
    lower = {c.lower(): c for c in frame_columns}
    return next((lower[c] for c in candidates if c in lower), None)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _valid_polygonal(geom: BaseGeometry) -> tuple[BaseGeometry, bool]:
    """Return a valid (Multi)Polygon for ``geom`` and whether it had to be repaired."""
    if geom.is_valid:
        return geom, False
    fixed = shapely.make_valid(geom)
    parts = [g for g in shapely.get_parts(fixed) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts), True


def district_boundary(conn: Connection, code: str) -> BaseGeometry:
    """The district polygon in the storage CRS; ``NotFound`` for an unknown code."""
    wkb = store.district_wkb(conn, code)
    if wkb is None:
        raise NotFound(f"unknown district {code!r}; import it first with `citygrid districts import`")
    return shapely.from_wkb(wkb)


# ------------------------------------------------------------------------------------------ districts
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
    code_col = _column(list(frame.columns), None, DISTRICT_CODE_COLUMNS, "code")
    if len(frame) > 1 and code_col:
        codes = frame[code_col].map(_text)
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
        fixed, was_fixed = _valid_polygonal(geom)
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


# ------------------------------------------------------------------------------------------ areas
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


def _level_of(value: str) -> str | None:
    value = value.strip().lower()
    for level, words in LEVEL_WORDS.items():
        if value in words:
            return level
    return None


def import_areas(
    conn: Connection, vf: VectorFile, *, district: str, level: str, code_field: str | None = None,
    name_field: str | None = None, parent_field: str | None = None, level_field: str | None = None,
    source: str = "", licence: str = "", actor: str = "system",
) -> dict[str, Any]:
    """Store the streets (街道/乡镇) or communities (社区/村) of ``district`` from ``vf``.

    Rows may carry a point, a polygon or no geometry at all (kept without location, never placed at random).
    When the file has a level column (``level``), only rows of the requested level are taken. Codes follow
    the deployment's code scheme (``citygrid.codes``). A community's street comes from ``parent_field``
    (default ``parent_code``) or, in the cn-admin scheme, from its code (first 9 digits + ``000``), and must
    exist.

    Returns a summary: level, rows, points, polygons, without_location, skipped_other_levels.
    Raises ``InvalidInput`` with one detail per bad row (line numbers count the header as line 1).
    """
    if level not in LEVEL_WORDS:
        raise InvalidInput(f"level must be street or community, not {level!r}", field="level")
    boundary = district_boundary(conn, district)
    frame = vf.frame
    columns = list(frame.columns)
    code_col = _column(columns, code_field, ("code", "adcode", "dm", "代码", "区划代码"), "code_field")
    name_col = _column(columns, name_field, ("name", "mc", "名称"), "name_field")
    if code_col is None or name_col is None:
        raise InvalidInput(f"need code and name columns; found {', '.join(columns)}", field="code_field")
    parent_col = _column(columns, parent_field, ("parent_code", "parent"), "parent_field")
    level_col = _column(columns, level_field, ("level",), "level_field")
    ur_col = _column(columns, None, ("ur_code",), "ur_code")

    srid = deployment_srid(conn)
    geoms = np.asarray(frame.geometry.values, dtype=object)
    present = np.array([g is not None and not g.is_empty for g in geoms], dtype=bool)
    projected = np.full(len(geoms), None, dtype=object)
    if present.any():
        projected[present] = crs.to_storage(geoms[present], vf.source_crs, srid)
    near = prep(boundary.buffer(MAX_AREA_OUTSIDE_M))

    scheme = code_schemes.deployment_scheme(conn)
    known_streets = store.area_codes(conn, district, "street")
    problems: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    skipped = 0
    for i, record in enumerate(frame.drop(columns=frame.geometry.name).to_dict("records")):
        line = i + 2
        if level_col and _level_of(_text(record[level_col])) != level:
            skipped += 1
            continue
        code, name = _text(record[code_col]), _text(record[name_col])

        def bad(field: str, reason: str, code: str = code, line: int = line) -> None:
            problems.append({"line": line, "code": code, "field": field, "reason": reason})

        reason = scheme.problem(level, code)
        if reason is not None:
            bad(code_col, reason, code[:40])
            continue
        if scheme.areas_prefixed and not code.startswith(district):
            bad(code_col, f"code does not start with the district code {district}")
            continue
        if code in seen:
            bad(code_col, "duplicate code in the file")
            continue
        seen.add(code)
        if not name:
            bad(name_col, "empty name")
        parent = None
        if level == "community":
            parent = (_text(record[parent_col]) if parent_col else "") or scheme.street_of(code)
            if not parent:
                bad(parent_col or "parent_code", f"a community needs its street's code (a parent_code column) in "
                    f"the {scheme.name} code scheme")
            elif parent not in known_streets:
                bad(parent_col or code_col, f"street {code_schemes.show(parent)} is not loaded for district "
                    f"{district}")
        geom = projected[i]
        point_wkb = geom_wkb = None
        if geom is not None:
            if geom.geom_type == "Point":
                if not near.contains(geom):
                    bad("geometry", f"point lies {geom.distance(boundary):.0f} m outside the district boundary")
                point_wkb = shapely.to_wkb(geom)
            elif geom.geom_type in ("Polygon", "MultiPolygon"):
                geom, _ = _valid_polygonal(geom)
                outside = geom.difference(boundary.buffer(MAX_AREA_OUTSIDE_M)).area
                if outside > 0:
                    bad("geometry", f"{outside:.0f} m² of the polygon lies outside the district")
                geom_wkb = shapely.to_wkb(geom)
                point_wkb = shapely.to_wkb(geom.point_on_surface())
            else:
                bad("geometry", f"{geom.geom_type} is neither a point nor a polygon")
        rows.append({
            "district": district, "code": code, "level": level, "parent": parent, "name": name,
            "ur_code": _text(record[ur_col]) if ur_col else None, "point_wkb": point_wkb, "geom_wkb": geom_wkb,
            "source": source, "licence": licence,
        })
    if problems:
        raise InvalidInput(f"{len(problems)} bad row(s); nothing was imported", details=problems, field=None)
    if not rows:
        raise InvalidInput(f"no {level} rows in the file", field="level")
    store.upsert_areas(conn, rows, srid)
    summary = {
        "level": level, "rows": len(rows),
        "points": sum(r["point_wkb"] is not None and r["geom_wkb"] is None for r in rows),
        "polygons": sum(r["geom_wkb"] is not None for r in rows),
        "without_location": sum(r["point_wkb"] is None for r in rows),
        "skipped_other_levels": skipped,
    }
    store.audit(conn, actor=actor, action="import", object_kind=f"{level}_areas", object_id=district,
                district=district, after={**summary, "source": source})
    return summary


# ------------------------------------------------------------------------------------------ lines
def _line_parts(geom: BaseGeometry) -> list[BaseGeometry]:
    """The LineStrings inside ``geom`` (flattening multi-parts and collections; points are dropped)."""
    if geom.geom_type == "LineString":
        return [geom]
    if geom.geom_type in ("MultiLineString", "GeometryCollection"):
        return [p for part in shapely.get_parts(geom) for p in _line_parts(part)]
    return []


def import_lines(
    conn: Connection, vf: VectorFile, *, district: str, kind: str, class_field: str | None = None,
    name_field: str | None = None, id_field: str | None = None, source: str = "", licence: str = "",
    actor: str = "system",
) -> dict[str, Any]:
    """Store roads, water lines or railways of ``district`` from ``vf``, clipped to the district boundary.

    Lines of the same kind previously imported from the same ``source`` are replaced. Multi-part lines are
    split into LineStrings. Rows that are not lines, or are empty, are skipped and counted.

    Returns a summary: kind, features_read, lines_stored, km (storage CRS), skipped, classes.
    """
    if kind not in LINE_CLASS_COLUMNS:
        raise InvalidInput(f"kind must be road, water or rail, not {kind!r}", field="kind")
    boundary = district_boundary(conn, district)
    frame = vf.frame
    columns = list(frame.columns)
    class_col = _column(columns, class_field, LINE_CLASS_COLUMNS[kind], "class_field")
    name_col = _column(columns, name_field, NAME_COLUMNS, "name_field")
    id_col = _column(columns, id_field, ("osm_id", "id", "@id", "fid"), "id_field")
    srid = deployment_srid(conn)
    geoms = np.asarray(frame.geometry.values, dtype=object)
    is_line = np.array([g is not None and not g.is_empty and g.geom_type in ("LineString", "MultiLineString")
                        for g in geoms], dtype=bool)
    skipped = Counter(("empty" if g is None or g.is_empty else g.geom_type) for g in geoms[~is_line])
    if not is_line.any():
        raise InvalidInput("the file holds no LineString or MultiLineString", field="geometry")
    projected = crs.to_storage(geoms[is_line], vf.source_crs, srid)
    prepared = prep(boundary)
    records = frame[is_line].drop(columns=frame.geometry.name).to_dict("records")
    rows: list[dict[str, Any]] = []
    classes: Counter[str] = Counter()
    length = 0.0
    for record, geom in zip(records, projected, strict=True):
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        if not prepared.intersects(geom):
            skipped["outside district"] += 1
            continue
        clipped = geom if prepared.contains(geom) else geom.intersection(boundary)
        parts = [p for p in _line_parts(clipped) if p.length > 0.01]
        cls = _text(record[class_col]) if class_col else ""
        for part in parts:
            rows.append({
                "district": district, "kind": kind, "class": cls,
                "name": _text(record[name_col]) if name_col else "",
                "source_id": _text(record[id_col]) if id_col else "", "source": source, "licence": licence,
                "wkb": shapely.to_wkb(part),
            })
            classes[cls] += 1
            length += part.length
    replaced = store.delete_lines(conn, district, kind, source)
    store.insert_lines(conn, rows, srid)
    summary = {
        "kind": kind, "features_read": len(frame), "lines_stored": len(rows), "km": round(length / 1e3, 3),
        "replaced": replaced, "skipped": dict(skipped), "classes": dict(classes.most_common()),
    }
    store.audit(conn, actor=actor, action="import", object_kind=f"{kind}_lines", object_id=district,
                district=district,
                after={k: summary[k] for k in ("lines_stored", "km", "replaced")} | {"source": source})
    return summary

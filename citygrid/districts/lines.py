"""Import a district's roads, water lines or railways (``citygrid lines import``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep
from sqlalchemy.engine import Connection

from citygrid.districts.common import column, text
from citygrid.errors import InvalidInput
from citygrid.loaders.vector import VectorFile
from citygrid.spatial import crs, store
from citygrid.spatial.boundaries import district_boundary
from citygrid.spatial.db import deployment_srid

LINE_CLASS_COLUMNS = {"road": ("highway", "fclass", "class", "type", "道路等级"),
                      "water": ("waterway", "fclass", "class", "type"),
                      "rail": ("railway", "fclass", "class", "type")}
NAME_COLUMNS = ("name", "name:zh", "名称", "name_zh")


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
    class_col = column(columns, class_field, LINE_CLASS_COLUMNS[kind], "class_field")
    name_col = column(columns, name_field, NAME_COLUMNS, "name_field")
    id_col = column(columns, id_field, ("osm_id", "id", "@id", "fid"), "id_field")
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
        cls = text(record[class_col]) if class_col else ""
        for part in parts:
            rows.append({
                "district": district, "kind": kind, "class": cls,
                "name": text(record[name_col]) if name_col else "",
                "source_id": text(record[id_col]) if id_col else "", "source": source, "licence": licence,
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

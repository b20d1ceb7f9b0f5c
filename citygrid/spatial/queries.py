"""Reads of districts, their areas and lines, and where the data came from, for every front end.

The API, the pages and the CLI ask for a district's layers here; a district that was never imported is a
``NotFound`` naming it, the same for every route. Geometry comes back as GeoJSON in EPSG:4326; areas and
lengths are measured in the deployment CRS.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from sqlalchemy.engine import Connection

from citygrid.errors import NotFound
from citygrid.spatial import store
from citygrid.spatial.crs import to_lonlat
from citygrid.spatial.db import deployment_srid
from citygrid.spatial.gazetteer import Gazetteer
from citygrid.spatial.store import (
    data_sources,
    district_codes,
    district_extents,
    district_summaries,
)

# What front ends call: the functions defined here, and the store's reads that already have the shape a
# front end needs, under their domain names.
__all__ = ["area_points", "data_sources", "district_codes", "district_extents", "district_feature", "district_lines",
           "district_summaries", "places_named", "require_district"]


def require_district(conn: Connection, code: str) -> dict[str, Any]:
    """District ``code``'s name, provenance and area (m², deployment CRS); ``NotFound`` when there is none."""
    row = store.district_row(conn, code)
    if row is None:
        raise NotFound(f"no district {code}")
    return row


def district_feature(conn: Connection, code: str, simplify_m: float = 0.0) -> dict[str, Any]:
    """District ``code``'s boundary as a GeoJSON Feature in EPSG:4326, simplified by ``simplify_m`` metres
    (deployment CRS) first when above 0; ``NotFound`` when there is no such district."""
    feature = store.district_geojson(conn, code, simplify_m)
    if feature is None:
        raise NotFound(f"no district {code}")
    return feature


def area_points(conn: Connection, code: str, level: str | None = None) -> list[dict[str, Any]]:
    """The streets and/or communities (``level``) of district ``code`` with their point as lon/lat (EPSG:4326;
    None where an area has no location); ``NotFound`` when there is no such district."""
    require_district(conn, code)
    return store.areas(conn, code, level)


def district_lines(conn: Connection, code: str, kind: str | None, simplify_m: float = 0.0) -> dict[str, Any]:
    """Roads, water lines and/or railways (``kind``) of district ``code`` as a GeoJSON FeatureCollection in
    EPSG:4326, simplified by ``simplify_m`` metres (deployment CRS); ``NotFound`` when there is no such
    district."""
    require_district(conn, code)
    return store.lines_geojson(conn, code, kind, simplify_m)


def places_named(conn: Connection, text: str, district: str | None = None) -> list[dict[str, Any]]:
    """The street, community or road each district's gazetteer finds for an address (``spatial.gazetteer``).

    Parameters
    ----------
    text : the address as a person wrote it.
    district : the one district to look in; None for every district.

    Returns
    -------
    Per district with a located match: ``kind``, ``id`` (the place's code), ``label`` (its name), ``lon`` and
    ``lat`` (EPSG:4326), ``confidence``, ``ambiguous`` and ``district``.
    """
    srid = deployment_srid(conn)
    found = []
    for code in [district] if district else store.district_codes(conn):
        match = Gazetteer.for_district(conn, code).locate(text)
        if match is None or match.place.x is None:
            continue
        point = to_lonlat(np.array([shapely.Point(match.place.x, match.place.y)], dtype=object), srid)[0]
        found.append({"kind": match.place.kind, "id": match.place.code, "label": match.place.name,
                      "lon": point.x, "lat": point.y, "confidence": match.confidence,
                      "ambiguous": match.ambiguous, "district": code})
    return found

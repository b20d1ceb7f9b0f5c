"""The stored district boundary, read by every package that places, generates or checks inside a district.

It lives here, at the floor of the layers, so that cases, the census and gridding read a boundary without
depending on the importer that writes it (``citygrid.districts``).
"""

from __future__ import annotations

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection

from citygrid.errors import NotFound
from citygrid.spatial import store


def district_boundary(conn: Connection, code: str) -> BaseGeometry:
    """The (Multi)Polygon of district ``code`` in the storage CRS (``deployment.srid``).

    Raises ``NotFound`` for a district that was never imported.
    """
    wkb = store.district_wkb(conn, code)
    if wkb is None:
        raise NotFound(f"unknown district {code!r}; import it first with `citygrid districts import`")
    return shapely.from_wkb(wkb)

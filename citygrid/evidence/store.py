"""SQL of the evidence package: rows of ``case_photos``, the case they belong to, the events they are attached to.

Points come out in the deployment CRS (the case's) for distances, and as WGS84 lon/lat where a photo's EXIF gave
one; every value is bound.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_PHOTO_COLUMNS = """p.photo_id, p.case_id, p.district_code, p.event_seq, p.sha256, p.thumb_sha256, p.content_type,
    p.width, p.height, p.bytes, p.gps_lon, p.gps_lat, p.gps_distance_m, p.uploaded_by, p.uploaded_at"""


def lock_case(conn: Connection, case_id: int) -> dict[str, Any] | None:
    """The case's district, status and point (``x``, ``y`` in its storage CRS, EPSG ``srid``; ``lon``, ``lat``
    in WGS84), its row locked
    until the transaction ends (so events added meanwhile get their numbers one after another); None when
    there is no such case."""
    row = conn.execute(sa.text(
        """SELECT case_id, district_code, status, ST_X(geom) AS x, ST_Y(geom) AS y, ST_SRID(geom) AS srid,
                  ST_X(ST_Transform(geom, 4326)) AS lon, ST_Y(ST_Transform(geom, 4326)) AS lat
             FROM cases WHERE case_id = :id FOR UPDATE"""), {"id": case_id}).mappings().first()
    return dict(row) if row else None


def latest_event_seq(conn: Connection, district: str, case_id: int, action: str,
                     actor: str | None = None) -> int | None:
    """The number of the case's latest event of ``action`` (by ``actor`` when given), None when it has none."""
    return conn.execute(sa.text(
        """SELECT max(seq) FROM case_events
            WHERE district_code = :d AND case_id = :c AND action = :a
              AND (CAST(:actor AS text) IS NULL OR actor = :actor)"""),
        {"d": district, "c": case_id, "a": action, "actor": actor}).scalar()


def insert_photo(conn: Connection, district: str, case_id: int, event_seq: int | None,
                 photo: dict[str, Any]) -> dict[str, Any]:
    """Add one photo row (``photo``: sha256, thumb_sha256, content_type, width, height, bytes, gps_lon, gps_lat,
    gps_distance_m, uploaded_by); returns it as ``photos_of_case`` gives rows."""
    row = conn.execute(sa.text(
        f"""WITH p AS (
              INSERT INTO case_photos (district_code, case_id, event_seq, sha256, thumb_sha256, content_type, width,
                                       height, bytes, gps_lon, gps_lat, gps_distance_m, uploaded_by)
              VALUES (:d, :c, :seq, :sha256, :thumb_sha256, :content_type, :width, :height, :bytes, :gps_lon,
                      :gps_lat, :gps_distance_m, :uploaded_by)
              RETURNING *)
            SELECT {_PHOTO_COLUMNS} FROM p"""),
        {"d": district, "c": case_id, "seq": event_seq, **photo}).mappings().one()
    return dict(row)


def photos_of_case(conn: Connection, district: str, case_id: int) -> list[dict[str, Any]]:
    """The case's photos in the order they came."""
    return [dict(r) for r in conn.execute(sa.text(
        f"""SELECT {_PHOTO_COLUMNS} FROM case_photos p
             WHERE p.district_code = :d AND p.case_id = :c ORDER BY p.photo_id"""),
        {"d": district, "c": case_id}).mappings()]


def photo_of_case(conn: Connection, case_id: int, photo_id: int) -> dict[str, Any] | None:
    """Photo ``photo_id`` when it belongs to case ``case_id``, else None."""
    row = conn.execute(sa.text(
        f"""SELECT {_PHOTO_COLUMNS} FROM case_photos p
             WHERE p.photo_id = :p AND p.case_id = :c"""), {"p": photo_id, "c": case_id}).mappings().first()
    return dict(row) if row else None


def case_district(conn: Connection, case_id: int) -> str | None:
    """The district of case ``case_id``, None when there is no such case."""
    return conn.execute(sa.text("SELECT district_code FROM cases WHERE case_id = :c"), {"c": case_id}).scalar()


def district_files(conn: Connection, district: str) -> list[tuple[str, str, str]]:
    """(sha256, thumb_sha256, content_type) of every photo of the district, each once."""
    return [tuple(r) for r in conn.execute(sa.text(
        """SELECT DISTINCT sha256, thumb_sha256, content_type FROM case_photos WHERE district_code = :d
            ORDER BY sha256, thumb_sha256"""), {"d": district}).all()]

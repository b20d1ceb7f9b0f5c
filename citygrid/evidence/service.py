"""Photos of cases as every entry point uses them: attach checked photos to an event, add photos as an event of
their own, list a case's photos, read one photo's file.

Each function takes a connection inside the caller's transaction: the photo rows are part of the same
transaction as the report or the workflow step they document (a step that fails stores no row). The files are
written (``storage.PhotoStorage``) just before their rows; see that module for what a failed transaction leaves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import shapely
from pyproj import Geod
from sqlalchemy.engine import Connection

from citygrid.cases.workflow import CLOSED_STATES
from citygrid.errors import Conflict, InvalidInput, NotFound
from citygrid.evidence import store
from citygrid.evidence.photos import EXTENSIONS, MAX_PHOTOS, CheckedPhoto, distance_warning
from citygrid.evidence.storage import PhotoStorage
from citygrid.spatial import crs

_GEOD = Geod(ellps="WGS84")
ADD_PHOTOS = "add_photos"  # the event of photos sent on their own: no status change


def attach(conn: Connection, storage: PhotoStorage, case_id: int, event_seq: int | None,
           photos: Sequence[CheckedPhoto], uploaded_by: str) -> list[dict[str, Any]]:
    """Store ``photos`` (files, then rows) as evidence of case ``case_id``'s event ``event_seq``.

    Parameters
    ----------
    storage : where the files go (``Settings.photos_dir``).
    event_seq : the event they document (the report, a workflow step, an ``add_photos``).
    photos : checked by ``photos.check_photo``; at most ``MAX_PHOTOS``.
    uploaded_by : the account that sent them.

    Returns
    -------
    The new photos as ``case_photos`` gives them. Each photo's EXIF position is measured against the case's
    point in the deployment's projected CRS (the CRS the case is stored in), in metres.

    Raises ``NotFound`` for no such case, ``InvalidInput`` for more than ``MAX_PHOTOS``.
    """
    if len(photos) > MAX_PHOTOS:
        raise InvalidInput(f"at most {MAX_PHOTOS} photos per event; {len(photos)} sent", field="photo")
    case = store.lock_case(conn, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    added = []
    for photo in photos:
        storage.put(photo.data, photo.ext)
        storage.put(photo.thumb, "jpg")
        lon, lat = photo.gps if photo.gps else (None, None)
        added.append(store.insert_photo(conn, case["district_code"], case_id, event_seq, {
            "sha256": photo.sha256, "thumb_sha256": photo.thumb_sha256, "content_type": photo.content_type,
            "width": photo.width, "height": photo.height, "bytes": len(photo.data), "gps_lon": lon, "gps_lat": lat,
            "gps_distance_m": _distance_m(case, photo.gps), "uploaded_by": uploaded_by}))
    return [_shown(p) for p in added]


def attach_to_latest(conn: Connection, storage: PhotoStorage, case_id: int, action: str,
                     photos: Sequence[CheckedPhoto], uploaded_by: str,
                     actor: str | None = None) -> list[dict[str, Any]]:
    """``attach`` to the case's latest event of ``action`` (by ``actor`` when given): the event the caller's
    report or workflow step has just recorded in this transaction (the case row is locked by then, so no other
    event of that action can come between). Nothing happens without photos."""
    if not photos:
        return []
    district = store.case_district(conn, case_id)
    if district is None:
        raise NotFound(f"no case {case_id}")
    seq = store.latest_event_seq(conn, district, case_id, action, actor)
    return attach(conn, storage, case_id, seq, photos, uploaded_by)


def add_photos(conn: Connection, storage: PhotoStorage, case_id: int, photos: Sequence[CheckedPhoto], *,
               actor: str, role: str, note: str = "", account: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """Record an ``add_photos`` event on case ``case_id`` (its status unchanged) with ``photos`` attached.

    Returns (the new photos, the event's number). Raises ``InvalidInput`` for no photo or more than
    ``MAX_PHOTOS``, or a note over 2000 characters; ``NotFound`` for no such case; ``Conflict`` for a closed one
    (rejected, duplicate, closed, evaluated).
    """
    from citygrid.cases import store as case_store

    if not photos:
        raise InvalidInput("send 1 to 10 photo parts", field="photo")
    if len(note) > 2000:
        raise InvalidInput("note longer than 2000 characters", field="note")
    case = store.lock_case(conn, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    if case["status"] in CLOSED_STATES:  # evidence documents the handling; a closed case is reopened first
        raise Conflict(f"case {case_id} is {case['status']}: photos are added to an open case (reopen it first)")
    case_store.add_event(conn, case["district_code"], case_id, action=ADD_PHOTOS, from_status=case["status"],
                         to_status=case["status"], actor=actor, role=role,
                         note=note or f"{len(photos)} photo{'s' if len(photos) > 1 else ''}", account=account)
    seq = store.latest_event_seq(conn, case["district_code"], case_id, ADD_PHOTOS)
    return attach(conn, storage, case_id, seq, photos, actor), int(seq or 0)


def case_photos(conn: Connection, case_id: int) -> list[dict[str, Any]]:
    """The photos of case ``case_id`` in the order they came (empty for a case without any, or no case)."""
    district = store.case_district(conn, case_id)
    return [] if district is None else [_shown(p) for p in store.photos_of_case(conn, district, case_id)]


def photo_file(conn: Connection, storage: PhotoStorage, case_id: int, photo_id: int,
               thumb: bool = False) -> tuple[bytes, str, str]:
    """(bytes, Content-Type, extension) of photo ``photo_id`` of case ``case_id`` (its thumbnail: a JPEG).

    Raises ``NotFound`` when the photo is not one of this case's, or its file is missing from the storage.
    """
    row = store.photo_of_case(conn, case_id, photo_id)
    if row is None:
        raise NotFound(f"case {case_id} has no photo {photo_id}")
    sha, content_type = (row["thumb_sha256"], "image/jpeg") if thumb else (row["sha256"], row["content_type"])
    ext = EXTENSIONS[content_type]
    try:
        return storage.read(sha, ext), content_type, ext
    except FileNotFoundError:
        raise NotFound(f"the file of photo {photo_id} is missing from this server's photo directory") from None


def district_files(conn: Connection, district: str) -> list[str]:
    """The names (``<sha256>.<ext>``) of every photo file and thumbnail of the district's cases, each once."""
    names = set()
    for sha, thumb_sha, content_type in store.district_files(conn, district):
        names.update((f"{sha}.{EXTENSIONS[content_type]}", f"{thumb_sha}.jpg"))
    return sorted(names)


def _distance_m(case: dict[str, Any], gps: tuple[float, float] | None) -> float | None:
    """Metres from the case's point (``x``, ``y`` in its storage CRS, EPSG ``srid``) to ``gps`` (WGS84 lon/lat),
    measured in that projected CRS; a position too far from the deployment's zone to be projected there is
    measured on the WGS84 ellipsoid instead (it is far from the case either way). None without a position."""
    if gps is None or case["x"] is None or not case["srid"]:
        return None
    try:
        point = crs.storage_point(gps[0], gps[1], crs.parse_crs("EPSG:4326"), int(case["srid"]))
        distance = float(shapely.distance(point, shapely.Point(case["x"], case["y"])))
    except InvalidInput:
        distance = float("nan")
    if not math.isfinite(distance):
        distance = float(_GEOD.inv(case["lon"], case["lat"], gps[0], gps[1])[2])
    return round(distance, 1) if math.isfinite(distance) else None


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A photo row as the API shows it (without its storage names): GPS as lon/lat and the distance warning."""
    gps = {"lon": row["gps_lon"], "lat": row["gps_lat"]} if row["gps_lon"] is not None else None
    return {"photo_id": row["photo_id"], "case_id": row["case_id"], "event_seq": row["event_seq"],
            "content_type": row["content_type"], "width": row["width"], "height": row["height"],
            "bytes": row["bytes"], "gps": gps, "gps_distance_m": row["gps_distance_m"],
            "warning": distance_warning(row["gps_distance_m"]), "uploaded_by": row["uploaded_by"],
            "uploaded_at": row["uploaded_at"]}

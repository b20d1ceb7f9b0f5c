"""Case photos over HTTP: send photos to a case, list them, fetch one (or its thumbnail); and the multipart
reading the report and transition endpoints share (``json_part``, ``uploaded_photos``).

Every file part is checked by its content (``evidence.photos.check_photo``) before anything is stored; files are
served only to accounts that may read the case, under the verified format's Content-Type, never sniffed.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.engine import Connection

from citygrid.accounts.roles import CASE_READERS, WORKFLOW_ROLES
from citygrid.accounts.service import Principal
from citygrid.cases import queries
from citygrid.cases.scope import CaseScope, action_scope, read_scope
from citygrid.errors import Forbidden, InvalidInput, NotFound
from citygrid.evidence import service as evidence
from citygrid.evidence.photos import MAX_PHOTO_BYTES, MAX_PHOTOS, CheckedPhoto, check_photo
from citygrid.evidence.storage import PhotoStorage
from citygrid.webmap.auth import allow, require_principal
from citygrid.webmap.context import connection
from citygrid.webmap.inputs import MAX_JSON_DEPTH, check_json

bp = Blueprint("photos_v1", __name__, url_prefix="/api/v1/cases")
# The workflow roles in which an account may add photos to a case: the supervisor in their team's grids, the unit
# on its party's cases, the command centre (acceptor, dispatcher) and admins on any case.
POSTING_ROLES = ("supervisor", "unit", "acceptor", "dispatcher", "admin")
MAX_JSON_PART_BYTES = 1024 * 1024
# The body of a request carrying photos: ten photos at their limit, plus the report or step's JSON and the framing.
MAX_PHOTO_REQUEST_BYTES = MAX_PHOTOS * MAX_PHOTO_BYTES + 1024 * 1024


def storage() -> PhotoStorage:
    """The app's photo directory (``Settings.photos_dir``)."""
    return PhotoStorage(current_app.config["CITYGRID_SETTINGS"].photos_dir)


# ------------------------------------------------------------------------------------------ multipart reading
def is_multipart() -> bool:
    return request.mimetype == "multipart/form-data"


def json_part(name: str) -> dict[str, Any]:
    """The JSON object in the multipart part ``name`` (a text field, or a file part as a browser's ``Blob``),
    checked as a JSON body is (``inputs.check_json``: no control characters, not nested too deep)."""
    _only_parts({name, "photo"})
    text: Any = request.form.get(name)
    if text is None and name in request.files:
        raw = request.files[name].stream.read(MAX_JSON_PART_BYTES + 1)
        if len(raw) > MAX_JSON_PART_BYTES:
            raise InvalidInput(f"the {name} part is over {MAX_JSON_PART_BYTES:,} bytes", field=name)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"the {name} part is not UTF-8 text", field=name) from None
    if text is None:
        raise InvalidInput(f"send the {name} part: the JSON object, next to 0 to {MAX_PHOTOS} photo parts",
                           field=name)
    try:
        data = json.loads(text)
    except RecursionError:
        raise InvalidInput(f"the {name} part is nested more than {MAX_JSON_DEPTH} levels deep", field=name) from None
    except ValueError:
        raise InvalidInput(f"the {name} part is not valid JSON", field=name) from None
    # Depth first: whether the parser itself refuses a very deep array (RecursionError above) depends on the
    # interpreter's C stack limit, so a parsed one is measured here and refused as too deep, not as "not an object".
    try:
        check_json(data)
    except InvalidInput as refused:
        if isinstance(data, dict):
            raise
        raise InvalidInput(f"the {name} part: {refused.message}", field=name) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"the {name} part must be a JSON object", field=name)
    return data


def _only_parts(known: set[str]) -> None:
    """``InvalidInput`` for a file part named other than ``known`` (a photo sent under another name would
    otherwise be dropped without a word)."""
    unknown = sorted(set(request.files) - known)
    if unknown:
        raise InvalidInput(f"unexpected file part {unknown[0][:40]!r}; photos go in parts named 'photo'",
                           field=unknown[0][:40])


def uploaded_photos() -> list[CheckedPhoto]:
    """The request's ``photo`` parts, each checked by its content (none for a request without any).

    Raises ``InvalidInput`` for more than ``MAX_PHOTOS`` parts or a file that is not a sound JPEG, PNG or WebP
    image, ``TooLarge`` (413) for one over ``MAX_PHOTO_BYTES``; the field names the part (``photo[3]``)."""
    if not is_multipart():
        return []
    if "photo" in request.form:  # a part without a filename: Werkzeug reads it as text, never as a file
        raise InvalidInput("a photo part must be sent as a file (a part with a filename)", field="photo")
    files = request.files.getlist("photo")
    if len(files) > MAX_PHOTOS:
        raise InvalidInput(f"at most {MAX_PHOTOS} photos per request; {len(files)} sent", field="photo")
    if not files:
        return []
    # Decoding is the costly part (up to 50 Mpx a photo): it takes one of the process's heavy-request slots, so
    # a burst of uploads cannot hold every thread or the memory of all of them at once (503 + Retry-After).
    with current_app.extensions["citygrid_heavy"].slot():
        return [check_photo(part.stream.read(MAX_PHOTO_BYTES + 1), f"photo[{i}]") for i, part in enumerate(files)]


# ------------------------------------------------------------------------------------------ views
@bp.post("/<int:case_id>/photos")
@allow("supervisor", "unit", "acceptor", "dispatcher")
def add(case_id: int):
    """multipart/form-data with 1–10 ``photo`` parts and an optional ``note``: the photos are stored and attached
    to a new ``add_photos`` event (the status does not change). 201 ``{"photos": [...], "event_seq"}``."""
    if not is_multipart():
        raise InvalidInput("send the photos as multipart/form-data: 1 to 10 parts named 'photo'",
                           field="Content-Type")
    _only_parts({"photo"})
    note = request.form.get("note", "")
    who = require_principal()
    with connection() as conn:
        role = _posting_role(conn, who, case_id)
        photos = uploaded_photos()
        added, seq = evidence.add_photos(conn, storage(), case_id, photos, actor=who.username, role=role,
                                         note=note, account=who.username)
    return jsonify({"photos": [photo_json(p) for p in added], "event_seq": seq}), 201


@bp.get("/<int:case_id>/photos")
@allow(*CASE_READERS)
def list_photos(case_id: int):
    """The case's photos (read scope of the case, as ``GET /api/v1/cases/<id>``)."""
    with connection() as conn:
        _check_readable(conn, require_principal(), case_id)
        return jsonify({"photos": [photo_json(p) for p in evidence.case_photos(conn, case_id)]})


@bp.get("/<int:case_id>/photos/<int:photo_id>")
@allow(*CASE_READERS)
def photo(case_id: int, photo_id: int):
    """The photo's file, as stored (re-encoded, no metadata)."""
    return _file(case_id, photo_id, thumb=False)


@bp.get("/<int:case_id>/photos/<int:photo_id>/thumb")
@allow(*CASE_READERS)
def thumb(case_id: int, photo_id: int):
    """The photo's thumbnail (a JPEG, at most 320 pixels on its long side)."""
    return _file(case_id, photo_id, thumb=True)


def _file(case_id: int, photo_id: int, *, thumb: bool):
    with connection() as conn:
        _check_readable(conn, require_principal(), case_id)
        data, content_type, ext = evidence.photo_file(conn, storage(), case_id, photo_id, thumb=thumb)
    response = current_app.response_class(data, mimetype=content_type)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private"
    name = f"{photo_id}-thumb.jpg" if thumb else f"{photo_id}.{ext}"
    response.headers["Content-Disposition"] = f'inline; filename="{name}"'
    response.add_etag()
    return response.make_conditional(request)


# ------------------------------------------------------------------------------------------ helpers
def photo_json(photo: dict[str, Any]) -> dict[str, Any]:
    """A photo as the API gives it: with the URLs of its file and thumbnail."""
    url = f"/api/v1/cases/{photo['case_id']}/photos/{photo['photo_id']}"
    return {**photo, "url": url, "thumb_url": f"{url}/thumb"}


def with_photos(conn: Connection, view: dict[str, Any]) -> dict[str, Any]:
    """A case view (``cases.service.case_view``) with its ``photos`` and each event's ``photo_ids``."""
    photos = [photo_json(p) for p in evidence.case_photos(conn, view["case_id"])]
    view["photos"] = photos
    for event in view.get("events") or ():
        event["photo_ids"] = [p["photo_id"] for p in photos if p["event_seq"] == event.get("seq")]
    return view


def attach(conn: Connection, case_id: int, action: str, photos: list[CheckedPhoto], who: Principal) -> list[dict]:
    """Attach ``photos`` to the event of ``action`` that ``who`` has just recorded on case ``case_id`` in this
    transaction (a report, a duplicate report, a workflow step); the photos as the API gives them."""
    added = evidence.attach_to_latest(conn, storage(), case_id, action, photos, who.username, actor=who.username)
    return [photo_json(p) for p in added]


def _check_readable(conn: Connection, who: Principal, case_id: int) -> None:
    """``Forbidden`` outside the caller's read scope, ``NotFound`` for no such case."""
    scope = read_scope(who).required()
    if not queries.in_scope(conn, case_id, scope):
        if scope.unrestricted or not queries.in_scope(conn, case_id, CaseScope()):
            raise NotFound(f"no case {case_id}")
        raise Forbidden(scope.refusal(case_id))


def _posting_role(conn: Connection, who: Principal, case_id: int) -> str:
    """The workflow role in which ``who`` may add photos to case ``case_id``: the first of their roles in
    ``POSTING_ROLES`` whose action scope holds the case. ``Forbidden`` (saying why) when none does, ``NotFound``
    when there is no such case."""
    roles = [r for account_role in who.roles for r in WORKFLOW_ROLES.get(account_role, ()) if r in POSTING_ROLES]
    if not roles:
        raise Forbidden(f"{who.username} ({', '.join(who.roles)}) may not add photos to cases")
    refusal = ""
    for role in roles:
        scope = action_scope(who, role)
        if scope.readable and queries.in_scope(conn, case_id, scope):
            return role
        refusal = refusal or scope.refusal(case_id)
    if not queries.in_scope(conn, case_id, CaseScope()):
        raise NotFound(f"no case {case_id}")
    raise Forbidden(refusal)

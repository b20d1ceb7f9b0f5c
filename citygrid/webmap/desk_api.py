"""The desk's work queues (#21): ``GET /api/v1/desk`` (the signed-in account's queues with their counts) and
``GET /api/v1/desk/<queue>`` (one page of a queue with its counts).

Pages refresh by polling every few seconds with the answer's ``ETag`` (``If-None-Match`` → 304, no body), not
by server-sent events: polling works through every proxy and keeps no production worker thread open per page
(``desk.queries``). The tag is the caller's own (it covers who asked, their scope and filters), and answers
are ``Cache-Control: private, no-cache``, so no shared cache can serve one account's queue to another.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from citygrid.accounts.roles import ROLES
from citygrid.cases.queries import CaseFilter
from citygrid.desk import queries
from citygrid.desk.queues import require_queue
from citygrid.webmap.auth import allow, require_principal
from citygrid.webmap.context import case_rules, connection, storage_srid, zone
from citygrid.webmap.params import case_map_filter_args, int_arg, lonlat_pair_arg, optional_district_arg

bp = Blueprint("desk_v1", __name__, url_prefix="/api/v1/desk")
# Every role may ask (each sees its own queues, and a role with none gets an empty list or a 403 naming who
# works the queue asked for).
_ANY = tuple(r for r in ROLES if r != "admin")
_PRIVATE = {"Cache-Control": "private, no-cache", "Vary": "Authorization, Cookie"}


@bp.get("")
@allow(*_ANY)
def desk():
    """The signed-in account's queues (``queue``, ``label``, ``total``, ``overdue``), in ``district`` if given."""
    district = optional_district_arg()
    who = require_principal()
    with connection() as conn:
        listed = queries.desk_summary(conn, who, district)
    return jsonify({"queues": listed}), 200, _PRIVATE


@bp.get("/<name>")
@allow(*_ANY)
def queue_page(name: str):
    """One page of queue ``name``: the case map's filters, ``near=lon,lat`` (WGS84: nearest first, distance in
    metres measured in the deployment CRS), ``limit`` ≤ 200, ``offset``; ``counts`` of the whole queue, each exact
    below ``count_limit`` and equal to it when ``counts_at_least`` names it (there are at least that many). 404 for
    an unknown queue (naming them), 403 for a queue the account's roles do not work (naming who does)."""
    who = require_principal()
    wanted = require_queue(name[:100], who.roles, who.username)
    f = queries.DeskFilter(cases=CaseFilter(**case_map_filter_args()), near=lonlat_pair_arg("near"),
                           limit=int_arg("limit", queries.DeskFilter.limit, 1, queries.MAX_LIMIT),
                           offset=int_arg("offset", 0, 0, 10_000_000))
    scope = queries.scope_for(wanted, who)
    with connection() as conn:
        rules = case_rules()
        read = queries.read_queue(conn, wanted, scope, f, srid=storage_srid(), dispatch=rules.dispatch)
        tag = queries.change_tag(wanted, who, scope, f, read.marker)
        if request.if_none_match.contains_weak(tag):
            return Response(status=304, headers={"ETag": f'"{tag}"', **_PRIVATE})
        rows = queries.queue_page(conn, rules, wanted, read.rows, zone=zone())
    answer = jsonify({"queue": wanted.name, "label": wanted.label, "counts": read.counts,
                      "count_limit": queries.COUNT_CAP, "counts_at_least": read.at_least,
                      "cases": [_row(wanted.columns, r) for r in rows], "limit": f.limit, "offset": f.offset})
    answer.headers.update({"ETag": f'"{tag}"', **_PRIVATE})
    return answer


_BASE = ("case_id", "district_code", "status", "kind", "class_code", "class_name", "description", "reported_at",
         "unit_grid_code", "supervision_code", "community_code", "street_code", "component_obj_id", "lon", "lat",
         "row_version", "synthetic")


def _row(columns: tuple[str, ...], case: dict[str, Any]) -> dict[str, Any]:
    """One queue row: the case's identity, place and class, and the queue's own ``columns``."""
    attrs = case.get("attrs") or {}
    row = {k: case[k] for k in _BASE}
    if case.get("distance_m") is not None:
        row["distance_m"] = round(case["distance_m"], 1)
    for column in columns:
        if column == "classification":
            classification = attrs.get("classification") or {}
            row["classification"] = {"top": classification.get("top", []), "by": classification.get("by")}
        elif column == "needs_review":
            row["needs_review"] = bool((attrs.get("classification") or {}).get("needs_review"))
        elif column in ("level", "dispatched_to"):
            row[column] = attrs.get(column, "community" if column == "level" else None)
        elif column == "seconds_left":
            left = case.get("seconds_left")
            row["seconds_left"] = None if left is None else int(left)
        else:
            row[column] = case.get(column)
    if "photo_count" in case:
        row["photo_count"] = case["photo_count"]
        first = case.get("first_photo_id")
        row["thumb_url"] = None if first is None else f"/api/v1/cases/{case['case_id']}/photos/{first}/thumb"
    return row

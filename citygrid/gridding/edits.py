"""Edits of a draft grid version (#23): split, merge, reshape, move-vertex, reassign, set-team; the edit log;
undo.

An edit runs in four steps, each a small function, all in the caller's transaction (nothing is written unless
every step passes, and a rejected edit changes nothing):

1. **check the request** (``edit_requests.parse``): its shape, codes of the deployment's scheme, GeoJSON in
   EPSG:4326 with finite coordinates and at most 10,000 vertices; then the draft is locked (``SELECT … FOR
   UPDATE``) and its revision compared with the one the editor saw (stale: ``Conflict`` with the edits made
   since); the geometry is moved into the deployment CRS and must lie in the district;
2. **load the neighbourhood**: the grids named, and the grids around them, by the spatial index (never the
   whole district);
3. **compute and validate** (``gridding.topology``): every result a valid single polygon above the minimum
   area, the same ground covered with no gap or overlap (GEOS coverage validation with the untouched ring),
   nothing outside the district; every supervision grid touched still one contiguous, non-empty piece;
4. **store**: the replaced unit grids, new codes (issued from the deployment's code scheme and registered in
   ``grid_codes``: never reused, even if the draft is dropped or the edit undone), the supervision grids' new
   outlines and the workloads of those whose unit grids changed (``partition.group_loads``), the edit log row
   (``before``/``after`` rows with WKB, for an exact undo), the revision raised by one. The codes an edit
   removes are marked retired in ``grid_codes`` only when the draft is published (``service.publish``): until
   then the published version still uses them, and an undo or a dropped draft has nothing to take back.

Code rules: the largest part of a split keeps the grid's code, the other parts get new codes in the split
grid's street and community (and its supervision grid); a merge keeps the code (and supervision grid) of the
largest grid merged, and the others are retired.

Any ``topology.TopologyError`` becomes ``errors.Rejected`` (HTTP 422, CLI exit 8) with ``extra={"reason",
"geometry"}`` (GeoJSON, EPSG:4326).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection

from citygrid import codes as code_schemes
from citygrid.errors import Conflict, InvalidInput, NotFound, Rejected
from citygrid.gridding import drafts, store, topology
from citygrid.gridding.codes import code_prefix, format_code
from citygrid.gridding.edit_requests import EditRequest, parse
from citygrid.gridding.partition import group_loads
from citygrid.spatial import crs
from citygrid.spatial.db import deployment_srid

# How far (metres) from a grid vertex a move-vertex's ``from`` may be (it is given in lon/lat).
VERTEX_SNAP_M = 0.5
# The neighbourhood loaded around what an edit touches reaches this far (metres) beyond it.
NEIGHBOURHOOD_M = 1.0
# How far (metres) around the neighbourhood the district edge is clipped for the checks (kept local).
EDGE_MARGIN_M = 100.0
# The edit log is read in pages of at most this many edits (``log``); 100 unless asked otherwise.
LOG_PAGE_MAX = 500
LOG_PAGE = 100
# A stale edit's 409 names at most this many of the edits made since (the newest), and counts them all.
EDITS_SINCE_MAX = 20


@dataclass
class Change:
    """What an edit does, before it is stored.

    Attributes
    ----------
    before : the stored unit-grid rows it replaces (with ``wkb``, deployment CRS), by code.
    after : code -> the new Polygon (deployment CRS), None for a retired grid; new grids under placeholder
        codes (``new:1`` …) until their codes are issued.
    rows : code -> the attributes of each new or changed grid (street, community, supervision, attrs).
    source_of : placeholder code -> the code of the grid it was cut from (its street and community).
    supervision : supervision-grid code -> team code, for a ``set-team``.
    around : when loaded with the grids, every grid of the draft within ``NEIGHBOURHOOD_M`` of them (at least;
        code -> its stored row with ``geom``, deployment CRS): a superset of the ring of an edit whose results lie
        on the ground of its grids (a split, a merge, a reshape), which ``_ring`` then picks from instead of
        asking the database again.
    ring : once checked (``_checked``), the untouched grids meeting the change (code -> stored row with ``geom``).
    """

    before: dict[str, dict[str, Any]]
    after: dict[str, BaseGeometry | None]
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_of: dict[str, str] = field(default_factory=dict)
    supervision: dict[str, str] = field(default_factory=dict)
    around: dict[str, dict[str, Any]] | None = None
    ring: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class Place:
    """Where an edit happens: the district, its storage CRS, its edge, the draft's minimum grid area, the
    deployment's code scheme, what the draft measures workloads with (``drafts.workload_basis``; None for a
    draft made before it was recorded) and whether its supervision grids are all contiguous
    (``drafts.supervision_contiguous``)."""

    district: str
    version: int
    srid: int
    edge: BaseGeometry
    min_area_m2: float
    scheme: code_schemes.CodeScheme
    workload: dict[str, Any] | None = None
    supervision_contiguous: bool = False


# ------------------------------------------------------------------------------------------ entry points
def apply(conn: Connection, district: str, version: int, op: Any, expected_revision: int | None,
          author: str, scheme: code_schemes.CodeScheme | None = None) -> dict[str, Any]:
    """Apply one edit to draft ``version`` of ``district`` (see the module docstring).

    Parameters
    ----------
    op : ``{"op": "split", "code", "line"}``, ``{"op": "merge", "codes"}``, ``{"op": "reshape", "code",
        "geometry"}``, ``{"op": "move-vertex", "from", "to"}``, ``{"op": "reassign", "codes",
        "supervision_code"}`` or ``{"op": "set-team", "supervision_code", "team_code"}``; geometry and positions
        in EPSG:4326.
    expected_revision : the draft's revision the editor saw; None takes the current one (the CLI's default).
    author : who edits (the log's author).
    scheme : the deployment's code scheme when the caller holds it (the app reads it once:
        ``webmap.context.code_scheme``); read here otherwise.

    Returns
    -------
    ``{"district", "version", "revision", "edit": {"seq", "op", "author", "at", "added", "removed", "changed",
    "supervision"}, "features"}``: ``features`` the stored added and changed unit grids (FeatureCollection,
    EPSG:4326).

    Raises
    ------
    InvalidInput (400), NotFound (404: no such draft, grid, supervision grid or team), Conflict (409: not a
    draft, or a stale ``expected_revision``), Rejected (422: the edit would break the coverage).
    """
    scheme = code_schemes.deployment_scheme(conn) if scheme is None else scheme
    request = parse(op, scheme)
    draft = _lock_draft(conn, district, version, expected_revision, store.lock_version_for_edit)
    place = _place(district, version, draft, scheme)
    change = _COMPUTE[request.op](conn, place, request)
    members = _members_after(conn, place, change)
    _validate_supervision(conn, place, members, change)
    return _store(conn, place, draft["revision"] + 1, request, change, members, author)


def undo(conn: Connection, district: str, version: int, expected_revision: int | None,
         author: str) -> dict[str, Any]:
    """Revert the newest edit of draft ``version`` not yet undone, exactly (geometry, codes, supervision grid,
    team); repeated, it walks back one edit at a time. Codes the undone edit issued stay registered (retired),
    never reused. The revision still rises by one, and the undo is logged (``op`` ``undo``).

    Returns the answer of ``apply``; ``Conflict`` when there is nothing left to undo, the revision is stale, or
    the newest edit left was made before the draft was grouped again (``service.partition``).
    """
    draft = _lock_draft(conn, district, version, expected_revision)
    edit = store.last_undoable_edit(conn, district, version)
    if edit is None:
        raise Conflict(f"draft {version} of {district} has no edit to undo")
    grouped_at = (draft["params"].get("partition") or {}).get("revision")
    if grouped_at is not None and edit["seq"] <= grouped_at:
        # Its rows name the supervision grids of a grouping since replaced: put back, they would scatter unit
        # grids over the new supervision grids that happen to have those codes.
        raise Conflict(f"draft {version} of {district} was grouped again (citygrid grids partition) after edit "
                       f"{edit['seq']}: the edits before that grouping cannot be undone")
    srid = deployment_srid(conn)
    before, after = edit["before"], edit["after"]
    store.replace_unit_rows(conn, district, version, [r["code"] for r in after["unit"]],
                            [_from_record(r) for r in before["unit"]], srid)
    store.update_supervision_rows(conn, district, version, [_from_record(r) for r in before["supervision"]], srid)
    codes = after.get("codes", {})
    # An edit logged before retirements moved to publishing retired its codes at once: put back what it found
    # (today's edits retire nothing, so an undo leaves the registry's retirements alone).
    marks = before.get("codes", {}).get("retirements")
    restored = {} if marks is None else {code: marks.get(code) for code in codes.get("retired", [])}
    store.set_code_retirements(conn, district, {**restored, **{code: version for code in codes.get("issued", [])}})
    seq = draft["revision"] + 1
    summary = _summary_of([r["code"] for r in after["unit"]], [r["code"] for r in before["unit"]],
                          [r["code"] for r in before["supervision"]])
    at = store.insert_edit(conn, district, version, seq, op="undo", params={"op": "undo", "seq": edit["seq"]},
                           before=after, after=before, summary={**summary, "undoes": edit["seq"]}, author=author)
    store.mark_undone(conn, district, version, edit["seq"], seq)
    store.set_revision(conn, district, version, seq)
    return _answer(conn, district, version, seq, "undo", author, at, {**summary, "undoes": edit["seq"]})


def log(conn: Connection, district: str, version: int, after: int = 0, limit: int | None = LOG_PAGE
        ) -> dict[str, Any]:
    """One page of the edit log of a version, oldest first: the edits after revision ``after`` (``seq`` >
    ``after``), at most ``limit`` of them (None: all; the CLI's), each with its summary, its request
    (``params``) and, when undone, when and by which revision; ``NotFound`` without the version.

    Returns
    -------
    ``{"district", "version", "status", "revision", "edits", "after", "limit", "total", "next_after"}``:
    ``total`` the log's length, ``next_after`` the ``after`` of the next page (None on the last). A draft's
    seqs are 1…revision (every edit and undo takes the next), so the newest ``n`` are ``after=revision - n``.
    """
    row = store.version_row(conn, district, version)
    if row is None:
        raise NotFound(f"district {district} has no grid version {version}")
    page = store.edit_log(conn, district, version, after, None if limit is None else limit + 1)
    more = limit is not None and len(page) > limit
    page = page[:limit]
    total = row["revision"]  # the seqs are 1…revision
    entries = [{**_summary(e), "params": e["params"],
                "undone_at": _iso(e["undone_at"]), "undone_by": e["undone_by"]} for e in page]
    return {"district": district, "version": version, "status": row["status"], "revision": row["revision"],
            "edits": entries, "after": after, "limit": limit, "total": total,
            "next_after": page[-1]["seq"] if more else None}


# ------------------------------------------------------------------------------------------ step 1: the draft
def _lock_draft(conn: Connection, district: str, version: int, expected_revision: int | None,
                lock: Any = store.lock_version) -> dict[str, Any]:
    """The draft's row (read by ``lock``: ``store.lock_version`` or ``store.lock_version_for_edit``), locked until
    the transaction ends; ``Conflict`` when it is no draft or its revision is not ``expected_revision`` (with
    ``extra`` ``revision``, ``edits_since``: the summaries of the newest ``EDITS_SINCE_MAX`` edits made after
    the revision the editor saw, oldest first, and ``edits_since_count``: how many there are in all)."""
    row = lock(conn, district, version)
    if row is None:
        raise NotFound(f"district {district} has no grid version {version}")
    if row["status"] != "draft":
        raise Conflict(f"version {version} of {district} is {row['status']}: only a draft is edited (make one "
                       f"with citygrid grids draft --district {district} --from {version})")
    if expected_revision is not None and expected_revision != row["revision"]:
        seen = min(expected_revision, row["revision"])
        since = [_summary(e) for e in store.edit_log(conn, district, version, seen, EDITS_SINCE_MAX, newest=True)]
        count = row["revision"] - seen if since else 0  # the seqs after ``seen``: seen+1…revision
        raise Conflict(f"draft {version} is at revision {row['revision']}, not {expected_revision}: reload it and "
                       "edit again", extra={"revision": row["revision"], "edits_since": since,
                                            "edits_since_count": count})
    return row


def _place(district: str, version: int, draft: dict[str, Any], scheme: code_schemes.CodeScheme) -> Place:
    """Where the edit happens, from the locked draft's row (``store.lock_version_for_edit``: the storage CRS and
    the district's boundary come with it, saving two round trips per edit)."""
    if draft["edge_wkb"] is None:
        raise NotFound(f"unknown district {district!r}; import it first with `citygrid districts import`")
    return Place(district=district, version=version, srid=int(draft["srid"]), edge=_edge(draft["edge_wkb"]),
                 min_area_m2=drafts.min_area_m2(draft["params"]), scheme=scheme,
                 workload=(draft["params"].get("draft") or {}).get("workload"),
                 supervision_contiguous=drafts.supervision_contiguous(draft["params"]))


@functools.lru_cache(maxsize=8)
def _edge(wkb: bytes) -> BaseGeometry:
    """A district boundary (deployment CRS) from its WKB, parsed once per process for the same bytes (an
    immutable geometry; not prepared, so threads may share it)."""
    return shapely.from_wkb(wkb)


def _to_storage(geom: BaseGeometry, place: Place, name: str) -> BaseGeometry:
    """``geom`` (EPSG:4326) in the deployment CRS; ``InvalidInput`` when it cannot be projected there,
    ``Rejected`` (``outside``) when it does not reach the district."""
    moved = _reprojected(geom, _transformers(place.srid)[0])
    if moved.is_empty or not np.isfinite(shapely.get_coordinates(moved)).all():
        raise InvalidInput(f"{name} is too far from this deployment's area to be placed", field=name)
    if not moved.is_valid:
        raise _rejected(topology.TopologyError("invalid", f"{name} is not valid: {shapely.is_valid_reason(moved)}",
                                               moved), place.srid)
    if not shapely.intersects(moved, place.edge):
        raise _rejected(topology.TopologyError("outside", f"{name} lies outside district {place.district}", moved),
                        place.srid)
    return moved


# ------------------------------------------------------------------------------------------ step 2: load
def _grids(conn: Connection, place: Place, codes: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The stored rows of the unit grids ``codes`` of the draft (with ``geom``); ``NotFound`` for any missing."""
    rows = {r["code"]: _with_geom(r) for r in store.unit_rows(conn, place.district, place.version, codes)}
    missing = [c for c in codes if c not in rows]
    if missing:
        raise NotFound(f"draft {place.version} of {place.district} has no unit grid {missing[0]}")
    return rows


def _grids_around(conn: Connection, place: Place, codes: tuple[str, ...]
                  ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The stored rows of the unit grids ``codes`` (as ``_grids``) and of every grid within ``NEIGHBOURHOOD_M``
    of them (code -> row with ``geom``, deployment CRS), in one round trip."""
    rows = {r["code"]: _with_geom(r) for r in store.unit_rows_around(conn, place.district, place.version, codes,
                                                                     NEIGHBOURHOOD_M)}
    missing = [c for c in codes if c not in rows]
    if missing:
        raise NotFound(f"draft {place.version} of {place.district} has no unit grid {missing[0]}")
    return {c: rows[c] for c in sorted(codes)}, rows


def _near(conn: Connection, place: Place, geom: BaseGeometry, distance: float = NEIGHBOURHOOD_M
          ) -> dict[str, dict[str, Any]]:
    """The draft's unit grids within ``distance`` metres of ``geom`` (deployment CRS), by the spatial index."""
    return {r["code"]: _with_geom(r) for r in store.unit_rows_near(conn, place.district, place.version,
                                                                   shapely.to_wkb(geom), place.srid, distance)}


def _ring(conn: Connection, place: Place, change: Change) -> dict[str, dict[str, Any]]:
    """The untouched grids around an edit (code -> stored row with ``geom``): every grid of the draft meeting a
    changed grid, before or after, that the edit does not change itself."""
    shapes = [r["geom"] for r in change.before.values()] + [g for g in change.after.values() if g is not None]
    union = shapely.union_all(np.asarray(shapes, dtype=object))
    if change.around is not None and shapely.covered_by(union, shapely.buffer(  # the candidates reach far enough
            shapely.union_all(np.asarray([r["geom"] for r in change.before.values()], dtype=object)),
            NEIGHBOURHOOD_M / 2, quad_segs=1)):
        return {c: r for c, r in change.around.items()
                if c not in change.after and c not in change.before and shapely.dwithin(r["geom"], union, 0.0)}
    near = _near(conn, place, union, 0.0)
    return {c: r for c, r in near.items() if c not in change.after and c not in change.before}


def _local_edge(place: Place, shapes: list[BaseGeometry]) -> BaseGeometry:
    """The district edge clipped to a box around ``shapes`` (a reshape's ``shape ∩ edge`` stays local)."""
    minx, miny, maxx, maxy = shapely.total_bounds(np.asarray(shapes, dtype=object))
    m = EDGE_MARGIN_M
    return shapely.clip_by_rect(place.edge, minx - m, miny - m, maxx + m, maxy + m)


# ------------------------------------------------------------------------------------------ step 3: compute
def _split(conn: Connection, place: Place, request: EditRequest) -> Change:
    """Cut one grid by a line: the largest part keeps its code, the others get new ones."""
    grids, around = _grids_around(conn, place, request.codes)
    code = request.codes[0]
    line = _to_storage(request.geometry, place, "line")
    parts = _topology(place, topology.split, grids[code]["geom"], line)
    after: dict[str, BaseGeometry | None] = {code: parts[0]}
    change = Change(before=grids, after=after, rows={code: grids[code]}, around=around)
    for i, part in enumerate(parts[1:], start=1):
        after[f"new:{i}"] = part
        change.rows[f"new:{i}"] = grids[code]
        change.source_of[f"new:{i}"] = code
    return _checked(conn, place, change)


def _merge(conn: Connection, place: Place, request: EditRequest) -> Change:
    """Merge adjacent grids into the largest one (its code and supervision grid); the others are retired."""
    grids, around = _grids_around(conn, place, request.codes)
    merged = _topology(place, topology.merge, [grids[c]["geom"] for c in request.codes])
    keeper = min(request.codes, key=lambda c: (-grids[c]["geom"].area, c))
    after: dict[str, BaseGeometry | None] = {c: None for c in request.codes}
    after[keeper] = merged
    return _checked(conn, place, Change(before=grids, after=after, rows={keeper: grids[keeper]}, around=around))


def _reshape(conn: Connection, place: Place, request: EditRequest) -> Change:
    """Give one grid a new boundary; its neighbours give or take the difference."""
    code = request.codes[0]
    shape = _to_storage(request.geometry, place, "geometry")
    rows = store.unit_rows_near_grid(  # the grid, its neighbourhood (``hood``) and the grids around that
        conn, place.district, place.version, code, shapely.to_wkb(shape), place.srid, NEIGHBOURHOOD_M)
    in_hood = {r["code"] for r in rows if r.pop("hood")}
    around = {r["code"]: _with_geom(r) for r in rows}
    hood = {c: r for c, r in around.items() if c in in_hood}
    if code not in hood:
        raise NotFound(f"draft {place.version} of {place.district} has no unit grid {code}")
    target = hood[code]
    grids = {c: r["geom"] for c, r in hood.items()}
    edge = _local_edge(place, [target["geom"], shape])
    result = _topology(place, topology.reshape, code, shape, grids, edge)
    # ``around``: every grid within NEIGHBOURHOOD_M of the hood, so of the grids the reshape changes
    return _checked(conn, place, _geometry_change(hood, result, around))


def _move_vertex(conn: Connection, place: Place, request: EditRequest) -> Change:
    """Move one shared boundary vertex in every grid that has it."""
    old, new = (_to_storage(shapely.Point(p), place, name) for p, name in zip(request.points, ("from", "to"),
                                                                            strict=True))
    hood = _near(conn, place, old, VERTEX_SNAP_M + NEIGHBOURHOOD_M)
    result = _topology(place, topology.move_vertex, {c: r["geom"] for c, r in hood.items()}, (old.x, old.y),
                       (new.x, new.y), snap_m=VERTEX_SNAP_M)
    return _checked(conn, place, _geometry_change(hood, result))


def _reassign(conn: Connection, place: Place, request: EditRequest) -> Change:
    """Move unit grids to another supervision grid of the draft."""
    grids = _grids(conn, place, request.codes)
    target = request.supervision_code
    if not store.supervision_rows(conn, place.district, place.version, [target]):
        raise NotFound(f"draft {place.version} of {place.district} has no supervision grid {target}")
    already = [c for c, r in grids.items() if r["supervision_code"] == target]
    if already:
        raise InvalidInput(f"unit grid {already[0]} is already in supervision grid {target}", field="codes")
    rows = {c: {**r, "supervision_code": target} for c, r in grids.items()}
    return Change(before=grids, after={c: r["geom"] for c, r in grids.items()}, rows=rows)


def _set_team(conn: Connection, place: Place, request: EditRequest) -> Change:
    """Move a supervision grid to another team of the draft."""
    code, team = request.supervision_code, request.team_code
    found = store.supervision_rows(conn, place.district, place.version, [code])
    if not found:
        raise NotFound(f"draft {place.version} of {place.district} has no supervision grid {code}")
    if not store.team_exists(conn, place.district, place.version, team):
        raise NotFound(f"draft {place.version} of {place.district} has no team {team}")
    if found[0]["team_code"] == team:
        raise InvalidInput(f"supervision grid {code} is already in team {team}", field="team_code")
    return Change(before={}, after={}, supervision={code: team})


_COMPUTE = {"split": _split, "merge": _merge, "reshape": _reshape, "move-vertex": _move_vertex,
            "reassign": _reassign, "set-team": _set_team}


def _geometry_change(hood: dict[str, dict[str, Any]], result: dict[str, BaseGeometry | None],
                     around: dict[str, dict[str, Any]] | None = None) -> Change:
    """A change of the grids ``result`` names (from the neighbourhood ``hood``), attributes unchanged;
    ``around`` as ``Change.around`` when the caller read it."""
    before = {c: hood[c] for c in result}
    return Change(before=before, after=dict(result), rows={c: hood[c] for c, g in result.items() if g is not None},
                  around=around)


def _checked(conn: Connection, place: Place, change: Change) -> Change:
    """``change`` with its new vertices matched to its neighbours' (``_vertices_matched``), once
    ``topology.check`` passes it with its ring of untouched neighbours (the check clips the district edge to the
    grids it looks at)."""
    before = {c: r["geom"] for c, r in change.before.items()}
    change.ring = _ring(conn, place, change)
    ring = {c: r["geom"] for c, r in change.ring.items()}
    change.after = _vertices_matched(change.after, ring)
    _topology(place, topology.check, before, change.after, ring=ring, edge=place.edge,
              min_area_m2=place.min_area_m2)
    return change


def _vertices_matched(after: dict[str, BaseGeometry | None], ring: dict[str, BaseGeometry],
                      tol: float = topology.NODE_M) -> dict[str, BaseGeometry | None]:
    """``after`` (deployment CRS) with every vertex that lies within the same ``tol``-metre cell as a vertex of the
    ring (or of another result) moved onto that one vertex. Overlay arithmetic computes a junction where a
    reshaped edge crosses two neighbours' shared edge once per neighbour, a few nanometres apart; left so, the
    grids no longer share identical vertices (GEOS coverage validation requires them), and the stored coverage
    would drift. Then ``topology.noded`` inserts a neighbour's vertex that lies on a result's edge into it. A
    result that this would make invalid is kept as it was."""
    codes = [c for c, g in after.items() if g is not None]
    if not codes:
        return after
    geoms = np.asarray([*ring.values(), *(after[c] for c in codes)], dtype=object)
    coords = shapely.get_coordinates(geoms)
    cells = np.floor(coords / tol).astype(np.int64)
    _, first, inverse = np.unique(cells, axis=0, return_index=True, return_inverse=True)
    moved = coords[first][inverse.ravel()]  # the ring's vertex where it has one: it comes first
    ends = np.cumsum(shapely.get_num_coordinates(geoms))
    for k in range(len(ring), len(geoms)):
        start = ends[k - 1] if k else 0
        matched = shapely.remove_repeated_points(shapely.set_coordinates(geoms[k], moved[start:ends[k]].copy()))
        if matched.geom_type == "Polygon" and matched.is_valid:
            geoms[k] = matched
    # and a neighbour's vertex lying on a result's edge inserted there (a T-junction made a shared vertex)
    noded = topology.noded(np.concatenate([geoms[len(ring):], geoms[:len(ring)]]), first=len(codes))
    return {**after, **dict(zip(codes, noded[:len(codes)], strict=True))}


def _topology(place: Place, func: Any, *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)`` with a ``TopologyError`` turned into ``Rejected``."""
    try:
        return func(*args, **kwargs)
    except topology.TopologyError as exc:
        raise _rejected(exc, place.srid) from None
    except shapely.errors.GEOSException as exc:  # GEOS gave up on the geometry: refused, not a server error
        raise Rejected(f"the edit's geometry cannot be computed: {exc}", extra={"reason": "invalid",
                                                                                "geometry": None}) from None


def _rejected(exc: topology.TopologyError, srid: int) -> Rejected:
    """The ``Rejected`` error of a topology error: its reason and geometry (GeoJSON, EPSG:4326)."""
    return Rejected(exc.message, extra={"reason": exc.reason, "geometry": _lonlat_geojson(exc.geometry, srid)})


def _lonlat_geojson(geom: BaseGeometry | None, srid: int) -> dict[str, Any] | None:
    """``geom`` (deployment CRS) as a GeoJSON geometry in EPSG:4326, or None."""
    if geom is None or geom.is_empty:
        return None
    return shapely.geometry.mapping(crs.to_lonlat(np.array([geom], dtype=object), srid)[0])


def _validate_supervision(conn: Connection, place: Place, after: dict[str, dict[str, BaseGeometry]],
                          change: Change) -> None:
    """Every supervision grid an edit touches (``after``: see ``_members_after``) keeps at least one unit grid,
    all of them one contiguous piece; ``Rejected`` (``empty`` / ``not_contiguous``, with the supervision grid's
    old or remaining outline) otherwise. In a draft whose supervision grids are all contiguous
    (``Place.supervision_contiguous``) a grid the change leaves joined around it is not walked whole
    (``_joined``)."""
    for code, members in after.items():
        if not members:
            old = store.supervision_rows(conn, place.district, place.version, [code])
            raise Rejected(f"supervision grid {code} would be left without unit grids",
                           extra={"reason": "empty", "geometry": _lonlat_geojson(
                               shapely.from_wkb(old[0]["wkb"]) if old else None, place.srid)})
        if place.supervision_contiguous and _joined(
                code, [g for c, g in members.items() if c not in change.after], change):
            continue
        if not topology.contiguous(members.values()):
            raise Rejected(f"supervision grid {code} would fall apart into separate pieces",
                           extra={"reason": "not_contiguous", "geometry": _lonlat_geojson(
                               shapely.union_all(np.asarray(list(members.values()), dtype=object)), place.srid)})


def _joined(code: str, unchanged: list[BaseGeometry], change: Change) -> bool:
    """Whether ``change`` leaves supervision grid ``code`` as joined as it was (``topology.joined_around``),
    judged among ``unchanged``: its unit grids the change leaves alone, all of them or at least every one
    meeting the change (the change's ring); before: its grids the change replaces, moves out or reshapes; after:
    the grids the change leaves in it."""
    before = [r["geom"] for r in change.before.values() if r["supervision_code"] == code]
    after = [g for c, g in change.after.items() if g is not None and change.rows[c]["supervision_code"] == code]
    return topology.joined_around(unchanged, before, after)


def _joined_in_ring(code: str, change: Change) -> bool:
    """``_joined`` among the change's ring (every untouched grid meeting the change) for a change all within
    supervision grid ``code``; False without a ring (the caller then reads the whole supervision grid)."""
    return change.ring is not None and _joined(
        code, [r["geom"] for r in change.ring.values() if r["supervision_code"] == code], change)


def _members_after(conn: Connection, place: Place, change: Change) -> dict[str, dict[str, BaseGeometry]]:
    """Supervision-grid code -> its unit grids after the change (code -> Polygon), for every supervision grid
    the change touches (any unit grid in or out of it, or any of its unit grids reshaped)."""
    touched = {r["supervision_code"] for r in change.before.values()} | {
        r["supervision_code"] for r in change.rows.values()}
    touched.discard(None)
    if len(touched) == 1 and all(r["supervision_code"] in touched for r in change.before.values()) and (
            _joined_in_ring(next(iter(touched)), change)):
        # An edit inside one supervision grid leaves its ground as it was (``topology.check``: the same ground
        # before and after), so its outline too; and it leaves the grid as joined as it was around the change
        # (a split may cut a contact between two grids into pieces each shorter than an adjacency): nothing to
        # read.
        return {}
    members: dict[str, dict[str, BaseGeometry]] = {code: {} for code in touched}
    for row in store.unit_rows_of_supervision(conn, place.district, place.version, sorted(touched)):
        if row["code"] not in change.after:
            members[row["supervision_code"]][row["code"]] = shapely.from_wkb(row["wkb"])
    for code, geom in change.after.items():
        if geom is not None and change.rows[code]["supervision_code"] in members:  # not in an ungrouped draft
            members[change.rows[code]["supervision_code"]][code] = geom
    return members


# ------------------------------------------------------------------------------------------ step 4: store
def _store(conn: Connection, place: Place, seq: int, request: EditRequest, change: Change,
           members: dict[str, dict[str, BaseGeometry]], author: str) -> dict[str, Any]:
    """Write ``change`` (``members``: the unit grids of each supervision grid it touches, after it) and log it
    as revision ``seq`` (see the module docstring)."""
    district, version = place.district, place.version
    change = _with_codes(conn, place, change)
    issued = sorted(change.source_of)
    retired = sorted(c for c, g in change.after.items() if g is None)  # marked retired when published
    before_units = list(change.before.values())
    after_units = [_new_row(code, geom, change.rows[code]) for code, geom in sorted(change.after.items())
                   if geom is not None]
    loaded = _touched_supervision(change)
    sup_before, sup_after = _supervision_change(conn, place, change, members, loaded)
    store.replace_unit_rows(conn, district, version, [r["code"] for r in before_units], after_units, place.srid)
    loads = _workloads(conn, place, loaded)  # of the unit grids now stored
    sup_after = [{**r, "workload": loads.get(r["code"], r["workload"])} for r in sup_after]
    summary = _summary_of([r["code"] for r in before_units], [r["code"] for r in after_units],
                          [r["code"] for r in sup_after if r["code"] in members or r["code"] in change.supervision])
    at = store.log_edit(
        conn, district, version, seq, op=request.op, params=request.record(),
        before={"unit": [_record(r) for r in before_units], "supervision": [_record(r) for r in sup_before]},
        after={"unit": [_record(r) for r in after_units], "supervision": [_record(r) for r in sup_after],
               "codes": {"issued": issued, "retired": retired}},
        summary=summary, author=author, supervision=sup_after, issued=issued, srid=place.srid)
    kept = [geom for _, geom in sorted(change.after.items()) if geom is not None]  # as after_units is made
    stored = list(zip(after_units, kept, strict=True))
    return {"district": district, "version": version, "revision": seq,
            "edit": {"seq": seq, "op": request.op, "author": author, "at": _iso(at), **summary},
            "features": _features(stored, version, place.srid)}


def _with_codes(conn: Connection, place: Place, change: Change) -> Change:
    """``change`` with its placeholder codes replaced by new codes of the deployment's scheme (the next serials
    never issued under the source grid's street and community)."""
    if not change.source_of:
        return change
    scheme = place.scheme
    store.lock_code_registry(conn, place.district)
    issued: dict[str, int] = {}
    names: dict[str, str] = {}
    for placeholder in sorted(change.source_of):
        source = change.rows[placeholder]
        prefix, limit = code_prefix(place.district, source["street_code"], source["community_code"], scheme)
        serial = issued.get(prefix, store.issued_serial(conn, place.district, prefix)) + 1
        if serial > limit:
            raise Conflict(f"unit-grid code prefix {prefix} has no number left (it would need {serial}, more than "
                           f"{limit})")
        issued[prefix] = serial
        names[placeholder] = format_code(prefix, serial)
    return Change(before=change.before, after={names.get(c, c): g for c, g in change.after.items()},
                  rows={names.get(c, c): r for c, r in change.rows.items()},
                  source_of={names[c]: s for c, s in change.source_of.items()}, supervision=change.supervision)


def _new_row(code: str, geom: BaseGeometry, source: dict[str, Any]) -> dict[str, Any]:
    """The unit-grid row to store for ``code`` with ``geom`` (deployment CRS) and ``source``'s attributes."""
    return {"code": code, "street_code": source["street_code"], "community_code": source["community_code"],
            "supervision_code": source["supervision_code"], "area_m2": float(geom.area),
            "attrs": source.get("attrs") or {}, "wkb": shapely.to_wkb(geom)}


def _touched_supervision(change: Change) -> list[str]:
    """The supervision grids whose unit grids a change replaces, moves in or moves out (their workloads change;
    a ``set-team`` touches none)."""
    touched = {r["supervision_code"] for r in change.before.values()} | {
        r["supervision_code"] for r in change.rows.values()}
    return sorted(touched - {None})


def _workloads(conn: Connection, place: Place, codes: list[str]) -> dict[str, float]:
    """The workload of the supervision grids ``codes`` from their unit grids as stored now (the partition's
    measure, ``partition.group_loads``, with the draft's weights and district means: ``drafts.workload_basis``;
    a draft made before they were recorded is measured with the default weights and today's means)."""
    if not codes:
        return {}
    basis = drafts.measured_with(conn, place.district, place.version, place.workload)
    terms, members = store.workload_terms_of_supervision(conn, place.district, place.version, codes)
    return {code: round(load, 6) for code, load in group_loads(terms, members, basis["means"],
                                                               basis["weights"]).items()}


def _supervision_change(conn: Connection, place: Place, change: Change,
                        members: dict[str, dict[str, BaseGeometry]], loaded: list[str] | None = None
                        ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The stored rows of the supervision grids a change touches, and those rows after it: a new team, or the
    union of their unit grids after the change (``members``) as their outline (deployment CRS); the ones in
    ``loaded`` (their workload is measured again) as they are, for the caller to set the workload."""
    codes = sorted(set(members) | set(change.supervision) | set(loaded or ()))
    if not codes:
        return [], []
    before = store.supervision_rows(conn, place.district, place.version, codes)
    after = []
    for row in before:
        new = {**row, "team_code": change.supervision.get(row["code"], row["team_code"])}
        if row["code"] in members:
            new["wkb"] = shapely.to_wkb(shapely.union_all(np.asarray(list(members[row["code"]].values()),
                                                                     dtype=object)))
        after.append(new)
    return before, after


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the edit log keeps it: its geometry as WKB hex, the rest as it is (without ``geom``)."""
    return {**{k: v for k, v in row.items() if k not in ("wkb", "geom")}, "wkb": bytes(row["wkb"]).hex()}


def _from_record(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "wkb": bytes.fromhex(record["wkb"])}


def _with_geom(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "geom": shapely.from_wkb(row["wkb"])}


# ------------------------------------------------------------------------------------------ answers
def _summary_of(before: list[str], after: list[str], supervision: list[str]) -> dict[str, list[str]]:
    """Which unit grids an edit added, removed and changed (by code), and the supervision grids it changed."""
    was, now = set(before), set(after)
    return {"added": sorted(now - was), "removed": sorted(was - now), "changed": sorted(was & now),
            "supervision": sorted(supervision)}


def _summary(entry: dict[str, Any]) -> dict[str, Any]:
    """An edit log row as the API shows it (JSON-ready)."""
    return {"seq": entry["seq"], "op": entry["op"], "author": entry["author"], "at": _iso(entry["at"]),
            **entry["summary"]}


def _answer(conn: Connection, district: str, version: int, seq: int, op: str, author: str, at: Any,
            summary: dict[str, Any]) -> dict[str, Any]:
    return {"district": district, "version": version, "revision": seq,
            "edit": {"seq": seq, "op": op, "author": author, "at": _iso(at), **summary},
            "features": store.unit_grid_features(conn, district, version, summary["added"] + summary["changed"])}


@functools.lru_cache(maxsize=8)
def _transformers(srid: int) -> tuple[Transformer, Transformer]:
    """The (cached) transformers EPSG:4326 -> EPSG:``srid`` and back (``crs.transformer`` keys its cache by
    both CRSs' WKT, which it writes out on every call: a millisecond of each edit's few)."""
    lonlat, storage = CRS.from_epsg(4326), CRS.from_epsg(srid)
    return crs.transformer(lonlat, storage), crs.transformer(storage, lonlat)


def _reprojected(geom: BaseGeometry, transformer: Transformer) -> BaseGeometry:
    """``geom`` through ``transformer`` (x, y order: ``crs.transformer``'s are always_xy)."""
    return shapely.transform(geom, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def _features(stored: list[tuple[dict[str, Any], BaseGeometry]], version: int, srid: int) -> dict[str, Any]:
    """The unit grids an edit stored (row, Polygon in the deployment CRS: exactly what was written) as the
    FeatureCollection ``store.unit_grid_features`` reads back (EPSG:4326, 7 decimals, by code), made here from
    the geometry in hand with one transform instead of a statement that reads and reprojects them again."""
    stored = sorted(stored, key=lambda rg: rg[0]["code"])
    lonlat = [_reprojected(g, _transformers(srid)[1]) for _, g in stored]
    features = []
    for (row, _), geom in zip(stored, lonlat, strict=True):
        rounded = shapely.transform(geom, lambda xy: np.round(xy, 7))
        features.append({"type": "Feature", "id": row["code"], "properties": {
            "code": row["code"], "version": version, "street_code": row["street_code"],
            "community_code": row["community_code"], "supervision_code": row["supervision_code"],
            "area_m2": round(float(row["area_m2"]), 1)}, "geometry": shapely.geometry.mapping(rounded)})
    return {"type": "FeatureCollection", "features": features}


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.datetime) else value

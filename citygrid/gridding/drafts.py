"""Drafts of a district's grids (#23): a copy of a published version that planners edit (``gridding.edits``)
and then publish (``gridding.service.publish``).

A draft copies its base version's unit grids, supervision grids and teams under a new version number
(``source = 'edited'``, ``parent_version`` = the base) and starts at revision 0; every edit and undo raises the
revision by one. Several drafts of one district may exist at once (up to ``Settings.max_open_drafts``, 5 by
default: each copies every unit grid); each is edited on its own, and a draft no longer wanted is dropped
(``drop``).

Examples
--------
>>> DRAFT_READERS
('planner', 'admin')
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from citygrid.config import DEFAULT_MAX_OPEN_DRAFTS
from citygrid.errors import Conflict, NotFound
from citygrid.gridding import partition as part
from citygrid.gridding import store
from citygrid.gridding.generate import GridParams
from citygrid.spatial import store as spatial_store

# The account roles that make, edit, undo and read drafts (published versions are read by everyone).
DRAFT_READERS: tuple[str, ...] = ("planner", "admin")


def create(conn: Connection, district: str, from_version: int | None = None, author: str = "system",
           note: str = "", max_open: int = DEFAULT_MAX_OPEN_DRAFTS) -> dict[str, Any]:
    """A new draft of ``district`` copied from version ``from_version`` (default: the current published one).

    Parameters
    ----------
    district : district code.
    from_version : the version to copy (any status); None for the district's published version.
    author : who asked (recorded on the version and in the audit log).
    max_open : how many drafts the district may have open at once (``Settings.max_open_drafts``).

    Returns
    -------
    ``{"district", "version", "base_version", "status": "draft", "revision": 0}``.

    Raises
    ------
    NotFound : no such district or version, or (without ``from_version``) no published version to copy.
    Conflict : the base version has no unit grids, or the district has ``max_open`` drafts open already (the
        message and ``extra["open_drafts"]`` name them: publish or drop one first).
    """
    base = _base_version(conn, district, from_version)
    store.lock_district_versions(conn, district)
    _check_room(conn, district, max_open)
    version_id = store.next_version_id(conn, district)
    generation = base["params"].get("generation") or {}
    params = {"draft": {"base_version": base["version_id"],
                        "min_area_m2": float(generation.get("min_area_m2", GridParams().min_area_m2)),
                        "workload": workload_basis(conn, district, base),
                        "supervision_contiguous": supervision_contiguous(base["params"])}}
    store.create_version(conn, district=district, version_id=version_id, source="edited", author=author,
                         params=params, note=note, parent_version=base["version_id"])
    store.copy_version_grids(conn, district, base["version_id"], version_id)
    store.analyze_grids(conn)  # the draft's rows known to the planner from its first edit on
    spatial_store.audit(conn, actor=author, action="draft", object_kind="grid_version",
                        object_id=f"{district}/{version_id}", district=district,
                        after={"base_version": base["version_id"]})
    return {"district": district, "version": version_id, "base_version": base["version_id"], "status": "draft",
            "revision": 0}


def _check_room(conn: Connection, district: str, max_open: int) -> None:
    """``Conflict`` naming the open drafts when ``district`` has ``max_open`` of them (or more) already."""
    found = store.open_drafts(conn, district)
    if len(found) < max_open:
        return
    named = ", ".join(f"{d['version_id']} ({d['author']}, revision {d['revision']})" for d in found[:20])
    raise Conflict(f"district {district} has {len(found)} open drafts, the most allowed ({max_open}): {named}; "
                   f"publish or drop one first (citygrid grids drop-draft --district {district} --version N)",
                   extra={"open_drafts": [{"version": d["version_id"], "author": d["author"],
                                           "revision": d["revision"], "created_at": d["created_at"].isoformat()}
                                          for d in found]})


def drop(conn: Connection, district: str, version: int, author: str = "system") -> dict[str, Any]:
    """Drop draft ``version`` of ``district``: its unit and supervision grids, teams and edit log are deleted.
    Nothing of the codes it issued is released: they stay registered (retired by the draft), never reused, and
    its version number is not given again; codes it retired are in use again.

    Returns ``{"district", "version", "dropped": True, "codes_issued", "codes_restored"}``.

    Raises
    ------
    NotFound : no such version.
    Conflict : the version is not a draft, or another version was made from it.
    """
    store.lock_district_versions(conn, district)
    row = store.lock_version(conn, district, version)
    if row is None:
        raise NotFound(f"district {district} has no grid version {version}")
    if row["status"] != "draft":
        raise Conflict(f"version {version} of {district} is {row['status']}: only a draft is dropped")
    children = store.versions_based_on(conn, district, version)
    if children:
        raise Conflict(f"version {children[0]} of {district} was made from draft {version}: drop it first",
                       extra={"based_on_it": children})
    codes = store.drop_draft_codes(conn, district, version)
    store.delete_version(conn, district, version)
    spatial_store.audit(conn, actor=author, action="drop_draft", object_kind="grid_version",
                        object_id=f"{district}/{version}", district=district,
                        before={"base_version": row["parent_version"], "revision": row["revision"]})
    return {"district": district, "version": version, "dropped": True, "codes_issued": codes["issued"],
            "codes_restored": codes["restored"]}


def _base_version(conn: Connection, district: str, from_version: int | None) -> dict[str, Any]:
    """The version a new draft copies: ``from_version``, else the district's published one."""
    row = store.version_row(conn, district, from_version)
    if row is None:
        what = f" {from_version}" if from_version is not None else ""
        raise NotFound(f"district {district} has no grid version{what}")
    if from_version is None and row["status"] != "published":
        raise NotFound(f"district {district} has no published grid version to copy; name one with from "
                       f"(its newest is version {row['version_id']}, a {row['status']})")
    if not row["unit_grids"]:
        raise Conflict(f"version {row['version_id']} of {district} has no unit grids to copy")
    return row


def summary(conn: Connection, district: str, version_id: int) -> dict[str, Any]:
    """A version as the editing API shows it: status, source, base_version, revision, author, dates, counts
    and the minimum unit-grid area its edits keep; ``NotFound`` without it."""
    row = store.version_row(conn, district, version_id)
    if row is None:
        raise NotFound(f"district {district} has no grid version {version_id}")
    return {"district": district, "version": row["version_id"], "status": row["status"], "source": row["source"],
            "base_version": row["parent_version"], "revision": row["revision"], "author": row["author"],
            "note": row["note"], "created_at": row["created_at"], "effective_from": row["effective_from"],
            "effective_to": row["effective_to"], "unit_grids": row["unit_grids"],
            "supervision_grids": row["supervision_grids"], "teams": row["teams"],
            "min_area_m2": min_area_m2(row["params"])}


def workload_basis(conn: Connection, district: str, base: dict[str, Any]) -> dict[str, Any]:
    """What a draft's edits measure its supervision grids' workloads with (``partition.group_loads``): the
    base version's partition weights (default ``partition.DEFAULT_WEIGHTS``) and the district means per unit
    grid of each term when the draft is made (``store.workload_means``), kept for the draft's life so that one
    edit's figure does not move every other supervision grid's."""
    weights = ((base["params"] or {}).get("partition") or {}).get("weights") or dict(part.DEFAULT_WEIGHTS)
    return {"weights": weights, "means": store.workload_means(conn, district, base["version_id"])}


def measured_with(conn: Connection, district: str, version_id: int, recorded: dict[str, Any] | None
                  ) -> dict[str, Any]:
    """The basis draft ``version_id``'s stored workloads are measured with: the one recorded when it was made
    (``workload_basis``, in ``params["draft"]["workload"]``), or for a draft made before that was recorded the
    default weights and the draft's means now. Edits store with it and the impact preview shows with it."""
    return recorded or {"weights": dict(part.DEFAULT_WEIGHTS),
                        "means": store.workload_means(conn, district, version_id)}


def min_area_m2(params: dict[str, Any]) -> float:
    """The smallest unit grid an edit may leave in a version with these ``params`` (m²): the draft's recorded
    minimum, else the generation's, else the default."""
    recorded = (params.get("draft") or {}).get("min_area_m2")
    if recorded is None:
        recorded = (params.get("generation") or {}).get("min_area_m2", GridParams().min_area_m2)
    return float(recorded)


def supervision_contiguous(params: dict[str, Any]) -> bool:
    """Whether every supervision grid of a version with these ``params`` is known to be one contiguous piece:
    the version's own grouping says so (``params.partition.contiguous``, the partition's adjacency), or, when it
    was not grouped itself, the draft it is records that its base was (``params.draft.supervision_contiguous``):
    every edit keeps the supervision grids it touches contiguous, so a draft of such a version stays so. False
    when unknown (a version grouped before this was recorded, or one whose grouping left a piece apart): its
    edits then check each touched supervision grid whole."""
    if "partition" in params:
        return (params["partition"] or {}).get("contiguous") is True
    return (params.get("draft") or {}).get("supervision_contiguous") is True

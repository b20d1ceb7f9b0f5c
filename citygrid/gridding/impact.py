"""What publishing a draft would change (#23): the impact preview a planner reads before publishing.

Against the district's current published version: the components, open cases and cases of the last 12 months
whose point would lie in another unit grid or supervision grid; the owners per role that change for land that
passes between grids; the supervision grids and teams that change, with who patrols and leads them now; each
changed supervision grid's workload before and after (the partition's measure) and the imbalance over all
supervision grids before and after; the area of every changed grid.

Only the grids whose geometry or assignment differs are read (compared by code and WKB in SQL, ``store``), not
the district, so a preview of a few edits stays fast on a district of thousands of grids.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy.engine import Connection

from citygrid.cases.workflow import CLOSED_STATES
from citygrid.errors import Conflict, NotFound
from citygrid.gridding import drafts, history, store
from citygrid.gridding import partition as part
from citygrid.responsibility.ownership import ROLES
from citygrid.spatial.db import deployment_zone
from citygrid.spatial.timezones import day_start

CAP = 200  # ids listed per kind of point; the counts are exact
MIN_MOVED_M2 = 1.0  # land smaller than this passing between grids is the edit's rounding, not a change of owner
NO_OWNER_NOTE = ("a new code has no owners until they are assigned (citygrid ownership import, or "
                 "POST /api/v1/ownership/imports)")


def of_draft(conn: Connection, district: str, version_id: int) -> dict[str, Any]:
    """The impact of publishing draft ``version_id`` of ``district`` now (see the module docstring).

    Returns
    -------
    ``district``, ``version``, ``base_version`` (the current published version compared against), ``grids``
    (per changed unit grid: code, change, areas before/after/delta m², supervision grid and team before and
    after), ``points`` (``components``, ``open_cases``, ``recent_cases``: each ``count`` and the first ``CAP``
    ``items`` with the unit and supervision grid before and after), ``owners`` (``changes`` per role for land
    passing between grids of different owners, ``new_codes`` without owners and the ``note`` saying so),
    ``supervision_grids`` (per changed one: team and workload before/after, unit grids before/after and its
    supervisors now), ``teams`` (per changed team: its supervision grids before/after and leaders now) and
    ``imbalance`` (before, after).

    Raises ``NotFound`` for a version the district lacks or a district never published, ``Conflict`` for a
    version that is not a draft.
    """
    base, draft = _versions(conn, district, version_id)
    rows, changed = history.differences(conn, district, base["version_id"], version_id)
    codes = sorted({r["code"] for r in rows})
    answer: dict[str, Any] = {"district": district, "version": version_id, "base_version": base["version_id"],
                              "grids": [_grid_row(r) for r in rows]}
    answer["points"] = _points(conn, district, base["version_id"], version_id, codes)
    answer["owners"] = _owners(conn, district, base["version_id"], version_id, rows)
    sup = _supervision(conn, district, base, draft, rows, changed)
    answer.update(sup)
    return answer


def _versions(conn: Connection, district: str, version_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The current published version to compare draft ``version_id`` with, and the draft's row; see
    ``of_draft`` for what is refused."""
    draft = store.version_row(conn, district, version_id)
    if draft is None:
        raise NotFound(f"district {district} has no grid version {version_id}")
    if draft["status"] != "draft":
        raise Conflict(f"version {version_id} of {district} is {draft['status']}, not a draft: an impact "
                       "preview compares a draft with the current version")
    base = store.version_row(conn, district, None)
    if base is None or base["status"] != "published":
        raise NotFound(f"district {district} has no published grid version to compare draft {version_id} with")
    return base, draft


def _area(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _grid_row(row: dict[str, Any]) -> dict[str, Any]:
    before, after = _area(row["area_before"]), _area(row["area_after"])
    return {"code": row["code"], "change": row["change"], "area_before_m2": before, "area_after_m2": after,
            "area_delta_m2": round((after or 0.0) - (before or 0.0), 1),
            "supervision_before": row["supervision_before"], "supervision_after": row["supervision_after"],
            "team_before": row["team_before"], "team_after": row["team_after"]}


def _year_ago(conn: Connection) -> dt.datetime:
    """The first instant of the same local day a year ago (28 February for 29 February)."""
    zone = deployment_zone(conn)
    today = dt.datetime.now(zone).date()
    try:
        then = today.replace(year=today.year - 1)
    except ValueError:
        then = today.replace(year=today.year - 1, day=28)
    return day_start(then, zone)


def _points(conn: Connection, district: str, base: int, draft: int, codes: list[str]) -> dict[str, Any]:
    """Components, open cases and cases of the last 12 months whose unit or supervision grid would change."""
    since = _year_ago(conn)
    lists: dict[str, list[dict[str, Any]]] = {"components": [], "open_cases": [], "recent_cases": []}
    rows = store.points_in_grids(conn, district, base, draft, codes, since, CLOSED_STATES) if codes else []
    for row in rows:
        item = {"id": row["id"], "unit_before": row["unit_before"], "unit_after": row["unit_after"],
                "supervision_before": row["supervision_before"], "supervision_after": row["supervision_after"]}
        if row["kind"] == "component":
            lists["components"].append(item)
            continue
        item["case_id"] = int(item.pop("id"))
        if row["open"]:
            lists["open_cases"].append(item)
        if row["reported_at"] >= since:
            lists["recent_cases"].append(item)
    summary = {name: {"count": len(items), "items": items[:CAP], "capped": len(items) > CAP}
               for name, items in lists.items()}
    return {**summary, "since": since.isoformat()}


def _owners(conn: Connection, district: str, base: int, draft: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Owner changes per role for land that passes between unit grids, and the new codes without owners."""
    codes = sorted({r["code"] for r in rows})
    owned: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in store.unit_owners_now(conn, district, codes):
        owned[row["grid_code"]][row["role"]] = {k: row[k] for k in ("code", "name", "kind")}
    new_codes = [r["code"] for r in rows if r["change"] == "added" and not owned.get(r["code"])]
    changes = []
    moved = store.land_moves(conn, district, base, draft, [r["code"] for r in rows if r["change"] != "reassigned"],
                             MIN_MOVED_M2) if codes else []
    for move in moved:
        for role in ROLES:
            before = owned.get(move["from_code"], {}).get(role)
            after = owned.get(move["to_code"], {}).get(role)
            if before != after:
                changes.append({"role": role, "from_grid": move["from_code"], "to_grid": move["to_code"],
                                "area_m2": round(float(move["area_m2"]), 1), "owner_before": before,
                                "owner_after": after})
    return {"changes": changes, "new_codes": new_codes, "note": NO_OWNER_NOTE if new_codes else None,
            "grids": {code: owned.get(code, {}) for code in codes}}


def _supervision(conn: Connection, district: str, base: dict[str, Any], draft_row: dict[str, Any],
                 rows: list[dict[str, Any]], changed: list[dict[str, Any]]) -> dict[str, Any]:
    """Changed supervision grids (workload before/after, supervisors now), changed teams, and the imbalance;
    ``rows`` and ``changed`` are ``history.differences``'. Workloads before and after are measured with the
    draft's basis (``drafts.measured_with``), the one its edits stored theirs with: the figure after is the
    stored one even when cases have been reported since the draft was made."""
    base_id, draft = base["version_id"], draft_row["version_id"]
    sup_codes = sorted({c for r in rows for c in (r["supervision_before"], r["supervision_after"]) if c}
                       | {r["code"] for r in changed})
    if not sup_codes:
        stored = store.supervision_workloads(conn, district, base_id)
        same = _imbalance(stored)
        return {"supervision_grids": [], "teams": [], "imbalance": {"before": same, "after": same}}
    members_before = _members(store.unit_supervision(conn, district, base_id, sup_codes))
    members_after = _members(store.unit_supervision(conn, district, draft, sup_codes))
    recorded = ((draft_row["params"] or {}).get("draft") or {}).get("workload")
    basis = drafts.measured_with(conn, district, draft, recorded)
    weights, means = basis["weights"], basis["means"]
    load_before = part.group_loads(store.workload_terms_of(conn, district, base_id, _all(members_before)),
                                   members_before, means, weights)
    load_after = part.group_loads(store.workload_terms_of(conn, district, draft, _all(members_after)),
                                  members_after, means, weights)
    teams = {r["code"]: (r["team_before"], r["team_after"]) for r in changed}
    for r in rows:
        for code, team in ((r["supervision_before"], r["team_before"]), (r["supervision_after"], r["team_after"])):
            if code and code not in teams:
                teams[code] = (team, team)
    people = _people(conn, district, sup_codes, sorted({t for pair in teams.values() for t in pair if t}))
    grids = [{"code": code, "team_before": teams.get(code, (None, None))[0],
              "team_after": teams.get(code, (None, None))[1],
              "unit_grids_before": len(members_before.get(code, [])),
              "unit_grids_after": len(members_after.get(code, [])),
              "workload_before": _round(load_before.get(code)), "workload_after": _round(load_after.get(code)),
              "supervisors": people.get(code, [])} for code in sup_codes]
    stored = store.supervision_workloads(conn, district, base_id)
    before = {**stored, **load_before}
    after = {**stored, **load_after}
    for code in set(sup_codes) - set(load_after):  # retired by the draft (its unit grids all went elsewhere)
        after.pop(code, None)
    return {"supervision_grids": grids, "teams": _teams(grids, people),
            "imbalance": {"before": _imbalance(before), "after": _imbalance(after),
                          "basis": "changed supervision grids recomputed from today's data (components, cases, "
                                   "roads, area; the version's weights); the others as the partition stored them"}}


def _members(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for unit, sup in pairs:
        grouped[sup].append(unit)
    return dict(grouped)


def _all(members: dict[str, list[str]]) -> list[str]:
    return sorted({u for units in members.values() for u in units})


def _imbalance(loads: dict[str, float]) -> float | None:
    """max/mean − 1 of the supervision grids' workloads (None without any)."""
    values = list(loads.values())
    if not values or sum(values) <= 0:
        return None
    return round(max(values) / (sum(values) / len(values)) - 1, 4)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _people(conn: Connection, district: str, sup_codes: list[str], team_codes: list[str]
            ) -> dict[str, list[dict[str, Any]]]:
    """Supervisors per supervision grid and leaders per team, now."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in store.supervisors_now(conn, district, [*sup_codes, *team_codes]):
        found[row["target_code"]].append({"person_id": row["person_id"], "name": row["name"], "role": row["role"],
                                          "synthetic": row["synthetic"]})
    return dict(found)


def _teams(grids: list[dict[str, Any]], people: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Teams that gain or lose supervision grids or whose grids change, with their leaders now."""
    gains: dict[str, dict[str, set[str]]] = defaultdict(lambda: {"before": set(), "after": set()})
    for grid in grids:
        if grid["team_before"]:
            gains[grid["team_before"]]["before"].add(grid["code"])
        if grid["team_after"] and grid["unit_grids_after"]:
            gains[grid["team_after"]]["after"].add(grid["code"])
    return [{"code": team, "supervision_grids_changed_before": sorted(sets["before"]),
             "supervision_grids_changed_after": sorted(sets["after"]),
             "leaders": [p for p in people.get(team, []) if p["role"] == "team_leader"]}
            for team, sets in sorted(gains.items())]

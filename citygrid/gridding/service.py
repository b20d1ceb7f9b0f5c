"""Gridding operations as the CLI, the HTTP API and the tests call them: generate, partition, publish,
stats, export. Each takes a connection inside the caller's transaction; nothing is written unless the whole
operation succeeds (the caller commits).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy.engine import Connection

from citygrid import codes as code_schemes
from citygrid.errors import Conflict, InvalidInput, NotFound
from citygrid.gridding import metrics, store
from citygrid.gridding import partition as part
from citygrid.gridding.codes import PreviousGrid, assign_codes, band_height
from citygrid.gridding.generate import GridParams, generate_unit_grids
from citygrid.gridding.roads import choose_roads
from citygrid.gridding.shapes import reading_order
from citygrid.responsibility import ownership
from citygrid.spatial import crs
from citygrid.spatial import store as spatial_store
from citygrid.spatial.boundaries import district_boundary
from citygrid.spatial.db import deployment_srid, deployment_zone
from citygrid.spatial.geocode import GridIndex
from citygrid.spatial.timezones import day_start, localize

# Chaoyang (seed 001): 8,070 unit grids, 237 supervision grids, 35 teams.
UNITS_PER_SUPERVISION_GRID = 8070 / 237
SUPERVISION_GRIDS_PER_TEAM = 237 / 35
EXPORT_FORMATS = {"gpkg": "GPKG", "geojson": "GeoJSON", "shp": "ESRI Shapefile"}
# A publish makes the draft current at once; an effective date further ahead would leave the replaced version
# "valid" until then in the history and refuse every later publish (9999-12-31: for good).
MAX_PUBLISH_AHEAD = dt.timedelta(days=366)


def _version(conn: Connection, district: str, version_id: int | None) -> dict[str, Any]:
    row = store.version_row(conn, district, version_id)
    if row is None:
        if version_id is None:
            raise NotFound(f"district {district} has no grid version; run `citygrid grids generate` first")
        raise NotFound(f"district {district} has no grid version {version_id}")
    return row


def generate(conn: Connection, district: str, params: GridParams, *, author: str = "system",
             note: str = "") -> dict[str, Any]:
    """Generate a new draft version of unit grids for ``district`` and return its summary and quality.

    Codes follow the deployment's code scheme (``gridding.codes``). A district with no street or community
    data is split as a whole. Islets below ``min_area_m2`` touching no grid are left out and listed under
    ``left_out`` (area, and a point inside in EPSG:4326 lon/lat).
    """
    params.validate()
    scheme = code_schemes.deployment_scheme(conn)
    boundary = district_boundary(conn, district)
    srid = deployment_srid(conn)
    areas = store.load_areas(conn, district)
    road_geoms, road_classes = store.load_roads(conn, district)
    result = generate_unit_grids(boundary, areas, params, road_geoms, road_classes)

    previous_row = store.version_row(conn, district, None)
    previous = []
    if previous_row is not None:
        previous = [PreviousGrid(g["code"], g["geom"])
                    for g in store.unit_grids(conn, district, previous_row["version_id"])]
    codes = assign_codes(district, result.polygons, result.street_codes, result.community_codes, previous,
                         store.issued_serials(conn, district), band_height(params.target_area_m2), scheme)

    version_id = store.next_version_id(conn, district)
    quality = metrics.coverage(result.polygons, boundary)
    chosen = result.chosen_roads if result.source == "roads" else None
    quality["road_alignment"] = metrics.road_alignment(chosen, result.polygons, boundary)
    areas_m2 = np.array([p.area for p in result.polygons])
    left_out = _left_out(result.left_out, srid)
    summary = {
        "district": district, "version": version_id, "source": result.source, "unit_grids": len(codes),
        "area_m2": {"min": round(float(areas_m2.min()), 1), "median": round(float(np.median(areas_m2)), 1),
                    "max": round(float(areas_m2.max()), 1)},
        **quality, "notes": result.notes, "areas": result.plan.report, "derived_areas": result.plan.derived,
        "reused_codes": len({c for c in codes} & {p.code for p in previous}),
        "left_out": left_out,
    }
    store.create_version(conn, district=district, version_id=version_id, source=result.source, author=author,
                         params={"generation": params.as_record(), "quality": quality, "notes": result.notes,
                                 "areas": result.plan.report, "derived_areas": result.plan.derived,
                                 "left_out": left_out},
                         note=note, parent_version=previous_row["version_id"] if previous_row else None)
    store.insert_unit_grids(conn, district, version_id, [
        {"code": code, "street_code": street or None, "community_code": community,
         "area_m2": poly.area, "wkb": shapely.to_wkb(poly), "attrs": {"source": result.source}}
        for code, poly, street, community in zip(codes, result.polygons, result.street_codes,
                                                 result.community_codes, strict=True)
    ], srid)
    previous_codes = {p.code for p in previous}
    store.register_codes(conn, district, version_id, [c for c in codes if c not in previous_codes],
                         sorted(previous_codes - set(codes)))
    if result.plan.derived:
        shapes: dict[str, Any] = {}
        for cell in result.plan.cells:
            if not cell.real:
                for code in filter(None, (cell.community_code, cell.street_code)):
                    shapes[code] = shapes[code].union(cell.geom) if code in shapes else cell.geom
        store.save_derived_areas(conn, district, shapes, srid)
    spatial_store.audit(conn, actor=author, action="generate", object_kind="grid_version",
                        object_id=f"{district}/{version_id}", district=district,
                        after={k: summary[k] for k in ("source", "unit_grids", "coverage_gap_ratio")})
    return summary


def _left_out(pieces: list[Any], srid: int) -> list[dict[str, float]]:
    """Area (m²) and a point inside (EPSG:4326) of each islet left out of the grids (deployment CRS in)."""
    if not pieces:
        return []
    inside = crs.to_lonlat(shapely.point_on_surface(np.asarray(pieces, dtype=object)), srid)
    return [{"area_m2": round(p.area, 1), "lon": round(pt.x, 6), "lat": round(pt.y, 6)}
            for p, pt in zip(pieces, inside, strict=True)]


def default_group_counts(unit_grids: int) -> tuple[int, int]:
    """Supervision grids and teams in Chaoyang's proportions (8,070 : 237 : 35)."""
    groups = max(1, round(unit_grids / UNITS_PER_SUPERVISION_GRID))
    return groups, max(1, round(groups / SUPERVISION_GRIDS_PER_TEAM))


def parse_weights(text: str | None) -> dict[str, float]:
    """``components=1,cases=2,roads=1,area=0.5`` -> dict (terms left out keep their default weight)."""
    weights = dict(part.DEFAULT_WEIGHTS)
    if not text:
        return weights
    for item in text.split(","):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in weights:
            raise InvalidInput(f"unknown workload term {name!r}; use {', '.join(weights)}", field="weights")
        try:
            weights[name] = float(value)
        except ValueError:
            raise InvalidInput(f"weight of {name} must be a number, not {value!r}", field="weights") from None
        if not np.isfinite(weights[name]) or weights[name] < 0:
            raise InvalidInput(f"weight of {name} must be a finite number ≥ 0", field="weights")
    return weights


def partition(conn: Connection, district: str, n_groups: int, n_teams: int | None = None, *,
              weights: dict[str, float] | None = None, version_id: int | None = None,
              respect_streets: bool = False, compact: bool = True, seed: int = 1,
              author: str = "system") -> dict[str, Any]:
    """Group the unit grids of a draft version into contiguous supervision grids and teams.

    ``compact``: weight adjacency by shared boundary length, so that METIS, minimising the cut, draws short
    group boundaries (compact groups); off, every adjacency weighs the same. ``respect_streets``: adjacency
    across a street line weighs 1/100, so group boundaries follow street lines where balance allows.

    ``n_teams`` None: in Chaoyang's proportion, raised to the number of detached pieces of the district
    (islands, exclaves) when that is more, since a team's grids are contiguous and never span two pieces.
    Counts that cannot work raise ``InvalidInput`` naming the count at fault (``supervision_grids`` or
    ``teams``).

    Returns the summary: counts, imbalance (max/mean − 1), contiguity, weights used, detached ``pieces``,
    ``teams_chosen`` (given, default, or raised to cover the pieces), and per group: code, team, workload,
    area_m2, unit_grids, polsby_popper.

    The steps: the draft and its unit grids (``_draft_grids``), the counts (``_check_group_count``,
    ``_team_count``), the adjacency graph (``_weighted_graph``), the groups and teams (``_group``), then one
    write (``_store_grouping``) and the summary with its audit entry.
    """
    vid, grids = _draft_grids(conn, district, version_id)
    _check_group_count(n_groups, len(grids))
    polygons = [g["geom"] for g in grids]
    graph = part.adjacency(polygons)
    n_pieces = part.pieces(graph)[0]
    n_teams, teams_chosen = _team_count(n_groups, n_teams, len(grids), n_pieces)
    graph = _weighted_graph(graph, grids, compact=compact, respect_streets=respect_streets)
    load, used = part.workload(store.workload_terms(conn, district, vid), weights or dict(part.DEFAULT_WEIGHTS))
    grouping = _group(district, graph, polygons, load, n_groups, n_teams, seed=seed)
    # The draft's revision when it was grouped: its edits up to there changed the grouping this one replaces, so
    # they can no longer be undone (``edits.undo``). The row is locked: no edit slips in meanwhile.
    grouped_at = (store.lock_version(conn, district, vid) or {}).get("revision", 0)
    _store_grouping(conn, district, vid, grids, grouping)
    summary = {
        "district": district, "version": vid, "supervision_grids": n_groups, "teams": n_teams,
        "teams_chosen": teams_chosen, "pieces": n_pieces,
        "weights": used, "respect_streets": respect_streets, "compact": compact,
        **grouping.quality(load),
    }
    store.merge_version_params(conn, district, vid, {"partition": {
        **{k: v for k, v in summary.items() if k != "groups"}, "revision": grouped_at}})
    spatial_store.audit(conn, actor=author, action="partition", object_kind="grid_version",
                        object_id=f"{district}/{vid}", district=district,
                        after={k: summary[k] for k in ("supervision_grids", "teams", "imbalance", "contiguous")})
    return summary


def _draft_grids(conn: Connection, district: str, version_id: int | None) -> tuple[int, list[dict[str, Any]]]:
    """The draft to group (``version_id``, or the district's latest) and its unit grids (storage CRS).

    ``Conflict`` when the version is not a draft, ``NotFound`` when it has no unit grids."""
    version = _version(conn, district, version_id if version_id is not None else _latest_id(conn, district))
    if version["status"] != "draft":
        raise Conflict(f"version {version['version_id']} of {district} is {version['status']}; "
                       "generate a new draft to regroup it")
    vid = version["version_id"]
    grids = store.unit_grids(conn, district, vid)
    if not grids:
        raise NotFound(f"version {vid} has no unit grids")
    return vid, grids


def _check_group_count(n_groups: int, n_grids: int) -> None:
    """``InvalidInput`` on ``supervision_grids`` unless 1 ≤ ``n_groups`` ≤ the number of unit grids."""
    if n_groups < 1:
        raise InvalidInput("supervision_grids must be at least 1", field="supervision_grids")
    if n_groups > n_grids:
        raise InvalidInput(f"supervision_grids ({n_groups}) is more than the {n_grids} unit grids",
                           field="supervision_grids")


def _team_count(n_groups: int, n_teams: int | None, n_grids: int, n_pieces: int) -> tuple[int, str]:
    """The number of teams and how it was chosen (given, default, raised to cover the pieces).

    Every detached piece of the district needs a supervision grid and a team of its own (both are contiguous):
    counts below ``n_pieces`` raise ``InvalidInput`` naming the count at fault."""
    if n_groups < n_pieces:
        raise InvalidInput(f"supervision_grids ({n_groups}) cannot cover the {n_pieces} detached pieces of the "
                           f"district (a supervision grid is contiguous); use --supervision-grids {n_pieces} "
                           "or more", field="supervision_grids")
    teams_chosen = "given"
    if n_teams is None:
        n_teams, teams_chosen = default_group_counts(n_grids)[1], "default"
        if n_teams < n_pieces:
            n_teams, teams_chosen = n_pieces, "raised to cover the detached pieces"
        n_teams = min(n_teams, n_groups)
    if not 1 <= n_teams <= n_groups:
        raise InvalidInput(f"teams ({n_teams}) must be between 1 and supervision_grids ({n_groups})",
                           field="teams")
    if n_teams < n_pieces:
        raise InvalidInput(f"teams ({n_teams}) cannot cover the {n_pieces} detached pieces of the district (a "
                           f"team's supervision grids are contiguous); use --teams {n_pieces} or more, or leave "
                           "--teams out to have it chosen", field="teams")
    return n_teams, teams_chosen


def _weighted_graph(graph: part.Graph, grids: list[dict[str, Any]], *, compact: bool,
                    respect_streets: bool) -> part.Graph:
    """The adjacency weights METIS cuts: shared boundary length (``compact``) or 1 each, and 100 times
    heavier between two grids of the same street (``respect_streets``)."""
    if not compact:
        graph = part.Graph(graph.n, graph.left, graph.right, np.ones_like(graph.length))
    if respect_streets:
        streets = np.array([g["street_code"] or "" for g in grids], dtype=object)
        same = streets[graph.left] == streets[graph.right]
        graph = part.Graph(graph.n, graph.left, graph.right, np.where(same, graph.length * 100, graph.length))
    return graph


@dataclass
class _Grouping:
    """Unit grids grouped into supervision grids (``labels``, one per unit grid) and those into teams
    (``team_labels``, one per group), with their codes and the groups' report (``part.group_report``)."""

    graph: part.Graph
    labels: np.ndarray
    groups: list[dict[str, Any]]
    group_code: dict[int, str]
    team_graph: part.Graph
    team_labels: np.ndarray
    team_code: dict[int, str]

    def team_of(self, group: int) -> str:
        """The code of the team of group ``group``."""
        return self.team_code[int(self.team_labels[group])]

    def quality(self, load: np.ndarray) -> dict[str, Any]:
        """Imbalance (max/mean − 1) of groups and teams, contiguity, and one row per group, sorted by code."""
        group_load = np.array([g["workload"] for g in self.groups])
        return {
            "imbalance": round(part.imbalance(self.labels, load), 4),
            "team_imbalance": round(part.imbalance(self.team_labels, group_load), 4),
            "contiguous": bool(all(g["contiguous"] for g in self.groups)),
            "teams_contiguous": bool(part.contiguous_groups(self.team_graph, self.team_labels).all()),
            "groups": sorted(({"code": self.group_code[g["group"]], "team": self.team_of(g["group"]),
                               "workload": round(g["workload"], 3), "area_m2": round(g["area_m2"], 1),
                               "unit_grids": g["unit_grids"], "polsby_popper": round(g["polsby_popper"], 3),
                               "contiguous": g["contiguous"]} for g in self.groups), key=lambda r: r["code"]),
        }


def _group(district: str, graph: part.Graph, polygons: list[Any], load: np.ndarray, n_groups: int, n_teams: int,
           *, seed: int) -> _Grouping:
    """Partition the unit grids (``polygons`` in the storage CRS) into ``n_groups`` groups of balanced ``load``,
    then the groups, by their own adjacency, into ``n_teams`` teams; codes run in reading order (north to
    south bands, west to east)."""
    labels = part.partition(graph, load, n_groups, seed=seed)
    groups = part.group_report(polygons, labels, load, graph)
    centres = shapely.point_on_surface(np.array([g["geom"] for g in groups], dtype=object))
    order = reading_order(shapely.get_x(centres), shapely.get_y(centres), 1500.0)
    group_code = {int(p): code_schemes.CodeScheme.supervision_code(district, rank + 1) for rank, p in enumerate(order)}
    team_graph = part.quotient_graph(graph, labels)
    group_load = np.array([g["workload"] for g in groups])
    team_labels = part.partition(team_graph, group_load, n_teams, seed=seed, field="teams")
    team_order = reading_order(*_centres_of(groups, team_labels), 3000.0)
    team_code = {int(t): code_schemes.CodeScheme.team_code(district, rank + 1) for rank, t in enumerate(team_order)}
    return _Grouping(graph, labels, groups, group_code, team_graph, team_labels, team_code)


def _store_grouping(conn: Connection, district: str, vid: int, grids: list[dict[str, Any]],
                    grouping: _Grouping) -> None:
    """Replace the version's teams and supervision grids (storage CRS) and each unit grid's group."""
    street_of = _majority_street(grids, grouping.labels)
    rows = [{"code": grouping.group_code[g["group"]], "team_code": grouping.team_of(g["group"]),
             "street_code": street_of.get(g["group"]), "workload": g["workload"],
             "wkb": shapely.to_wkb(g["geom"])} for g in grouping.groups]
    team_codes = sorted(grouping.team_code.values())
    store.replace_supervision(
        conn, district, vid,
        teams=[{"code": code, "name": name} for code, name in zip(team_codes, _team_names(conn, len(team_codes)),
                                                                  strict=True)],
        groups=rows,
        assignment={grid["code"]: grouping.group_code[int(label)]
                    for grid, label in zip(grids, grouping.labels, strict=True)},
        srid=deployment_srid(conn),
    )


def _team_names(conn: Connection, n: int) -> list[str]:
    """Default names of teams 1..``n``: 第N分队 in a deployment of Chinese administrative codes, else
    ``Team N`` (a city with its own codes is not assumed to read Chinese)."""
    chinese = code_schemes.deployment_scheme(conn).name == "cn-admin"
    return [f"第{k}分队" if chinese else f"Team {k}" for k in range(1, n + 1)]


def _latest_id(conn: Connection, district: str) -> int | None:
    rows = store.versions(conn, district)
    return rows[-1]["version_id"] if rows else None


def _centres_of(groups: list[dict[str, Any]], team_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = int(team_labels.max()) + 1
    xs, ys = np.zeros(n), np.zeros(n)
    for t in range(n):
        union = shapely.union_all([g["geom"] for g in groups if team_labels[g["group"]] == t])
        point = union.point_on_surface()
        xs[t], ys[t] = point.x, point.y
    return xs, ys


def _majority_street(grids: list[dict[str, Any]], labels: np.ndarray) -> dict[int, str | None]:
    best: dict[int, dict[str, float]] = {}
    for grid, label in zip(grids, labels, strict=True):
        if grid["street_code"]:
            tally = best.setdefault(int(label), {})
            tally[grid["street_code"]] = tally.get(grid["street_code"], 0.0) + grid["geom"].area
    return {label: max(tally, key=tally.get) for label, tally in best.items()}


def publish(conn: Connection, district: str, version_id: int | None = None,
            effective_from: dt.datetime | dt.date | None = None, author: str = "system") -> dict[str, Any]:
    """Make a draft the district's current grid version from ``effective_from`` (default now); the version it
    replaces ends at that moment. A date means the start of that local day, and a date-time without an offset
    wall-clock time, in the deployment's time zone. A draft whose unit grids are not all grouped into
    supervision grids (run ``partition`` first) is a ``Conflict``: cases, owners and supervisors need them."""
    # Two publishes of one district at once: the second waits here for the first, then sees its version as the
    # current one (without the lock each retired only the version both had read, and both stayed published).
    store.lock_district_versions(conn, district)
    version = _version(conn, district, version_id if version_id is not None else _latest_id(conn, district))
    if version["status"] != "draft":
        raise Conflict(f"version {version['version_id']} is {version['status']}, not a draft")
    zone = deployment_zone(conn)
    if isinstance(effective_from, dt.datetime):
        start = localize(effective_from, zone)
    elif isinstance(effective_from, dt.date):
        start = day_start(effective_from, zone)
    else:
        start = dt.datetime.now(zone)
    if start > dt.datetime.now(zone) + MAX_PUBLISH_AHEAD:
        raise InvalidInput(f"effective_from must be at most {MAX_PUBLISH_AHEAD.days} days ahead: a published "
                           "version is the current one at once", field="effective_from")
    current = store.version_row(conn, district, None)
    replaced = current if current and current["status"] == "published" else None
    if replaced and replaced["effective_from"] is not None:
        begun = replaced["effective_from"]
        if start <= begun:
            raise InvalidInput(f"effective_from must be after {begun.isoformat()}, when version "
                               f"{replaced['version_id']} took effect", field="effective_from")
    ungrouped = store.ungrouped_unit_grids(conn, district, version["version_id"])
    if ungrouped or not store.count_rows(conn, "supervision_grids", district, version["version_id"]):
        raise Conflict(f"version {version['version_id']} of {district} has {ungrouped} unit grid(s) in no "
                       "supervision grid; group them first (citygrid grids partition --district "
                       f"{district} --supervision-grids N --version {version['version_id']})")
    store.publish(conn, district, version["version_id"], start)
    # the codes the new version no longer has are retired now, not when a draft's edit removed them
    store.retire_replaced_codes(conn, district, replaced["version_id"] if replaced else None, version["version_id"])
    # A city's first version gets derived owners (ownership.py) in the roles no grid has had, as the demo's do:
    # dispatch needs a responsible party, and there is no other way yet to load one.
    missing = ownership.roles_without_owners(conn, district)
    owners = ownership.derive_default_ownership(conn, district, version["version_id"], start, missing) \
        if missing else {}
    # Built now, once, for the census imports and batch look-ups to come (a fraction of a second).
    GridIndex.for_district(conn, district).with_stored_table(conn)
    spatial_store.audit(conn, actor=author, action="publish", object_kind="grid_version",
                        object_id=f"{district}/{version['version_id']}", district=district,
                        after={"effective_from": start})
    return {"district": district, "version": version["version_id"], "status": "published",
            "effective_from": start.isoformat(), "ownership": owners}


def stats(conn: Connection, district: str, version_id: int | None = None) -> dict[str, Any]:
    """Quality of a version, recomputed from the stored geometry (see ``grids stats``)."""
    version = _version(conn, district, version_id)
    vid = version["version_id"]
    grids = store.unit_grids(conn, district, vid)
    polygons = [g["geom"] for g in grids]
    boundary = district_boundary(conn, district)
    quality = metrics.coverage(polygons, boundary)
    alignment = None
    if version["source"] == "roads":
        classes = tuple(version["params"].get("generation", {}).get("road_classes", ()))
        geoms, road_classes = store.load_roads(conn, district)
        alignment = metrics.road_alignment(choose_roads(geoms, road_classes, classes), polygons, boundary)
    partition_info = version["params"].get("partition", {})
    return {
        "version": vid, "status": version["status"], "source": version["source"],
        "unit_grids": len(grids),
        "supervision_grids": store.count_rows(conn, "supervision_grids", district, vid),
        "teams": store.count_rows(conn, "supervision_teams", district, vid),
        "coverage_gap_ratio": quality["coverage_gap_ratio"], "overlap_area_m2": quality["overlap_area_m2"],
        "road_alignment": alignment,
        "imbalance": partition_info.get("imbalance"), "contiguous": partition_info.get("contiguous"),
    }


def export(conn: Connection, district: str, path: Path, fmt: str, *, version_id: int | None = None,
           kind: str = "unit", to_lonlat: bool = False) -> dict[str, Any]:
    """Write a version's grids with codes and attributes to ``path`` (gpkg, geojson or shp).

    Geometry is in the deployment CRS unless ``to_lonlat`` (EPSG:4326). Shapefiles get a ``.cpg`` saying
    UTF-8 so Chinese names survive.
    """
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(EXPORT_FORMATS)}", field="format")
    if kind not in ("unit", "supervision"):
        raise InvalidInput("kind must be unit or supervision", field="kind")
    version = _version(conn, district, version_id)
    vid = version["version_id"]
    srid = deployment_srid(conn)
    if kind == "unit":
        rows = store.unit_grids(conn, district, vid)
        frame = gpd.GeoDataFrame(
            {"code": [r["code"] for r in rows], "street": [r["street_code"] for r in rows],
             "community": [r["community_code"] for r in rows], "sup_code": [r["supervision_code"] for r in rows],
             "area_m2": [round(r["area_m2"], 1) for r in rows], "version": vid},
            geometry=[r["geom"] for r in rows], crs=f"EPSG:{srid}")
    else:
        feature_collection = store.grids_geojson(conn, district=district, version_id=vid, kind="supervision",
                                                 bbox=None, limit=100_000, offset=0, srid=srid)
        frame = gpd.GeoDataFrame.from_features(feature_collection["features"], crs="EPSG:4326").to_crs(srid)
        frame = frame.rename(columns={"street_code": "street"})  # DBF field names are at most 10 characters
    names = {code["code"]: code["name"] for code in spatial_store.areas(conn, district)}
    if "street" in frame:
        frame["street_nm"] = frame["street"].map(names)
    if "community" in frame:
        frame["comm_nm"] = frame["community"].map(names)
    if to_lonlat:
        frame = frame.to_crs(4326)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"encoding": "UTF-8"} if fmt == "shp" else {}
    frame.to_file(path, driver=EXPORT_FORMATS[fmt], **options)
    return {"path": str(path), "format": fmt, "features": len(frame), "version": vid,
            "crs": "EPSG:4326" if to_lonlat else f"EPSG:{srid}"}

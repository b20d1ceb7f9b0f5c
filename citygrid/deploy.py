"""Set up a deployment: server, database, schema, taxonomy, and the demo districts.

Wiring-level code shared by the CLI, ``make`` and the tests: it composes the spatial, loaders and
components_survey packages and owns the transactions.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from citygrid import __version__, codes
from citygrid.accounts import service as accounts
from citygrid.cases import store as case_store
from citygrid.cases import synthetic, synthetic_events
from citygrid.cases.rules import CaseRules, DispatchRules
from citygrid.components_survey import store as survey_store
from citygrid.components_survey import synthetic as synthetic_census
from citygrid.components_survey.taxonomy import DEFAULT_SCHEME, DEFAULT_SCHEME_TITLE, read_scheme
from citygrid.config import Settings
from citygrid.districts import import_areas, import_district, import_lines
from citygrid.errors import InvalidInput
from citygrid.gridding import service as gridding
from citygrid.gridding import store as gridding_store
from citygrid.gridding.generate import GridParams
from citygrid.loaders.demo import OSM, OSM_LICENCE, VONNG, VONNG_LICENCE, DemoDistrict, demo_district
from citygrid.loaders.vector import read_vector
from citygrid.responsibility.demo_parties import ensure_demo_departments
from citygrid.responsibility.ownership import derive_default_ownership, roles_without_owners
from citygrid.spatial import db, store
from citygrid.spatial.cluster import EmbeddedCluster
from citygrid.spatial.crs import require_storage_crs
from citygrid.spatial.sources import SYNTHETIC_SOURCE
from citygrid.spatial.timezones import zone_for_srid, zone_named


def ensure_server(settings: Settings) -> None:
    """Start the embedded cluster unless ``DATABASE_URL`` points at another server."""
    if not settings.database_url:
        EmbeddedCluster(settings).start()


def init_deployment(settings: Settings, srid: int | None, name: str | None = None, *,
                    code_scheme: str | None = None, timezone: str | None = None) -> dict[str, Any]:
    """Create (or migrate) the deployment database and load the packaged taxonomy.

    Parameters
    ----------
    settings : which server and database.
    srid : EPSG code of the storage CRS (projected, metres); required for a new database, and must match
        the recorded one for an existing database.
    name : deployment name (the city), recorded once.
    code_scheme : ``cn-admin`` (default for a new database) or ``alnum`` (``citygrid.codes``); can change
        only while the deployment holds no district.
    timezone : IANA time zone of the city (e.g. ``America/New_York``). None: a new deployment (or one made
        before zones were recorded) gets the zone of the land at the centre of the CRS's area of use
        (``timezones.zone_for_srid``); an existing one keeps its own. Given for an existing deployment, it
        replaces the recorded zone (stored instants stay; how naive times are read and the answers' offset
        change).

    Returns ``{database, created, srid, code_scheme, timezone, timezone_source, schema_revision,
    taxonomy_loaded}``; ``timezone_source`` says whether the zone was given, recorded before, or derived
    (from what). A bad SRID, code scheme or time zone raises ``InvalidInput`` before anything is created.
    """
    if srid is not None:
        require_storage_crs(srid)
    if code_scheme is not None:
        codes.scheme(code_scheme)
    if timezone is not None:
        zone_named(timezone)
    ensure_server(settings)
    if timezone is not None:
        with db.maintenance_connection(settings) as conn:
            if not db.server_knows_zone(conn, timezone):
                raise InvalidInput(f"the PostgreSQL server does not know the time zone {timezone!r} (its zone "
                                   "database is older or smaller than this machine's); choose another",
                                   field="timezone")
    created = db.create_database(settings)
    engine = db.make_engine(db.database_url(settings))
    try:
        with engine.connect() as conn:
            revision = db.current_revision(conn)
            stored_srid = db.deployment_srid(conn) if revision else None
            had_zone = str(db.deployment_info(conn).get("timezone") or "") if revision else ""
        if stored_srid is not None and srid is not None and stored_srid != srid:
            raise InvalidInput(
                f"database {db.database_url(settings).database} already stores geometry in EPSG:{stored_srid}; "
                f"a deployment keeps one CRS (asked for EPSG:{srid}). Use another --database.",
                field="srid",
            )
        if revision is None and srid is None:
            raise InvalidInput("a new database needs --srid (e.g. 4548 for Beijing, 4547 for Zhengzhou)", field="srid")
        if revision != db.head_revision():
            db.upgrade(engine, srid=stored_srid or srid, name=name or "citygrid", timezone=timezone)
        if timezone is None:
            zone_source = "recorded" if had_zone else "derived from " + zone_for_srid(stored_srid or srid or 0)[1]
        elif had_zone and timezone != had_zone:
            with engine.begin() as conn:
                db.set_deployment_zone(conn, timezone)
            zone_source = f"given (was {had_zone})"
        else:
            zone_source = "given"
        if code_scheme is not None:
            with engine.begin() as conn:
                codes.record_scheme(conn, code_scheme)
        taxonomy_loaded = load_taxonomy(engine, settings, only_if_missing=True)
        with engine.connect() as conn:
            return {
                "database": db.database_url(settings).database, "created": created,
                "srid": db.deployment_srid(conn), "code_scheme": db.deployment_code_scheme(conn),
                "timezone": db.deployment_zone(conn).key, "timezone_source": zone_source,
                "schema_revision": db.current_revision(conn),
                "taxonomy_loaded": taxonomy_loaded,
            }
    finally:
        engine.dispose()


def load_taxonomy(engine: Engine, settings: Settings, *, only_if_missing: bool = False) -> bool:
    """Load the packaged class scheme (``data/taxonomy``). Returns True when it was (re)loaded."""
    with engine.begin() as conn:
        if only_if_missing and survey_store.scheme_exists(conn, DEFAULT_SCHEME):
            return False
        classes = read_scheme(settings.taxonomy_dir)
        survey_store.replace_scheme(
            conn, DEFAULT_SCHEME, DEFAULT_SCHEME_TITLE, "data/taxonomy (see its README)", classes
        )
    return True


def demo_settings(settings: Settings, demo: DemoDistrict) -> Settings:
    """The demo's own database unless the user chose one (``--database`` or ``DATABASE_URL``)."""
    if settings.database or settings.database_url:
        return settings
    return replace(settings, database=demo.database)


def load_demo(settings: Settings, key: str, *, force: bool = False, grids: bool = True,
              history: bool = True, census: bool = True, roster: bool | None = None) -> dict[str, Any]:
    """Set up the database of a demo district and load its real data, once.

    Boundary and street/community points are GCJ-02 (converted to WGS84, then to the storage CRS); roads,
    where the demo has them, are OpenStreetMap WGS84. With ``grids`` the district then gets a published grid
    version (unit grids with default parameters, supervision grids and teams, derived ownership) unless it
    has one, with ``census`` a seeded SYNTHETIC component census (``components_survey.synthetic``) unless it
    has components, and with ``history`` a seeded SYNTHETIC year of cases (``cases.synthetic``) unless it
    has one, then (once: unless its synthetic cases have timelines) the year before it, the planted patterns
    and every synthetic case's event timeline (``cases.synthetic_events``). With ``roster`` (default: as
    ``history``) Chaoyang gets a SYNTHETIC roster at the seeds' scale (1,547 supervisors in 35 teams) and a
    published rotation plan for the coming year
    (``responsibility.rotation_plans.ensure_demo_rotation``) unless it has supervisors.
    Each step is one transaction. Returns a summary with ``loaded`` False when the data was already there,
    ``accounts`` the demo users added, and ``demo_password_created`` True when this call made the demo password
    (``demo_password_file``; the caller may show it this once).
    """
    demo = demo_district(key)
    settings = demo_settings(settings, demo)
    init = init_deployment(settings, demo.srid, demo.deployment_name)
    engine = db.make_engine(db.database_url(settings))
    try:
        with engine.begin() as conn:
            already = bool(store.district_row(conn, demo.code) and store.area_codes(conn, demo.code, "street"))
        summary: dict[str, Any] = {"database": init["database"], "district": demo.code, "loaded": False}
        if force or not already:
            summary.update(_load_demo_data(engine, settings, demo))
        if grids:
            with engine.begin() as conn:
                summary["grids"] = ensure_demo_grids(conn, demo)
            with engine.begin() as conn:  # SYNTHETIC district departments for district-level dispatch (#21)
                summary["synthetic_departments"] = ensure_demo_departments(
                    conn, DispatchRules.load(settings.data_dir), demo.code, demo.name)
        if grids and census:
            with engine.begin() as conn:
                if not survey_store.current_components(conn, demo.code):
                    made_census = synthetic_census.generate(conn, demo.code)
                    summary["synthetic_census"] = {"state": made_census.state, **made_census.counts}
                    if made_census.state == "committed":
                        store.record_source(conn, district=demo.code, kind="census", source=SYNTHETIC_SOURCE,
                                            synthetic=True)
        if grids and history and demo.history_cases:
            with engine.begin() as conn:
                if not case_store.has_synthetic_cases(conn, demo.code):
                    made = synthetic.generate(conn, demo.code, demo.history_cases)
                    summary["synthetic_history"] = {"cases": made.imported, "problems": len(made.problems)}
                    if made.imported:
                        store.record_source(conn, district=demo.code, kind="cases", source=SYNTHETIC_SOURCE,
                                            synthetic=True)
            with engine.begin() as conn:  # #24: a second year, planted patterns and event timelines, once
                timelines = synthetic_events.ensure_demo_timelines(conn, demo.code, demo.history_cases,
                                                                   CaseRules.load(settings.data_dir))
                if timelines is not None:
                    summary["synthetic_timelines"] = timelines
        if grids and (history if roster is None else roster) and demo.key == "chaoyang":
            from citygrid.responsibility.rotation_plans import ensure_demo_rotation

            with engine.begin() as conn:
                summary["rotation"] = ensure_demo_rotation(conn, demo.code)
        if grids and census and demo.key == "guancheng":
            from citygrid.responsibility import frontage_synthetic

            with engine.begin() as conn:  # SYNTHETIC frontage units (门前三包) along the real OSM roads
                summary["synthetic_frontage"] = frontage_synthetic.generate(conn, demo.code)
        if grids:
            fresh_password = not demo_password_file(settings).exists()
            with engine.begin() as conn:
                summary["accounts"] = ensure_demo_accounts(conn, settings, demo.code)
            if fresh_password and demo_password_file(settings).exists():
                summary["demo_password_created"] = True  # the CLI shows it this once
        with engine.begin() as conn:
            # Fresh tables have no statistics until autovacuum gets to them; without them the planner picks
            # nested loops over thousands of grids and ownership rows (minutes instead of milliseconds).
            db.analyze(conn)
        return summary
    finally:
        engine.dispose()


DEMO_ADMIN = "demo"


def demo_password_file(settings: Settings) -> Path:
    return settings.data_dir / "secrets" / "demo-password"


def demo_password(settings: Settings) -> str:
    """The demo accounts' password: made once per data directory (random), kept in ``data/secrets/`` (0600)."""
    path = demo_password_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(12) + "\n")
    return path.read_text().strip()


def ensure_demo_accounts(conn: Connection, settings: Settings, district: str) -> list[str]:
    """Demo users, once: ``demo`` (admin), ``demo-supervisor`` (a supervisor of the district's first team) and
    one account per desk role (``_ensure_desk_accounts``), all with the password from ``demo_password``.
    Returns the names added."""
    added = []
    existing = {u["username"] for u in accounts.list_users(conn)}
    if DEMO_ADMIN not in existing:
        accounts.add_user(conn, DEMO_ADMIN, ["admin"], password=demo_password(settings),
                          display_name="Demo administrator (all roles)")
        added.append(DEMO_ADMIN)
    version = gridding_store.version_row(conn, district, None)
    teams = gridding_store.teams(conn, district, version["version_id"]) if version else []
    name = f"demo-supervisor-{district}"
    if teams and name not in existing:
        accounts.add_user(conn, name, ["supervisor"], password=demo_password(settings), district=district,
                          team=teams[0]["code"], display_name=f"Demo supervisor of team {teams[0]['code']}")
        added.append(name)
    return added + _ensure_desk_accounts(conn, settings, district, existing)


# The desk's roles (#21), one demo account each: who files, dispatches, takes hotline calls and closes
# investigations in the district.
DESK_ROLES = ("acceptor", "dispatcher", "calltaker", "lead")


def _ensure_desk_accounts(conn: Connection, settings: Settings, district: str, existing: set[str]) -> list[str]:
    """``demo-<role>-<district>`` for each of ``DESK_ROLES``, and ``demo-unit-<district>``: the operator of the
    district's first community committee (where a community-level dispatch lands), when it has one."""
    from citygrid.responsibility.queries import list_parties

    added = []
    for role in DESK_ROLES:
        name = f"demo-{role}-{district}"
        if name not in existing:
            accounts.add_user(conn, name, [role], password=demo_password(settings), district=district,
                              display_name=f"Demo {role} of district {district}")
            added.append(name)
    name = f"demo-unit-{district}"
    communities = list_parties(conn, district, kind="community", limit=1)["parties"]
    if communities and name not in existing:
        party = communities[0]
        accounts.add_user(conn, name, ["unit"], password=demo_password(settings), district=district,
                          party=party["code"], display_name=f"Demo operator of {party['name']}")
        added.append(name)
    return added


def ensure_demo_grids(conn: Connection, demo: DemoDistrict) -> dict[str, Any] | None:
    """Generate, group and publish the demo district's grids unless a version exists (None then; derived
    owners are still added for roles that have none, from the version's start, so an older data directory
    gains new roles). A version generated here is in effect from the first day of the demo's SYNTHETIC history
    (``synthetic_events.HISTORY_START``), and its derived owners with it; a database loaded before that keeps
    the start it had (a new database, e.g. after ``make stop`` and removing ``data/pg``, gets the new start)."""
    if gridding_store.versions(conn, demo.code):
        published = gridding_store.version_row(conn, demo.code, None)
        missing = roles_without_owners(conn, demo.code)
        if published and published["status"] == "published" and missing:
            derive_default_ownership(conn, demo.code, published["version_id"], published["effective_from"],
                                     roles=missing)
        return None
    generated = gridding.generate(conn, demo.code, GridParams(), author="load-demo", note="demo: default parameters")
    groups, teams = gridding.default_group_counts(generated["unit_grids"])
    grouped = gridding.partition(conn, demo.code, demo.supervision_grids or groups, demo.teams or teams,
                                 author="load-demo")
    # In effect from the first day of the SYNTHETIC history, so its cases have owners at their report time.
    owners = gridding.publish(conn, demo.code, generated["version"], author="load-demo",
                              effective_from=synthetic_events.HISTORY_START.date())["ownership"]
    return {"ownership": owners, "version": generated["version"], "source": generated["source"],
            "unit_grids": generated["unit_grids"],
            "supervision_grids": grouped["supervision_grids"], "teams": grouped["teams"],
            "imbalance": grouped["imbalance"], "road_alignment": generated["road_alignment"]}


def _load_demo_data(engine: Engine, settings: Settings, demo: DemoDistrict) -> dict[str, Any]:
    """Boundary, streets/communities and roads of a demo district, in one transaction."""
    with engine.begin() as conn:
        boundary = read_vector(demo.path(settings.demo_dir, demo.boundary), crs=demo.boundary_crs)
        summary: dict[str, Any] = {"loaded": True}
        summary["boundary"] = import_district(
            conn, boundary, code=demo.code, name=demo.name, source=VONNG, licence=VONNG_LICENCE, actor="load-demo"
        )
        areas = read_vector(demo.path(settings.demo_dir, demo.admin_codes), crs=demo.areas_crs)
        for level in ("street", "community"):
            summary[level] = import_areas(
                conn, areas, district=demo.code, level=level, source=VONNG, licence=VONNG_LICENCE,
                actor="load-demo",
            )
        if demo.roads:
            roads = read_vector(demo.path(settings.demo_dir, demo.roads), crs=demo.roads_crs)
            summary["roads"] = import_lines(
                conn, roads, district=demo.code, kind="road", class_field="highway", name_field="name",
                id_field="osm_id", source=OSM, licence=OSM_LICENCE, actor="load-demo",
            )
        return summary


def status(settings: Settings) -> dict[str, Any]:
    """Versions, schema revision, storage SRID and per-district counts (``citygrid status --json``): areas,
    roads, current components, cases (of which synthetic), and the recorded data sources."""
    engine = db.make_engine(db.database_url(settings))
    try:
        revision = db.check_schema(engine)
        with engine.connect() as conn:
            counts = store.district_record_counts(conn)
            sources = store.data_sources(conn)
            districts = []
            for d in store.district_summaries(conn):
                districts.append({**d, **counts.get(d["code"], {"components": 0, "cases": 0, "synthetic_cases": 0}),
                                  "sources": [{k: s[k] for k in ("kind", "source", "licence", "synthetic")}
                                              for s in sources if s["district_code"] == d["code"]]})
            return {
                "app_version": __version__,
                **db.server_versions(conn),
                "schema_revision": revision,
                "srid": db.deployment_srid(conn), "timezone": db.deployment_zone(conn).key,
                "database": db.database_url(settings).database,
                "districts": districts,
            }
    finally:
        engine.dispose()


def demo_accounts(settings: Settings) -> list[str]:
    """The demo accounts (``load-demo``'s) that exist and are enabled in the deployment database, by name."""
    engine = db.make_engine(db.database_url(settings))
    try:
        db.check_schema(engine)
        with engine.connect() as conn:
            users = accounts.list_users(conn)
    finally:
        engine.dispose()
    prefixes = tuple(f"{DEMO_ADMIN}-{role}-" for role in ("supervisor", *DESK_ROLES, "unit"))
    return [u["username"] for u in users if (u["username"] == DEMO_ADMIN or u["username"].startswith(prefixes))
            and not u.get("disabled_at")]


def record_case_import(conn: Connection, first_case_id: int, *, source: str, licence: str = "",
                       synthetic: bool = False) -> list[str]:
    """Record ``source`` as where the case history came from in every district that gained cases after
    ``first_case_id`` (``store.last_case_id`` before the import) in this transaction. Returns the districts."""
    districts = store.districts_with_cases_after(conn, first_case_id)
    for district in districts:
        store.record_source(conn, district=district, kind="cases", source=source, licence=licence,
                            synthetic=synthetic)
    return districts

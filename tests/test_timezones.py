"""A deployment's own time zone (#19): a city outside China (New York, EPSG:32618 UTM 18N) reads times without
an offset as New York time, answers carry -05:00 or -04:00 (daylight saving), a one-day period is one New York
day — while the server, the database, libpq's ``PGTZ`` and the process's ``TZ`` all say other zones."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import Connection

from citygrid.cases import history, service
from citygrid.cases import store as case_store
from citygrid.cases.calendar import DeadlineRule, DeadlineTable, WorkingCalendar
from citygrid.cases.intake import parse_report
from citygrid.cases.rules import DispatchRules
from citygrid.cli import cli
from citygrid.config import Settings
from citygrid.districts import import_district
from citygrid.errors import InvalidInput
from citygrid.loaders.vector import read_vector
from citygrid.spatial import db, tiles
from citygrid.spatial.timezones import day_start, instant, zone_for_srid, zone_named
from tests.conftest import RUN_ID, city_client, database_fixtures, engine_on

NY = ZoneInfo("America/New_York")
DISTRICT = "360470"  # Kings County (Brooklyn), as a 6-digit code
WEST, SOUTH, EAST, NORTH = -73.99, 40.64, -73.93, 40.70
LON, LAT = -73.96, 40.67
HOSTILE = "Pacific/Auckland"  # what the server, the database and PGTZ say (UTC+12/+13)


# ------------------------------------------------------------------------------------------ no database
@pytest.mark.parametrize(("srid", "zone"), [(4548, "Asia/Shanghai"), (4547, "Asia/Shanghai"),
                                            (32618, "America/New_York"), (2263, "America/New_York"),
                                            (2193, "Pacific/Auckland"), (3857, "UTC")])
def test_default_zone_comes_from_the_crs_area_of_use(srid, zone):
    assert zone_for_srid(srid)[0] == zone


def test_a_centre_at_sea_takes_the_nearest_land():
    # UTM 33N's area of use is centred in the Adriatic; the nearest land keeps Central European Time.
    name, why = zone_for_srid(32633)
    assert name.startswith("Europe/") and "EPSG:32633" in why
    assert ZoneInfo(name).utcoffset(dt.datetime(2026, 7, 1)) == dt.timedelta(hours=2)


@pytest.mark.parametrize("bad", ["Bad/Zone", "Europe/Berln", "../../etc/passwd", "/etc/localtime", "localtime",
                                 "Europe/Berlin\n", "Europe/Berlin\x00", "EST5EDT,M3.2.0,M11.1.0", "x" * 10_000,
                                 "", None, 5, "Europe/../Europe/Berlin"])
def test_bad_zone_names_are_refused_with_a_clear_message(bad):
    with pytest.raises(InvalidInput) as refused:
        zone_named(bad)
    assert refused.value.field == "timezone" and "IANA" in refused.value.message
    assert len(refused.value.message) < 300


def test_a_misspelt_zone_gets_suggestions():
    with pytest.raises(InvalidInput, match="did you mean Europe/Berlin"):
        zone_named("Europe/Berln")


@pytest.mark.parametrize("name", ["localtime", "posixrules", "Factory"])
def test_a_refused_name_is_never_suggested_back(name):
    with pytest.raises(InvalidInput) as refused:  # it said "unknown time zone 'localtime' (did you mean localtime?)"
        zone_named(name)
    assert "did you mean" not in refused.value.message or f"mean {name}" not in refused.value.message


def test_naive_report_times_are_read_in_the_given_zone_with_daylight_saving():
    base = {"lon": LON, "lat": LAT, "class_code": "0102", "description": "x"}
    summer = parse_report({**base, "reported_at": "2026-07-01T09:15:00"}, zone=NY).reported_at
    winter = parse_report({**base, "reported_at": "2026-01-15T09:15:00"}, zone=NY).reported_at
    assert summer.isoformat() == "2026-07-01T09:15:00-04:00"
    assert winter.isoformat() == "2026-01-15T09:15:00-05:00"
    # An explicit offset is the instant it says, whatever the zone.
    given = parse_report({**base, "reported_at": "2026-07-01T09:15:00+08:00"}, zone=NY).reported_at
    assert given == dt.datetime(2026, 7, 1, 1, 15, tzinfo=dt.UTC)
    # A wall-clock time skipped by the spring change (02:30 on 8 March) is still a time, not an error.
    assert parse_report({**base, "reported_at": "2026-03-08T02:30:00"}, zone=NY).reported_at is not None


@pytest.mark.parametrize(("value", "reason"), [
    ("2026-07-01T09:15:00", "UTC offset"),  # no zone given: never guessed (it used to be +08:00)
    ("0001-01-01T00:00:00+14:00", "before 1990"),
    ("9999-12-31T23:59:59-12:00", "future"),
    ("2026-07-01T09:15:00\x00", "control character"),
    ("2026-02-30T09:00:00", "ISO 8601"),
])
def test_bad_report_times_are_refused(value, reason):
    with pytest.raises(InvalidInput) as refused:
        parse_report({"lon": LON, "lat": LAT, "class_code": "0102", "description": "x", "reported_at": value})
    assert any(d["field"] == "reported_at" and reason in d["reason"] for d in refused.value.details), \
        refused.value.details


def test_a_date_is_a_local_day_even_on_daylight_saving_days():
    assert instant("2026-03-08", NY).isoformat() == "2026-03-08T00:00:00-05:00"
    def hours(first: str, second: str) -> float:  # elapsed time (same-zone subtraction is wall-clock time)
        return (instant(second, NY).astimezone(dt.UTC) - instant(first, NY).astimezone(dt.UTC)) / dt.timedelta(hours=1)

    assert hours("2026-03-08", "2026-03-09") == 23 and hours("2026-11-01", "2026-11-02") == 25
    assert instant("2026-03-08T12:00:00Z", NY).isoformat() == "2026-03-08T08:00:00-04:00"
    # Havana skips midnight itself in spring: the day starts at 01:00.
    havana = ZoneInfo("America/Havana")
    assert day_start(dt.date(2026, 3, 8), havana).hour == 1


def test_working_calendar_hours_are_the_zones_wall_clock():
    calendar = WorkingCalendar().in_zone(NY)
    # Friday 16:30 New York (21:30 UTC) + 2 working hours: 1 h on Friday, Monday 08:30–09:30 New York.
    friday = dt.datetime(2026, 11, 20, 21, 30, tzinfo=dt.UTC)
    assert calendar.add_working_hours(friday, 2) == dt.datetime(2026, 11, 23, 9, 30, tzinfo=NY)
    assert calendar.add_working_days(friday, 1).isoformat() == "2026-11-23T17:30:00-05:00"
    with pytest.raises(ValueError, match="time zone"):
        WorkingCalendar().add_working_hours(friday, 1)



def test_working_hours_across_a_daylight_saving_change_are_real_hours():
    """A night shift 01:00–04:00 on the night New York's clocks go forward (8 March 2026, 02:00 -> 03:00) holds
    two real hours, and on the night they go back (1 November) four. Working time is counted in real hours:
    the wall-clock arithmetic counted three both nights (a deadline an hour early or late)."""
    nights = WorkingCalendar(periods=((dt.time(1), dt.time(4)),), weekend=frozenset(),
                             name="night shift").in_zone(NY)
    spring = dt.datetime(2026, 3, 8, 1, 30, tzinfo=NY)  # 06:30 UTC
    # 1.5 h to 04:00 EDT (08:00 UTC), then 0.5 h from 01:00 EDT on 9 March.
    assert nights.add_working_hours(spring, 2).astimezone(dt.UTC) == dt.datetime(2026, 3, 9, 5, 30, tzinfo=dt.UTC)
    assert nights.add_working_hours(spring, 1).astimezone(dt.UTC) == dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC)
    autumn = dt.datetime(2026, 11, 1, 1, 30, tzinfo=NY)  # the first 01:30 (EDT, 05:30 UTC)
    # 3.5 real hours remain to 04:00 EST (09:00 UTC).
    assert nights.add_working_hours(autumn, 3).astimezone(dt.UTC) == dt.datetime(2026, 11, 1, 8, 30, tzinfo=dt.UTC)
    shown = nights.add_working_hours(autumn, 1)  # 06:30 UTC: the second 01:30, shown with its own offset
    assert shown.astimezone(dt.UTC) == dt.datetime(2026, 11, 1, 6, 30, tzinfo=dt.UTC)
    assert shown.isoformat() == "2026-11-01T01:30:00-05:00"


# ------------------------------------------------------------------------------------------ a New York deployment
@pytest.fixture(scope="module")
def hostile_clock() -> Iterator[None]:
    """The process's TZ and libpq's PGTZ name zones far from New York for the whole module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "Asia/Kolkata")
        patch.setenv("PGTZ", HOSTILE)
        time.tzset()
        yield
    time.tzset()


@pytest.fixture(scope="module")
def new_york(server_settings: Settings, tmp_path_factory: pytest.TempPathFactory,
             hostile_clock: None) -> Iterator[tuple[Settings, str]]:
    """A New York deployment made by ``citygrid db init --srid 32618`` (zone not given: derived), with a
    district square in Brooklyn; the database's own TimeZone setting says Pacific/Auckland. Yields the settings
    and what ``db init`` printed."""
    settings = replace(server_settings, database=f"citygrid_test_ny_{RUN_ID}")
    db.drop_database(settings)
    try:
        made = CliRunner().invoke(cli, ["--database", settings.database, "db", "init", "--srid", "32618",
                                        "--name", "New York test"])
        assert made.exit_code == 0, made.output
        boundary = tmp_path_factory.mktemp("ny") / "brooklyn.geojson"
        boundary.write_text(json.dumps({"type": "FeatureCollection", "features": [{
            "type": "Feature", "properties": {"name": "Brooklyn"},
            "geometry": {"type": "Polygon", "coordinates": [[[WEST, SOUTH], [EAST, SOUTH], [EAST, NORTH],
                                                             [WEST, NORTH], [WEST, SOUTH]]]}}]}))
        with engine_on(settings) as engine, engine.begin() as conn:
            import_district(conn, read_vector(boundary), code=DISTRICT, name="Brooklyn (test)",
                            source="test square", licence="CC0")
            conn.execute(sa.text(f"ALTER DATABASE {settings.database} SET timezone = '{HOSTILE}'"))
        yield settings, made.output
    finally:
        db.drop_database(settings)


@pytest.fixture(scope="module")
def ny_db(new_york: tuple[Settings, str]) -> Settings:
    return new_york[0]


# Connections that ask for Pacific/Auckland in their own connect options too.
ny_engine, ny = database_fixtures("ny_db", "ny", connect_args={"options": f"-c TimeZone={HOSTILE}"})


@pytest.fixture
def ny_client(ny: Connection, ny_db: Settings):
    return city_client(ny, ny_db, "ny-admin")


def test_db_init_derives_and_prints_the_zone(new_york):
    printed = new_york[1]
    assert '"timezone": "America/New_York"' in printed
    assert "time zone: America/New_York (derived from the centre (75.0°W, 42.0°N)" in printed
    assert "--timezone" in printed
    shown = CliRunner().invoke(cli, ["--database", new_york[0].database, "status", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["timezone"] == "America/New_York", shown.output


def test_beijing_deployments_record_shanghai_time(bj, beijing_db):
    assert db.deployment_zone(bj) == ZoneInfo("Asia/Shanghai")
    again = CliRunner().invoke(cli, ["--database", beijing_db.database, "db", "init"])
    assert again.exit_code == 0, again.output
    assert "time zone: Asia/Shanghai (recorded)" in again.output


def test_db_init_refuses_a_bad_zone_before_creating_anything(server_settings):
    name = f"citygrid_test_badtz_{RUN_ID}"
    refused = CliRunner().invoke(cli, ["--database", name, "db", "init", "--srid", "32618",
                                       "--timezone", "Bad/Zone"])
    assert refused.exit_code == 2, refused.output
    assert "unknown time zone 'Bad/Zone'" in refused.output and "Traceback" not in refused.output
    assert not db.database_exists(replace(server_settings, database=name))
    hostile = CliRunner().invoke(cli, ["--database", name, "db", "init", "--srid", "32618",
                                       "--timezone", "Europe/Berlin\x1b[2J"])
    assert hostile.exit_code == 2 and "\x1b" not in hostile.output, hostile.output
    assert not db.database_exists(replace(server_settings, database=name))


def test_sessions_run_in_the_deployment_zone_whatever_else_says(ny):
    assert ny.execute(sa.text("SHOW TimeZone")).scalar_one() == "America/New_York"
    assert ny.execute(sa.text("SELECT CAST('2026-07-01' AS timestamptz)")).scalar_one() == \
        dt.datetime(2026, 7, 1, 4, 0, tzinfo=dt.UTC)
    assert time.localtime().tm_gmtoff == 19800  # the process itself is in Asia/Kolkata


def test_naive_report_time_is_new_york_time_and_answers_carry_its_offset(ny_client):
    made = {}
    for label, when in (("summer", "2026-07-01T09:15:00"), ("winter", "2026-01-15T09:15:00")):
        answer = ny_client.post("/api/v1/cases", json={"lon": LON, "lat": LAT, "class_code": "0102",
                                                       "description": f"{label} litter", "reported_at": when})
        assert answer.status_code == 201, answer.get_json()
        made[label] = answer.get_json()["case"]
    assert made["summer"]["reported_at"] == "2026-07-01T09:15:00-04:00"
    assert made["winter"]["reported_at"] == "2026-01-15T09:15:00-05:00"
    read = ny_client.get(f"/api/v1/cases/{made['summer']['case_id']}").get_json()
    assert read["reported_at"] == "2026-07-01T09:15:00-04:00"
    listed = ny_client.get(f"/api/v1/cases?district={DISTRICT}").get_json()
    assert sorted(c["reported_at"][-6:] for c in listed["cases"]) == ["-04:00", "-05:00"]


def test_open311_answers_carry_the_deployments_offset(ny_client):
    answer = ny_client.post("/api/v1/cases", json={"lon": LON, "lat": LAT, "class_code": "0102", "source": "open311",
                                                   "description": "overflowing bin"})
    assert answer.status_code == 201, answer.get_json()
    published = ny_client.get(f"/open311/v2/requests/{answer.get_json()['case']['case_id']}.json")
    assert published.status_code == 200, published.get_json()
    requested = dt.datetime.fromisoformat(published.get_json()[0]["requested_datetime"])
    assert requested.utcoffset() == dt.datetime.now(NY).utcoffset()


def test_a_one_day_period_is_one_new_york_day(ny_client):
    for i, when in enumerate(("2026-02-28T23:30:00", "2026-03-01T00:30:00", "2026-03-01T23:30:00",
                              "2026-03-02T00:30:00")):  # 170 m apart: not duplicates of one another
        answer = ny_client.post("/api/v1/cases", json={"lon": LON + 0.002 * i, "lat": LAT, "class_code": "0102",
                                                       "description": f"at {when}", "reported_at": when})
        assert answer.status_code == 201, answer.get_json()
    day = ny_client.get(f"/api/v1/cases?district={DISTRICT}&start=2026-03-01&end=2026-03-01").get_json()
    assert sorted(c["description"] for c in day["cases"]) == ["at 2026-03-01T00:30:00", "at 2026-03-01T23:30:00"]
    # A date-time without an offset is New York time too; one with an offset is that instant.
    late = ny_client.get(f"/api/v1/cases?district={DISTRICT}&start=2026-03-01T23:00:00&end=2026-03-02").get_json()
    assert sorted(c["description"] for c in late["cases"]) == ["at 2026-03-01T23:30:00", "at 2026-03-02T00:30:00"]
    utc = ny_client.get(f"/api/v1/cases?district={DISTRICT}&start=2026-03-01T05:00:00Z&end=2026-03-01T06:00:00Z")
    assert [c["description"] for c in utc.get_json()["cases"]] == ["at 2026-03-01T00:30:00"]
    feed = ny_client.get("/open311/v2/requests.json?start_date=2026-03-01&end_date=2026-03-01")
    assert feed.status_code == 200


@pytest.mark.parametrize("query", ["start=2026-03-02&end=2026-03-01", "start=2026-13-01", "end=not-a-date",
                                   "end=9999-12-31", "start=2026-03-01T25:00:00",
                                   "start=2026-03-01%00"])
def test_bad_periods_are_refused(ny_client, query):
    answer = ny_client.get(f"/api/v1/cases?district={DISTRICT}&{query}")
    assert answer.status_code == 400, (query, answer.get_json())
    assert answer.get_json()["error"] and "Traceback" not in answer.get_data(as_text=True)


def test_bulk_imports_read_naive_times_in_the_zone(ny):
    result = history.insert_reports(ny, [
        {"lon": LON, "lat": LAT, "kind": "event", "class_code": "0102", "description": "historic",
         "reported_at": "2026-07-04T12:00:00", "status": "closed", "idempotency_key": "ny-tz-1"}])
    assert result.imported == 1, result.problems
    stored = ny.execute(sa.text("SELECT reported_at FROM cases WHERE description = 'historic'")).scalar_one()
    assert stored == dt.datetime(2026, 7, 4, 16, 0, tzinfo=dt.UTC)
    assert stored.isoformat() == "2026-07-04T12:00:00-04:00"


def test_dispatch_deadlines_follow_new_york_working_hours(case_rules, ny):
    # The square district has no grids or owners: the case goes to a department named by an override.
    ny.execute(sa.text("INSERT INTO parties (district_code, kind, code, name) "
                       "VALUES (:d, 'department', 'DSNY', 'Sanitation')"), {"d": DISTRICT})
    case, _ = service.submit(ny, case_rules,
                             parse_report({"lon": LON, "lat": LAT, "class_code": "0102", "description": "bin"},
                                          zone=NY))
    service.transition(ny, case_rules, case["case_id"], "accept", actor="a", role="acceptor")
    to_dsny = DispatchRules(overrides={"event/0102": {"kind": "department", "code": "DSNY"}})
    rules = replace(case_rules, dispatch=to_dsny,
                    deadlines=DeadlineTable(defaults={}, classes={"event/0102": DeadlineRule(working_hours=4)}),
                    calendar=WorkingCalendar())
    case = service.transition(ny, rules, case["case_id"], "dispatch", actor="d", role="dispatcher")
    assert case["attrs"]["dispatched_to"]["code"] == "DSNY"
    now = ny.execute(sa.text("SELECT now()")).scalar_one()
    assert case["deadline_at"] == WorkingCalendar(zone=NY).add_working_hours(now, 4)
    local = case["deadline_at"].astimezone(NY)
    assert dt.time(8, 30) <= local.time() <= dt.time(17, 30) and local.weekday() < 5
    assert case["deadline_at"].utcoffset() == local.utcoffset()


def test_month_bins_and_tile_labels_are_local(case_rules, ny):
    # 22:00 on 31 March in New York is already April in UTC (and in Beijing).
    case, _ = service.submit(ny, case_rules,
                             parse_report({"lon": LON, "lat": LAT, "class_code": "0102", "description": "late",
                                           "reported_at": "2026-03-31T22:00:00"}, zone=NY))
    assert case_store.case_months(ny, DISTRICT, NY) == ["2026-03"]
    import mapbox_vector_tile

    z = 13
    x = int((LON + 180) / 360 * 2 ** z)
    y = int((1 - math.asinh(math.tan(math.radians(LAT))) / math.pi) / 2 * 2 ** z)
    data = tiles.make_tile(ny, tiles.layer("cases"), z, x, y, db.deployment_srid(ny), {})
    features = mapbox_vector_tile.decode(data)["cases"]["features"]
    labels = {f["properties"]["case_id"]: f["properties"]["reported"] for f in features}
    assert labels[case["case_id"]] == "2026-03-31 22:00"


def test_a_backup_restored_where_another_zone_is_recorded_keeps_every_instant(case_rules, ny, tmp_path):
    """A restore refuses another SRID (coordinates would be wrong) but not another time zone: times are
    stored and copied as instants with their offsets (COPY writes ``2026-11-01 01:30:00-05``), so a backup of a
    New York district restored into a deployment that records Asia/Tokyo holds the same instants; only how
    they are shown and read follows the restoring deployment's zone."""
    from citygrid import backup

    reported = "2026-11-01T01:30:00-05:00"  # the second 01:30 of the night the clocks go back
    case, _ = service.submit(ny, case_rules,
                             parse_report({"lon": LON, "lat": LAT, "class_code": "0102", "description": "x",
                                           "reported_at": reported}, zone=NY))
    path = tmp_path / "ny.zip"
    backup.backup(ny, DISTRICT, path)
    ny.execute(sa.text("UPDATE deployment SET timezone = 'Asia/Tokyo'"))
    ny.execute(sa.text("SET LOCAL TimeZone = 'Asia/Tokyo'"))
    backup.restore(ny, path, replace=True)
    at = ny.execute(sa.text("SELECT reported_at FROM cases WHERE case_id = :id"), {"id": case["case_id"]}).scalar()
    assert at == dt.datetime.fromisoformat(reported) and at.isoformat() == "2026-11-01T15:30:00+09:00"
    assert backup.read_manifest(path)["checksum_timezone"] == "America/New_York"
    for hostile in ("../../etc/passwd", "Mars/Olympus_Mons", ["UTC"]):  # a manifest's zone is not trusted
        with zipfile.ZipFile(path) as original:
            files = {n: original.read(n) for n in original.namelist()}
        manifest = json.loads(files["manifest.json"])
        files["manifest.json"] = json.dumps({**manifest, "checksum_timezone": hostile}).encode()
        forged = tmp_path / "forged.zip"
        with zipfile.ZipFile(forged, "w") as out:
            for name, data in files.items():
                out.writestr(name, data)
        with pytest.raises(InvalidInput, match="checksum_timezone"), ny.begin_nested():
            backup.restore(ny, forged, replace=True)


def test_db_init_can_correct_the_recorded_zone(new_york):
    settings = new_york[0]
    try:
        moved = CliRunner().invoke(cli, ["--database", settings.database, "db", "init", "--timezone", "Europe/Berlin"])
        assert moved.exit_code == 0, moved.output
        assert "time zone: Europe/Berlin (given (was America/New_York))" in moved.output
        with engine_on(settings) as berlin, berlin.connect() as conn:  # new sessions run in the new zone
            assert conn.execute(sa.text("SELECT CAST('2026-07-01T09:00:00Z' AS timestamptz)")).scalar_one() \
                .isoformat() == "2026-07-01T11:00:00+02:00"  # stored instants stay
    finally:
        back = CliRunner().invoke(cli, ["--database", settings.database, "db", "init", "--timezone",
                                        "America/New_York"])
        assert back.exit_code == 0, back.output


def test_the_zone_is_recorded_by_the_migration_for_every_deployment(ny, bj):
    assert db.deployment_info(ny)["timezone"] == "America/New_York"
    assert db.deployment_info(bj)["timezone"] == "Asia/Shanghai"
    with pytest.raises(sa.exc.IntegrityError), ny.begin_nested():
        ny.execute(sa.text("UPDATE deployment SET timezone = '../../etc/passwd'"))



def test_grid_effective_dates_are_local_midnight(ny):
    from citygrid.gridding import service as gridding
    from citygrid.gridding.generate import GridParams

    params = GridParams(target_area_m2=4_000_000, min_area_m2=500_000)
    first = gridding.generate(ny, DISTRICT, params)
    gridding.partition(ny, DISTRICT, 2, 1)
    published = gridding.publish(ny, DISTRICT, first["version"], effective_from=dt.date(2026, 3, 8))
    assert published["effective_from"] == "2026-03-08T00:00:00-05:00"
    stored = ny.execute(sa.text("SELECT effective_from FROM grid_versions WHERE district_code = :d "
                                "AND version_id = :v"), {"d": DISTRICT, "v": first["version"]}).scalar_one()
    assert stored == dt.datetime(2026, 3, 8, 5, 0, tzinfo=dt.UTC)
    second = gridding.generate(ny, DISTRICT, params)
    gridding.partition(ny, DISTRICT, 2, 1)
    # A wall-clock time before the first version took effect: a clear refusal (it was a TypeError comparing a
    # naive with an aware time).
    with pytest.raises(InvalidInput, match="effective_from must be after 2026-03-08T00:00:00-05:00"):
        gridding.publish(ny, DISTRICT, second["version"], effective_from=dt.datetime(2026, 3, 7, 23, 30))
    later = gridding.publish(ny, DISTRICT, second["version"], effective_from=dt.datetime(2026, 7, 1, 9, 0))
    assert later["effective_from"] == "2026-07-01T09:00:00-04:00"


def test_a_deployment_made_before_zones_gets_one_from_its_crs(server_settings):
    from alembic import command

    from citygrid import deploy

    settings = replace(server_settings, database=f"citygrid_test_tz0011_{RUN_ID}")
    db.drop_database(settings)
    db.create_database(settings)
    try:
        with engine_on(settings) as engine, engine.begin() as conn:  # as a deployment of UTM 33N was left before #19
            command.upgrade(db.alembic_config(conn, srid=32633, deployment_name="old"), "0011")
        migrated = deploy.init_deployment(settings, None)
        assert migrated["timezone"] == zone_for_srid(32633)[0] and migrated["timezone"].startswith("Europe/")
        assert migrated["timezone_source"].startswith("derived from the centre (15.0°E, 42.0°N)")
        again = deploy.init_deployment(settings, None)
        assert again["timezone"] == migrated["timezone"] and again["timezone_source"] == "recorded"
    finally:
        db.drop_database(settings)

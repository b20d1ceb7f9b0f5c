"""Session-wide real PostGIS, a fresh database built by the migrations, and a rollback per test.

The embedded cluster is started (or reused); with ``DATABASE_URL`` the suite runs on that server instead.
If PostGIS cannot start, every database test fails with the reason: nothing is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Literal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from citygrid import deploy
from citygrid.cases.rules import CaseRules
from citygrid.config import Settings
from citygrid.spatial import db
from citygrid.spatial.cluster import EmbeddedCluster
from citygrid.webmap.context import Backend

RUN_ID = os.getpid()


@pytest.fixture(scope="session")
def server_settings() -> Settings:
    """Settings for the server under test; starts the embedded cluster unless DATABASE_URL is set."""
    settings = Settings.from_env()
    settings = replace(settings, database=None)
    if not settings.database_url:
        EmbeddedCluster(settings).start()
    return settings


@pytest.fixture(scope="session")
def case_rules() -> CaseRules:
    """The case rules of the configured data directory (``data/`` unless ``CITYGRID_DATA_DIR``), read once,
    as the app and the CLI read them; tests that need other rules pass ``dataclasses.replace(case_rules, …)``."""
    return CaseRules.load(Settings.from_env().data_dir)


@contextmanager
def fresh_database(server: Settings, name: str, srid: int, deployment: str = "test") -> Iterator[Settings]:
    """A new database built by the migrations; dropped afterwards."""
    settings = replace(server, database=name)
    db.drop_database(settings)
    deploy.init_deployment(settings, srid, deployment)
    try:
        yield settings
    finally:
        db.drop_database(settings)


@pytest.fixture(scope="session")
def beijing_db(server_settings: Settings) -> Iterator[Settings]:
    """A Beijing deployment (EPSG:4548) with the Chaoyang demo loaded once, committed."""
    with fresh_database(server_settings, f"citygrid_test_bj_{RUN_ID}", 4548, "北京市 test") as settings:
        deploy.load_demo(settings, "chaoyang", history=False, census=False)
        yield settings


@pytest.fixture(scope="session")
def zhengzhou_db(server_settings: Settings) -> Iterator[Settings]:
    """A Zhengzhou deployment (EPSG:4547) with the Guancheng demo (with OSM roads) loaded once."""
    with fresh_database(server_settings, f"citygrid_test_zz_{RUN_ID}", 4547, "郑州市 test") as settings:
        deploy.load_demo(settings, "guancheng", history=False, census=False)
        yield settings


@contextmanager
def engine_on(settings: Settings, **kwargs: object) -> Iterator[Engine]:
    """An engine on ``settings``' database (``kwargs`` go to ``db.make_engine``), disposed when the block ends, so
    no pooled connection outlives it into a ``DROP DATABASE``."""
    engine = db.make_engine(db.database_url(settings), **kwargs)
    try:
        yield engine
    finally:
        engine.dispose()


def database_fixtures(settings_fixture: str, name: str, *, engine: str | None = None,
                      scope: Literal["module", "session"] = "module",
                      **engine_kwargs: object):
    """The two fixtures every test city's database needs, made here once instead of written again per city.

    Parameters
    ----------
    settings_fixture : the fixture that makes the database and returns its ``Settings``.
    name : the per-test connection fixture: a transaction rolled back after the test.
    engine : the engine fixture (default ``<name>_engine``), one per ``scope``, disposed before the database is
        dropped; ``engine_kwargs`` go to ``db.make_engine`` (e.g. ``connect_args``).

    Returns
    -------
    (engine fixture, connection fixture): bind both in the test module, under their names:
    ``nyc_engine, nyc = database_fixtures("nyc_db", "nyc")``.
    """

    @pytest.fixture(scope=scope, name=engine or f"{name}_engine")
    def engine_fixture(request: pytest.FixtureRequest) -> Iterator[Engine]:
        with engine_on(request.getfixturevalue(settings_fixture), **engine_kwargs) as made:
            yield made

    @pytest.fixture(name=name)
    def connection_fixture(request: pytest.FixtureRequest) -> Iterator[Connection]:
        with db.rolled_back(request.getfixturevalue(engine or f"{name}_engine")) as conn:
            yield conn

    return engine_fixture, connection_fixture


# bj / zz: a connection to the Beijing / Zhengzhou test database inside a transaction rolled back after the test.
beijing_engine, bj = database_fixtures("beijing_db", "bj", engine="beijing_engine", scope="session")
zhengzhou_engine, zz = database_fixtures("zhengzhou_db", "zz", engine="zhengzhou_engine", scope="session")


def rollback_backend(conn: Connection, database: str) -> Backend:
    """A web backend whose request transactions are savepoints inside the test's transaction."""

    @contextmanager
    def connect() -> Iterator[Connection]:
        savepoint = conn.begin_nested()
        try:
            yield conn
        except Exception:
            savepoint.rollback()
            raise
        else:
            savepoint.commit()

    return Backend(engine=None, connect=connect, database=database)


def rolled_back_app(conn: Connection, settings: Settings):
    """The web app on ``settings``' database whose requests run in savepoints of ``conn``'s transaction (rolled
    back with the test)."""
    from citygrid.app import create_app

    return create_app({"CITYGRID_BACKEND": rollback_backend(conn, settings.database or ""), "TESTING": True})


def user_token(conn: Connection, username: str, roles: list[str], team: str | None = None,
               party: str | None = None) -> str:
    """Add a user (in the caller's transaction) and return a new API token of theirs."""
    from citygrid.accounts import service as accounts

    accounts.add_user(conn, username, roles, team=team, party=party, password="correct horse battery")
    return accounts.issue_token(conn, username, label="test")["token"]


@pytest.fixture(scope="session")
def beijing_admin_token(beijing_engine: Engine) -> str:
    """A committed admin of the Beijing test database (for tests that run a real server or commit)."""
    with beijing_engine.begin() as conn:
        return user_token(conn, "committed-admin", ["admin"])


class LiveServer(str):
    """A running server's base URL (``http://127.0.0.1:PORT``), carrying the ``settings`` of the database it
    serves and the Flask ``app`` it runs (whose ``extensions`` tests may read, e.g. what a client sent)."""

    settings: Settings
    app: object


@contextmanager
def serving(app, settings: Settings) -> Iterator[LiveServer]:
    """Serve ``app`` with werkzeug's threaded server on 127.0.0.1 and a free port for the block; yields its base
    URL. Real HTTP for real clients (Chromium, GDAL, QGIS); the app's engine is disposed afterwards, so none of
    its pooled connections outlives the server into a ``DROP DATABASE``."""
    import threading

    from werkzeug.serving import make_server

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = LiveServer(f"http://127.0.0.1:{httpd.server_port}")
    url.settings, url.app = settings, app
    try:
        yield url
    finally:
        httpd.shutdown()
        httpd.server_close()
        engine = app.extensions["citygrid"].engine
        if engine is not None:
            engine.dispose()


@pytest.fixture(scope="session")
def live_server(beijing_db: Settings) -> Iterator[LiveServer]:
    """A real HTTP server of the app over the Beijing test database (the Chaoyang demo's committed grids, teams,
    streets and communities; no census and no cases unless a test commits some and removes them): yields its
    base URL, e.g. ``http://127.0.0.1:PORT`` (``.settings`` is the database's). Clients sign in with
    ``Authorization: Bearer <ogc_token>``."""
    from citygrid.app import create_app

    with serving(create_app({"CITYGRID_SETTINGS": beijing_db}), beijing_db) as url:
        yield url


@pytest.fixture(scope="session")
def ogc_token(beijing_engine: Engine) -> str:
    """A bearer token of a committed account of the Beijing test database that may read every collection of
    ``/ogc``, cases included (an admin: every district, every case)."""
    with beijing_engine.begin() as conn:
        return user_token(conn, "ogc-reader", ["admin"])


def signed_in(test_client, token: str):
    """The Flask test client sending ``token`` as its bearer token on every request."""
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return test_client


def city_client(conn: Connection, settings: Settings, username: str, roles: tuple[str, ...] = ("admin",)):
    """A test client of ``settings``' database, its requests in savepoints of ``conn``'s transaction, signed in as
    a new user ``username`` with ``roles`` (added in that transaction, so rolled back with the test)."""
    return signed_in(rolled_back_app(conn, settings).test_client(), user_token(conn, username, list(roles)))


@pytest.fixture
def anonymous_client(bj: Connection, beijing_db: Settings):
    """Flask test client on the Beijing test database (rolled back after the test), not signed in."""
    return rolled_back_app(bj, beijing_db).test_client()


@pytest.fixture
def client_as(bj: Connection, beijing_db: Settings):
    """``client_as(username, roles, team=None, party=None)``: a test client signed in (bearer token) as a new
    user."""
    app = rolled_back_app(bj, beijing_db)

    def make(username: str, roles: list[str], team: str | None = None, party: str | None = None):
        return signed_in(app.test_client(), user_token(bj, username, roles, team, party))
    return make


@pytest.fixture
def app_of(bj: Connection, beijing_db: Settings):
    """The app on the Beijing test database's rolled-back connection (for anonymous test clients)."""
    return rolled_back_app(bj, beijing_db)


@pytest.fixture
def account(client_as):
    """``account(name, roles, team=None, party=None)``: ``client_as`` under the name the #21 tests use."""
    return client_as


@pytest.fixture
def client(client_as):
    """Flask test client on the Beijing test database (rolled back after the test), signed in as an admin."""
    return client_as("test-admin", ["admin"])


def team_of(bj: Connection, supervision_code: str) -> str:
    """The team patrolling supervision grid ``supervision_code``."""
    return bj.execute(sa.text("SELECT team_code FROM supervision_grids WHERE code = :c"),
                      {"c": supervision_code}).scalar_one()


def other_team(bj: Connection, team: str, district: str = "110105") -> str:
    """Another team of ``district`` than ``team`` (a supervisor who must not see the first team's cases)."""
    return bj.execute(sa.text("SELECT code FROM supervision_teams WHERE code <> :t AND district_code = :d "
                              "ORDER BY code LIMIT 1"), {"t": team, "d": district}).scalar_one()


def other_party(bj: Connection, party: str, district: str = "110105") -> str:
    """A street office of ``district`` other than ``party`` (a unit that must not see the first party's cases)."""
    return bj.execute(sa.text("SELECT code FROM parties WHERE district_code = :d AND code <> :p "
                              "AND kind = 'street_office' ORDER BY code LIMIT 1"), {"p": party, "d": district}
                      ).scalar_one()


def server_errors(app, document: str, token: str, examples: int,
                  excused: Callable[[Any, Any], bool] = lambda case, answer: False) -> tuple[int, list[str]]:
    """Fuzz every operation of the OpenAPI ``document`` served by ``app`` with schemathesis (values that follow
    the schema and malformed ones), each request once with ``token`` as its Authorization header and once
    with none; answer (operations, failures), a failure being any 5xx that ``excused(case, answer)`` does not
    explain."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    api = schemathesis.openapi.from_wsgi(document, app)
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def probe(case) -> None:
            for who, headers in (("signed in", {"Authorization": token}), ("anonymous", {"Authorization": ""})):
                answer = case.call(headers=headers)
                if answer.status_code >= 500 and not excused(case, answer):
                    failures.append(f"{who} {case.method} {case.formatted_path} {case.query} -> "
                                    f"{answer.status_code}: {answer.text[:200]}")

        probe()
    return operations, failures


def team_grid_points(bj: Connection, n: int, district: str | None = None) -> list[tuple[str, str, float, float]]:
    """(unit grid, team, lon, lat) of a point inside the first unit grid of ``n`` different teams (of
    ``district``, or of any), the point in EPSG:4326."""
    rows = bj.execute(sa.text(
        """SELECT DISTINCT ON (s.team_code) u.code, s.team_code,
                  ST_X(ST_Transform(ST_PointOnSurface(u.geom), 4326)),
                  ST_Y(ST_Transform(ST_PointOnSurface(u.geom), 4326))
             FROM unit_grids u JOIN supervision_grids s ON s.district_code = u.district_code
                  AND s.version_id = u.version_id AND s.code = u.supervision_code
            WHERE CAST(:d AS text) IS NULL OR u.district_code = :d
            ORDER BY s.team_code, u.code LIMIT :n"""), {"d": district, "n": n}).all()
    return [tuple(r) for r in rows]


def submitted_case(bj: Connection, case_rules, *, lon: float, lat: float, class_code: str = "0102",
                   source: str = "supervisor", description: str = "test case", **extra) -> dict:
    """A new case made through intake (``cases.service.submit``) at a point (WGS84) on connection ``bj``; fails
    the test when the report joined an open duplicate instead (give another class or point)."""
    from citygrid.cases import service
    from citygrid.cases.intake import parse_report

    body = {"lon": lon, "lat": lat, "kind": "event", "class_code": class_code, "description": description,
            "source": source, **extra}
    case, outcome = service.submit(bj, case_rules, parse_report(body))
    assert outcome == "created", outcome
    return case


def assert_error(response, status: int, code: str, *, field: str | None = None, reason: str | None = None) -> dict:
    """Assert that ``response`` is the JSON error ``{"error": code, "message": …, "details": […]}`` with ``status``.

    With ``field``, one of the details names that field (an input problem's shape, ``citygrid.errors.problem``);
    with ``reason``, the message or that field's reason contains those words. Returns the body."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert set(body) == {"error", "message", "details"}, body
    assert body["error"] == code and body["message"], body
    named = [d for d in body["details"] if d.get("field") == field]
    assert field is None or named, body
    if reason is not None:
        texts = [body["message"], *(d.get("reason", "") for d in (named if field else body["details"]))]
        assert any(reason in text for text in texts), body
    return body

"""Connections, database creation, migrations and the deployment record.

A deployment is one city: one database whose storage CRS (a projected CRS, for Chinese cities a CGCS2000
3-degree Gauss–Krüger zone) is chosen once at ``init`` and recorded in the ``deployment`` table.
The embedded cluster is used unless ``DATABASE_URL`` names an existing PostGIS server.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection, Engine, make_url

from citygrid.config import DEFAULT_DATABASE, Settings
from citygrid.errors import InvalidInput, SchemaMismatch, Unavailable
from citygrid.spatial.cluster import EmbeddedCluster

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Who the audit log names for writes on connections of this process when nothing more precise is set
# (the CLI sets ``cli:<os user>``; the web app names the signed-in user per transaction).
DEFAULT_ACTOR: str | None = None
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@functools.lru_cache(maxsize=1024)
def statement(sql: str) -> sa.TextClause:
    """``sa.text(sql)``, made once per process for each text: a store's statements are the same text on every
    call, and reading their bound parameters out of it again (a regular expression over the text, then a
    parameter object each) took 0.45 ms of each grid edit's 9 (statements are immutable: threads share them)."""
    return sa.text(sql)


def validate_database_name(name: str) -> str:
    """Return ``name`` if it is a plain lower-case PostgreSQL identifier, else raise ``InvalidInput``."""
    if not _DB_NAME.match(name or ""):
        raise InvalidInput(
            f"database name {name!r} must be lower-case letters, digits and '_' (max 63), not starting with a digit",
            field="database",
        )
    return name


def database_url(settings: Settings) -> URL:
    """SQLAlchemy URL of the deployment database (``DATABASE_URL`` or the embedded cluster's socket)."""
    if settings.database_url:
        url = make_url(settings.database_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        if settings.database:
            url = url.set(database=validate_database_name(settings.database))
        return url
    name = validate_database_name(settings.database or DEFAULT_DATABASE)
    return make_url(EmbeddedCluster(settings).socket_url(name))


def libpq_url(url: URL) -> str:
    """``url`` as a connection URI libpq (psql, pg_dump) accepts: ``postgresql://`` without SQLAlchemy's
    ``+psycopg``, the password kept, the query (e.g. ``host=/path/run&port=…`` for a socket) percent-encoded.

    Every part is percent-encoded by hand: SQLAlchemy's rendering leaves a space in the password raw (libpq
    refuses it) and writes one in the query as ``+``, which libpq keeps as a plus (a socket folder with a
    space became another folder)."""
    from urllib.parse import quote

    def part(text: object) -> str:
        return quote(str(text), safe="")

    auth = ""
    if url.username is not None:
        auth = part(url.username) + (f":{part(url.password)}" if url.password is not None else "") + "@"
    host = url.host or ""
    host = f"[{host}]" if ":" in host else part(host)
    port = f":{url.port}" if url.port is not None else ""
    database = f"/{part(url.database)}" if url.database else ""
    query = "&".join(f"{part(key)}={part(value)}" for key, values in url.query.items()
                     for value in ((values,) if isinstance(values, str) else values))
    return f"postgresql://{auth}{host}{port}{database}{'?' + query if query else ''}"


def make_engine(url: URL | str, **kwargs: object) -> Engine:
    """Engine with liveness checks on checkout, so a restarted server does not break a long-running app.

    Sessions run with ``jit = off``: PostgreSQL compiles any query whose *estimated* cost passes
    ``jit_above_cost``, and lookups with correlated sub-selects are estimated high while running in far less
    than a millisecond: the compilation then took most of every tile and report request (figures in README,
    Benchmarks)."""
    connect_args = dict(kwargs.pop("connect_args", None) or {})  # type: ignore[arg-type]
    options = str(connect_args.get("options", "")) + " -c jit=off"
    if DEFAULT_ACTOR and re.fullmatch(r"[A-Za-z0-9_.:@-]{1,100}", DEFAULT_ACTOR):
        options += f" -c citygrid.actor={DEFAULT_ACTOR}"
    connect_args["options"] = options.strip()
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)
    sa.event.listen(engine, "connect", _session_in_deployment_zone)
    return engine


def _session_in_deployment_zone(dbapi_connection: Any, _record: object) -> None:
    """Run every session in the deployment's time zone (``deployment.timezone``), whatever the server's,
    database's, role's, ``PGTZ``'s or connect options' ``TimeZone`` is: casts of times without an offset,
    ``::date`` and the offsets of the times psycopg returns then follow the city, not the machine. Databases
    without the record (``postgres``, one not migrated yet) keep the server's setting."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        with dbapi_connection.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('deployment') "
                        "AND attname = 'timezone' AND NOT attisdropped")
            if cur.fetchone() is not None:
                cur.execute("SELECT set_config('TimeZone', timezone, false) FROM deployment")
    finally:
        dbapi_connection.autocommit = autocommit


@contextmanager
def maintenance_connection(settings: Settings) -> Iterator[Connection]:
    """Autocommit connection to the server's ``postgres`` database (to create or drop databases)."""
    url = database_url(settings).set(database="postgres")
    engine = make_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    except sa.exc.OperationalError as exc:
        raise Unavailable(f"cannot reach PostgreSQL at {url.render_as_string(hide_password=True)}: {exc.orig}") from exc
    finally:
        engine.dispose()


def database_exists(settings: Settings) -> bool:
    with maintenance_connection(settings) as conn:
        name = database_url(settings).database
        return conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is not None


def create_database(settings: Settings) -> bool:
    """Create the deployment database if missing. Returns True when it was created now."""
    name = validate_database_name(database_url(settings).database or "")
    if database_exists(settings):
        return False
    with maintenance_connection(settings) as conn:
        # Identifiers cannot be bound; the name was validated against a strict pattern above.
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\''))
    return True


def drop_database(settings: Settings) -> None:
    """Drop the deployment database (tests and ``db drop``); terminates other sessions first."""
    name = validate_database_name(database_url(settings).database or "")
    with maintenance_connection(settings) as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def alembic_config(connection: Connection | None = None, **attributes: object) -> Config:
    """Alembic configuration pointing at the packaged migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    cfg.attributes.update(attributes)
    return cfg


def head_revision() -> str:
    """The newest migration revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def current_revision(conn: Connection) -> str | None:
    """The revision recorded in the database (None when no migration has run)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, srid: int, name: str, timezone: str | None = None) -> None:
    """Apply every migration up to head in one transaction; ``srid`` fixes the geometry columns' CRS and
    ``timezone`` (an IANA name; None: derived from ``srid``) the time zone of a deployment that has none."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn, srid=srid, deployment_name=name, timezone=timezone), "head")


def check_schema(engine: Engine) -> str:
    """Return the schema revision, or raise when the code must not run on it.

    Raises
    ------
    Unavailable : the database cannot be reached.
    SchemaMismatch : no migrations applied, an unknown revision (newer code wrote it), or an old one.
    """
    try:
        with engine.connect() as conn:
            revision = current_revision(conn)
    except sa.exc.OperationalError as exc:
        raise Unavailable(f"database unreachable: {exc.orig}") from exc
    if revision is None:
        raise SchemaMismatch("the database has no citygrid schema; run `citygrid db init --srid EPSG` first")
    if revision not in known_revisions():
        raise SchemaMismatch(
            f"database schema revision {revision} is unknown to citygrid {head_revision()}-era code; "
            "upgrade citygrid or point it at the right database"
        )
    if revision != head_revision():
        raise SchemaMismatch(
            f"database schema revision {revision} is older than {head_revision()}; run `citygrid db init` to migrate"
        )
    return revision


def warm_session(conn: Connection) -> None:
    """Set a new database session up for spatial work: one coordinate transformation through web mercator and
    geographic coordinates (the session's PROJ context and its transformation cache)."""
    conn.execute(sa.text("SELECT ST_Transform(ST_Transform(ST_Transform(ST_Centroid(geom), 4326), 3857), "
                         "ST_SRID(geom)) FROM districts LIMIT 1")).all()


def deployment_info(conn: Connection) -> dict[str, object]:
    """The deployment record: ``name``, ``srid``, ``created_at``, ``timezone`` (and whatever later revisions
    add; a database not yet migrated to head lacks those)."""
    row = conn.execute(sa.text("SELECT * FROM deployment")).mappings().first()
    if row is None:
        raise SchemaMismatch("deployment record missing; run `citygrid db init`")
    return dict(row)


def deployment_srid(conn: Connection) -> int:
    """EPSG code of the storage CRS of this deployment."""
    return int(deployment_info(conn)["srid"])


def deployment_code_scheme(conn: Connection) -> str:
    """Name of the deployment's code scheme (``cn-admin`` or ``alnum``, see ``citygrid.codes``)."""
    name = conn.execute(sa.text("SELECT code_scheme FROM deployment")).scalar()
    if name is None:
        raise SchemaMismatch("deployment record missing; run `citygrid db init`")
    return str(name)


def set_deployment_code_scheme(conn: Connection, name: str) -> int:
    """Record the code scheme unless districts exist; returns how many districts there are (0: recorded)."""
    districts = int(conn.execute(sa.text("SELECT count(*) FROM districts")).scalar_one())
    if districts == 0:
        conn.execute(sa.text("UPDATE deployment SET code_scheme = :s"), {"s": name})
    return districts


def deployment_zone(conn: Connection) -> ZoneInfo:
    """The deployment's time zone (``db init --timezone``): how times without an offset are read, which local
    day a date names, and the offset answers carry."""
    name = conn.execute(sa.text("SELECT timezone FROM deployment")).scalar()
    if name is None:
        raise SchemaMismatch("deployment record missing; run `citygrid db init`")
    return ZoneInfo(name)


def server_knows_zone(conn: Connection, name: str) -> bool:
    """Whether the PostgreSQL server's own time zone database has ``name`` (a server elsewhere, named by
    ``DATABASE_URL``, may be older than this machine's)."""
    return conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = :n)"),
                        {"n": name}).scalar_one()


def set_deployment_zone(conn: Connection, name: str) -> None:
    """Record the deployment's time zone (an IANA name, checked by ``timezones.zone_named``) and use it in
    this session; other sessions take it when they connect."""
    conn.execute(sa.text("UPDATE deployment SET timezone = :tz"), {"tz": name})
    conn.execute(sa.text("SELECT set_config('TimeZone', :tz, false)"), {"tz": name})


def set_actor(conn: Connection, actor: str) -> None:
    """Name who acts for the rest of this transaction: the session setting ``citygrid.actor``, read by
    ``store.audit`` and the audit triggers (the web layer names the signed-in user per request, an import job
    its creator; the CLI's connections carry ``DEFAULT_ACTOR`` from the start)."""
    conn.execute(sa.text("SELECT set_config('citygrid.actor', :a, true)"), {"a": actor})


def quiet_row_audit(conn: Connection, quiet: bool) -> None:
    """Quiet the row-by-row audit triggers for the rest of this transaction (``quiet``), or wake them again:
    the session setting ``citygrid.bulk``, for bulk operations that are audited once, as one row."""
    conn.execute(sa.text("SELECT set_config('citygrid.bulk', :v, true)"), {"v": "on" if quiet else "off"})


def analyze(conn: Connection) -> None:
    """Gather the planner's statistics of every table (fresh tables have none until autovacuum gets to them)."""
    conn.execute(sa.text("ANALYZE"))


def server_versions(conn: Connection) -> dict[str, str]:
    """PostgreSQL and PostGIS versions as reported by the server."""
    pg = conn.execute(sa.text("SHOW server_version")).scalar_one()
    postgis = conn.execute(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")).scalar()
    return {"postgresql_version": str(pg), "postgis_version": str(postgis) if postgis else ""}


@contextmanager
def rolled_back(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is always rolled back (tests, benchmarks, previews)."""
    with engine.connect() as conn:
        outer = conn.begin()
        try:
            yield conn
        finally:
            outer.rollback()

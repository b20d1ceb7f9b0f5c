"""The ``citygrid`` command line. Thin: parse options, call domain functions, print results.

Domain errors become a one-line message (plus one line per bad row) on stderr and a non-zero exit:
2 invalid input, 3 not found, 4 conflict, 5 unavailable, 6 schema mismatch, 7 forbidden.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import Connection

from citygrid import __version__, deploy
from citygrid.config import Settings
from citygrid.errors import (
    CitygridError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    SchemaMismatch,
    Unavailable,
)
from citygrid.loaders.vector import read_vector
from citygrid.spatial import admin, db
from citygrid.spatial.cluster import EmbeddedCluster

EXIT_CODES: dict[type[CitygridError], int] = {
    InvalidInput: 2, NotFound: 3, Conflict: 4, Unavailable: 5, SchemaMismatch: 6, Forbidden: 7,
}
MAX_DETAIL_LINES = 50


def _exit_code(exc: CitygridError) -> int:
    return next((EXIT_CODES[c] for c in type(exc).__mro__ if c in EXIT_CODES), 1)


class CitygridGroup(click.Group):
    """Turns domain errors into a clear message and exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CitygridError as exc:
            click.echo(f"error: {exc.message}", err=True)
            for detail in exc.details[:MAX_DETAIL_LINES]:
                click.echo("  " + ", ".join(f"{k}={v}" for k, v in detail.items()), err=True)
            if len(exc.details) > MAX_DETAIL_LINES:
                click.echo(f"  … and {len(exc.details) - MAX_DETAIL_LINES} more", err=True)
            ctx.exit(_exit_code(exc))


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_object(Settings) or Settings.from_env()


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@contextmanager
def _transaction(settings: Settings) -> Iterator[Connection]:
    """One transaction on the deployment database, after checking its schema."""
    engine = db.make_engine(db.database_url(settings))
    try:
        db.check_schema(engine)
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


@click.group(cls=CitygridGroup)
@click.version_option(__version__, prog_name="citygrid")
@click.option("--database", "database", default=None, metavar="NAME",
              help="Database of the deployment (default: citygrid, or the DATABASE_URL's database).")
@click.pass_context
def cli(ctx: click.Context, database: str | None) -> None:
    """citygrid — gridded urban management on PostGIS."""
    settings = Settings.from_env(database)
    if database:
        db.validate_database_name(database)
    ctx.obj = settings


# ------------------------------------------------------------------------------------------ db
@cli.group(cls=CitygridGroup)
def db_group() -> None:
    """The database: the embedded cluster, or the server named by DATABASE_URL."""


cli.add_command(db_group, name="db")


def _embedded(settings: Settings) -> EmbeddedCluster:
    if settings.database_url:
        raise InvalidInput("DATABASE_URL is set: the embedded cluster is not in use", field="DATABASE_URL")
    return EmbeddedCluster(settings)


@db_group.command("init")
@click.option("--srid", type=int, default=None,
              help="EPSG code of the storage CRS (projected, metres): 4548 Beijing, 4547 Zhengzhou, "
              "a UTM zone elsewhere.")
@click.option("--name", default=None, help="Deployment (city) name.")
@click.pass_context
def db_init(ctx: click.Context, srid: int | None, name: str | None) -> None:
    """Create the cluster (if embedded), the database with PostGIS, and apply the migrations."""
    _echo_json(deploy.init_deployment(_settings(ctx), srid, name))


@db_group.command("start")
@click.option("--tcp", is_flag=True, help="Also listen on 127.0.0.1 (password from data/secrets/pg_password).")
@click.pass_context
def db_start(ctx: click.Context, tcp: bool) -> None:
    """Start the embedded cluster (initialising it on first use)."""
    cluster = _embedded(_settings(ctx))
    started = cluster.start(tcp=tcp)
    click.echo(f"{'started' if started else 'already running'}: socket {cluster.paths.run_dir} port {cluster.port}"
               + (" (and 127.0.0.1)" if cluster.tcp_enabled() else ""))


@db_group.command("stop")
@click.pass_context
def db_stop(ctx: click.Context) -> None:
    """Stop the embedded cluster."""
    click.echo("stopped" if _embedded(_settings(ctx)).stop() else "not running")


@db_group.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def db_status(ctx: click.Context, as_json: bool) -> None:
    """Whether the embedded cluster exists and runs."""
    info = _embedded(_settings(ctx)).status()
    if as_json:
        _echo_json(info)
    else:
        for key, value in info.items():
            click.echo(f"{key}: {value}")
    if not info["running"]:
        ctx.exit(1)


@db_group.command("url")
@click.option("--tcp", is_flag=True, help="The TCP URL (postgresql://user:password@127.0.0.1:port/db).")
@click.pass_context
def db_url(ctx: click.Context, tcp: bool) -> None:
    """Print the connection URL of the deployment database."""
    settings = _settings(ctx)
    if tcp:
        click.echo(_embedded(settings).tcp_url(settings.database or "citygrid"))
    else:
        click.echo(db.database_url(settings).render_as_string(hide_password=False))


# ------------------------------------------------------------------------------------------ imports
def _import_command(read_options: Callable) -> Callable:
    """Shared options of the file-import commands."""
    for option in reversed([
        click.argument("file", type=click.Path(path_type=Path)),
        click.option("--crs", default=None, help="CRS of the file when it does not say, or to override it: "
                     "EPSG:4547, EPSG:4326, gcj02, bd09 …"),
        click.option("--layer", default=None, help="Layer of a multi-layer file."),
        click.option("--encoding", default=None, help="Attribute encoding when the file does not say (GBK, UTF-8)."),
        click.option("--source", default=None, help="Provenance recorded with the rows (default: the file name)."),
        click.option("--licence", default="", help="Licence of the data."),
    ]):
        read_options = option(read_options)
    return read_options


@cli.group(cls=CitygridGroup)
def districts() -> None:
    """District boundaries."""


@districts.command("import")
@_import_command
@click.option("--code", required=True, help="6-digit district code, e.g. 110105.")
@click.option("--name", required=True, help="District name, e.g. 朝阳区.")
@click.pass_context
def districts_import(ctx: click.Context, file: Path, crs: str | None, layer: str | None, encoding: str | None,
                     source: str | None, licence: str, code: str, name: str) -> None:
    """Import (or replace) a district boundary from any file GDAL reads."""
    vf = read_vector(file, crs=crs, layer=layer, encoding=encoding)
    with _transaction(_settings(ctx)) as conn:
        _echo_json(admin.import_district(conn, vf, code=code, name=name, source=source or file.name,
                                         licence=licence, actor="cli"))


@districts.command("list")
@click.pass_context
def districts_list(ctx: click.Context) -> None:
    """Districts of the deployment with their counts."""
    _echo_json(deploy.status(_settings(ctx))["districts"])


@cli.group(cls=CitygridGroup)
def areas() -> None:
    """Street (街道/乡镇) and community (社区/村) areas, as points or polygons."""


@areas.command("import")
@_import_command
@click.option("--district", required=True, help="6-digit district code.")
@click.option("--level", required=True, type=click.Choice(["street", "community"]))
@click.option("--code-field", default=None)
@click.option("--name-field", default=None)
@click.option("--parent-field", default=None, help="Street code of a community (default: parent_code, or its code).")
@click.option("--level-field", default=None, help="Column telling street/town from community/village rows.")
@click.option("--x-field", default=None, help="CSV: longitude/x column.")
@click.option("--y-field", default=None, help="CSV: latitude/y column.")
@click.pass_context
def areas_import(ctx: click.Context, file: Path, crs: str | None, layer: str | None, encoding: str | None,
                 source: str | None, licence: str, district: str, level: str, code_field: str | None,
                 name_field: str | None, parent_field: str | None, level_field: str | None, x_field: str | None,
                 y_field: str | None) -> None:
    """Import streets or communities of a district; rows without coordinates are kept without a location."""
    vf = read_vector(file, crs=crs, layer=layer, encoding=encoding, x_field=x_field, y_field=y_field)
    with _transaction(_settings(ctx)) as conn:
        _echo_json(admin.import_areas(
            conn, vf, district=district, level=level, code_field=code_field, name_field=name_field,
            parent_field=parent_field, level_field=level_field, source=source or file.name, licence=licence,
            actor="cli",
        ))


@cli.group(cls=CitygridGroup)
def lines() -> None:
    """Roads, water lines and railways."""


@lines.command("import")
@_import_command
@click.option("--district", required=True, help="6-digit district code.")
@click.option("--kind", required=True, type=click.Choice(["road", "water", "rail"]))
@click.option("--class-field", default=None, help="Column with the line class (default: highway/waterway/railway).")
@click.option("--name-field", default=None)
@click.pass_context
def lines_import(ctx: click.Context, file: Path, crs: str | None, layer: str | None, encoding: str | None,
                 source: str | None, licence: str, district: str, kind: str, class_field: str | None,
                 name_field: str | None) -> None:
    """Import linear features clipped to the district (replacing an earlier import of the same source)."""
    vf = read_vector(file, crs=crs, layer=layer, encoding=encoding)
    with _transaction(_settings(ctx)) as conn:
        _echo_json(admin.import_lines(conn, vf, district=district, kind=kind, class_field=class_field,
                                      name_field=name_field, source=source or file.name, licence=licence,
                                      actor="cli"))


# ------------------------------------------------------------------------------------------ demo, status, serve
@cli.command("load-demo")
@click.argument("demo", default="chaoyang")
@click.option("--force", is_flag=True, help="Reload even when the district is already there.")
@click.pass_context
def load_demo(ctx: click.Context, demo: str, force: bool) -> None:
    """Set up and load a real demo district: chaoyang (Beijing) or guancheng (Zhengzhou)."""
    summary = deploy.load_demo(_settings(ctx), demo, force=force)
    if summary["loaded"]:
        _echo_json(summary)
    else:
        click.echo(f"{summary['district']} already loaded in {summary['database']}")


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Versions, schema revision, storage CRS and districts of the deployment."""
    info = deploy.status(_settings(ctx))
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, default=str))
        return
    click.echo(f"citygrid {info['app_version']} · PostgreSQL {info['postgresql_version']} · PostGIS "
               f"{info['postgis_version']} · schema {info['schema_revision']} · EPSG:{info['srid']}")
    for d in info["districts"]:
        click.echo(f"  {d['code']} {d['name']}: {d['area_km2']} km², {d['streets']} streets, "
                   f"{d['communities']} communities, {d['roads']} roads ({d['road_km']} km)")


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the map and the API."""
    from citygrid.app import create_app

    settings = _settings(ctx)
    deploy.ensure_server(settings)
    app = create_app({"CITYGRID_SETTINGS": settings})
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    click.echo(f"citygrid is serving {db.database_url(settings).database} at http://{shown}:{port}/  (Ctrl-C stops)")
    sys.stdout.flush()
    app.run(host=host, port=port, threaded=True, use_reloader=False)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="citygrid")


if __name__ == "__main__":
    main()



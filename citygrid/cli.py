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

from citygrid import __version__
from citygrid.config import Settings
from citygrid.errors import (
    CitygridError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Rejected,
    SchemaMismatch,
    Unavailable,
)
from citygrid.spatial import db
from citygrid.spatial.cluster import EmbeddedCluster
from citygrid.spatial.sources import SYNTHETIC_SOURCE

EXIT_CODES: dict[type[CitygridError], int] = {
    InvalidInput: 2, NotFound: 3, Conflict: 4, Unavailable: 5, SchemaMismatch: 6, Forbidden: 7, Rejected: 8,
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
def _transaction(settings: Settings, isolation: str | None = None) -> Iterator[Connection]:
    """One transaction on the deployment database, after checking its schema."""
    engine = db.make_engine(db.database_url(settings), **({"isolation_level": isolation} if isolation else {}))
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
    db.DEFAULT_ACTOR = cli_actor()


def cli_actor() -> str:
    """Who the audit log names for this command's writes: ``cli:<os user>``."""
    import getpass

    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return "cli:" + "".join(c for c in name if c.isalnum() or c in "._-")[:60]


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
@click.option("--code-scheme", type=click.Choice(["cn-admin", "alnum"]), default=None,
              help="District/street/community codes: cn-admin (Chinese administrative, 6/9/12 digits; the "
              "default) or alnum (a city's own, up to 12 upper-case letters, digits, inner hyphens). Set before "
              "the first district is imported.")
@click.option("--timezone", default=None, metavar="AREA/CITY",
              help="IANA time zone of the city (e.g. America/New_York): times without an offset are read in "
              "it, dates are its local days, answers carry its offset. Default for a new database: the zone at "
              "the centre of the CRS's area of use (printed). Given again, it replaces the recorded zone.")
@click.pass_context
def db_init(ctx: click.Context, srid: int | None, name: str | None, code_scheme: str | None,
            timezone: str | None) -> None:
    """Create the cluster (if embedded), the database with PostGIS, and apply the migrations."""
    from citygrid import deploy

    result = deploy.init_deployment(_settings(ctx), srid, name, code_scheme=code_scheme, timezone=timezone)
    _echo_json(result)
    how = result["timezone_source"]
    click.echo(f"time zone: {result['timezone']} ({how}"
               + ("; choose another with --timezone AREA/CITY)" if how.startswith("derived") else ")"), err=True)


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
@click.option("--libpq", is_flag=True, help="A URL libpq reads (psql \"$(citygrid db url --libpq)\", pg_dump): "
              "postgresql:// without SQLAlchemy's driver name; the socket folder as ?host=.")
@click.pass_context
def db_url(ctx: click.Context, tcp: bool, libpq: bool) -> None:
    """Print the connection URL of the deployment database (SQLAlchemy's form unless --libpq or --tcp)."""
    settings = _settings(ctx)
    if tcp:
        click.echo(_embedded(settings).tcp_url(settings.database or "citygrid"))
    else:
        click.echo(db.libpq_url(db.database_url(settings)) if libpq
                   else db.database_url(settings).render_as_string(hide_password=False))


# ------------------------------------------------------------------------------------------ imports
def _source_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--source / --licence: one line of plain text, at most 300 characters (``sources.source_text``)."""
    from citygrid.spatial.sources import source_text

    if value is None:
        return None
    return source_text(value, f"--{param.name}", required=param.name == "source")


def _source_of(source: str | None, file: Path) -> str:
    """The --source given, else the file's name (checked as a source text)."""
    from citygrid.spatial.sources import source_text

    return source or source_text(file.name, "--source (the file name)")


def _kept_source_option(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    ctx.meta[f"citygrid.{param.name}"] = _source_option(ctx, param, value)


def _source_options(command: Callable) -> Callable:
    """--source / --licence for commands whose own signature does not take them (census, cases): the checked
    values are kept in ``ctx.meta`` (``_given_source``)."""
    command = click.option("--licence", default="", expose_value=False, callback=_kept_source_option,
                           help="Licence of the data (shown with the source).")(command)
    return click.option("--source", default=None, expose_value=False, callback=_kept_source_option,
                        help="Where the data comes from, recorded and shown in the page footer "
                             "(default: the file name).")(command)


def _given_source(ctx: click.Context, file: Path) -> tuple[str, str]:
    """(source, licence) of a ``_source_options`` command: the --source given, else the file's name."""
    return _source_of(ctx.meta.get("citygrid.source"), file), ctx.meta.get("citygrid.licence") or ""


def _import_command(read_options: Callable) -> Callable:
    """Shared options of the file-import commands."""
    for option in reversed([
        click.argument("file", type=click.Path(path_type=Path)),
        click.option("--crs", default=None, help="CRS of the file when it does not say, or to override it: "
                     "EPSG:4547, EPSG:4326, gcj02, bd09 …"),
        click.option("--layer", default=None, help="Layer of a multi-layer file."),
        click.option("--encoding", default=None, help="Attribute encoding when the file does not say (GBK, UTF-8)."),
        click.option("--source", default=None, callback=_source_option,
                     help="Provenance recorded with the rows and shown in the page footer (default: the file name)."),
        click.option("--licence", default="", callback=_source_option, help="Licence of the data."),
    ]):
        read_options = option(read_options)
    return read_options


@cli.group(cls=CitygridGroup)
def districts() -> None:
    """District boundaries."""


@districts.command("import")
@_import_command
@click.option("--code", required=True, help="District code in the deployment's code scheme: 6 digits (110105) "
              "by default, up to 12 upper-case letters, digits, inner hyphens (NYCBK) with --code-scheme alnum.")
@click.option("--name", required=True, help="District name, e.g. 朝阳区.")
@click.pass_context
def districts_import(ctx: click.Context, file: Path, crs: str | None, layer: str | None, encoding: str | None,
                     source: str | None, licence: str, code: str, name: str) -> None:
    """Import (or replace) a district boundary from any file GDAL reads."""
    from citygrid.districts import import_district
    from citygrid.loaders.vector import read_vector

    vf = read_vector(file, crs=crs, layer=layer, encoding=encoding)
    with _transaction(_settings(ctx)) as conn:
        _echo_json(import_district(conn, vf, code=code, name=name, source=_source_of(source, file),
                                   licence=licence, actor="cli"))


@districts.command("list")
@click.pass_context
def districts_list(ctx: click.Context) -> None:
    """Districts of the deployment with their counts."""
    from citygrid import deploy

    _echo_json(deploy.status(_settings(ctx))["districts"])


@cli.group(cls=CitygridGroup)
def areas() -> None:
    """Street (街道/乡镇) and community (社区/村) areas, as points or polygons."""


@areas.command("import")
@_import_command
@click.option("--district", required=True, help="District code (e.g. 110105, or NYCBK in the alnum scheme).")
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
    from citygrid.districts import import_areas
    from citygrid.loaders.vector import read_vector

    vf = read_vector(file, crs=crs, layer=layer, encoding=encoding, x_field=x_field, y_field=y_field)
    with _transaction(_settings(ctx)) as conn:
        _echo_json(import_areas(
            conn, vf, district=district, level=level, code_field=code_field, name_field=name_field,
            parent_field=parent_field, level_field=level_field, source=_source_of(source, file), licence=licence,
            actor="cli",
        ))


@cli.group(cls=CitygridGroup)
def lines() -> None:
    """Roads, water lines and railways."""


@lines.command("import")
@_import_command
@click.option("--district", required=True, help="District code (e.g. 110105, or NYCBK in the alnum scheme).")
@click.option("--kind", required=True, type=click.Choice(["road", "water", "rail"]))
@click.option("--class-field", default=None, help="Column with the line class (default: highway/waterway/railway).")
@click.option("--name-field", default=None)
@click.pass_context
def lines_import(ctx: click.Context, file: Path, crs: str | None, layer: str | None, encoding: str | None,
                 source: str | None, licence: str, district: str, kind: str, class_field: str | None,
                 name_field: str | None) -> None:
    """Import linear features clipped to the district (replacing an earlier import of the same source)."""
    from citygrid.districts import import_lines
    from citygrid.loaders.vector import read_vector

    vf = read_vector(file, crs=crs, layer=layer, encoding=encoding)
    with _transaction(_settings(ctx)) as conn:
        _echo_json(import_lines(conn, vf, district=district, kind=kind, class_field=class_field,
                                name_field=name_field, source=_source_of(source, file), licence=licence,
                                actor="cli"))


# ------------------------------------------------------------------------------------------ grids
@cli.group(cls=CitygridGroup)
def grids() -> None:
    """Unit grids (万米单元网格), supervision grids (监督网格) and teams, in dated versions."""


def _name_list(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise InvalidInput("name at least one road class", field="road_classes")
    return items


@grids.command("generate")
@click.option("--district", required=True)
@click.option("--target-area-m2", type=float, default=None, help="Aimed-for unit-grid area (default 57,600).")
@click.option("--min-area-m2", type=float, default=None, help="Smaller pieces are merged (default 10,000).")
@click.option("--max-area-m2", type=float, default=None, help="Larger blocks are split (default 1.5 × target).")
@click.option("--road-classes", default=None, help="Comma-separated road classes that bound blocks.")
@click.option("--extend-m", type=float, default=None, help="Gap-closing tolerance for dangling road ends.")
@click.option("--note", default="")
@click.pass_context
def grids_generate(ctx: click.Context, district: str, target_area_m2: float | None, min_area_m2: float | None,
                   max_area_m2: float | None, road_classes: str | None, extend_m: float | None, note: str) -> None:
    """Generate a draft grid version of unit grids from roads (or derived areas where there are none)."""
    from citygrid.gridding import service as gridding
    from citygrid.gridding.generate import GridParams

    given = {"target_area_m2": target_area_m2, "min_area_m2": min_area_m2, "max_area_m2": max_area_m2,
             "road_classes": _name_list(road_classes), "extend_m": extend_m}
    params = GridParams(**{k: v for k, v in given.items() if v is not None})
    with _transaction(_settings(ctx)) as conn:
        _echo_json(gridding.generate(conn, district, params, author="cli", note=note))


@grids.command("partition")
@click.option("--district", required=True)
@click.option("--supervision-grids", "n_groups", type=int, required=True)
@click.option("--teams", type=int, default=None, help="Default: in Chaoyang's proportion (237 grids : 35 teams).")
@click.option("--weights", default=None, help="Workload weights, e.g. components=1,cases=1,roads=1,area=1.")
@click.option("--version", "version_id", type=int, default=None, help="Draft version (default: the newest).")
@click.option("--respect-streets", is_flag=True, help="Strongly prefer group boundaries along street lines.")
@click.option("--compact/--no-compact", default=True, show_default=True,
              help="Weight adjacency by shared boundary length, so groups come out compact.")
@click.option("--groups/--no-groups", "show_groups", default=False, help="Print every group.")
@click.pass_context
def grids_partition(ctx: click.Context, n_groups: int, district: str, teams: int | None, weights: str | None,
                    version_id: int | None, respect_streets: bool, compact: bool, show_groups: bool) -> None:
    """Group unit grids into contiguous, workload-balanced supervision grids and teams."""
    from citygrid.gridding import service as gridding

    with _transaction(_settings(ctx)) as conn:
        summary = gridding.partition(conn, district, n_groups, teams, weights=gridding.parse_weights(weights),
                                     version_id=version_id, respect_streets=respect_streets, compact=compact,
                                     author="cli")
    if not show_groups:
        summary.pop("groups")
    _echo_json(summary)


@grids.command("publish")
@click.option("--district", required=True)
@click.option("--version", "version_id", type=int, default=None)
@click.option("--effective-from", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), default=None,
              help="When the version takes effect (default now).")
@click.option("--no-warm", is_flag=True, help="Do not warm the grid tiles z10-z15 after publishing.")
@click.pass_context
def grids_publish(ctx: click.Context, district: str, version_id: int | None, effective_from, no_warm: bool) -> None:
    """Make a draft the current version from a date (default today), then (after the commit) warm its unit-grid
    and supervision-grid tiles z10-z15 for every server process (#23; `tile_warming` in the answer)."""
    from citygrid.gridding import service as gridding
    from citygrid.spatial import tilewarm

    settings = _settings(ctx)
    with _transaction(settings) as conn:
        published = gridding.publish(conn, district, version_id, effective_from, author="cli")
        plan = tilewarm.plan(conn, district)
    if not no_warm:
        engine = db.make_engine(db.database_url(settings))
        try:
            published["tile_warming"] = {**plan.summary(), **tilewarm.warm(engine.begin, plan)}
        finally:
            engine.dispose()
    _echo_json(published)


@grids.command("impact")
@click.option("--district", required=True)
@click.option("--version", "version_id", type=int, required=True, help="The draft.")
@click.pass_context
def grids_impact(ctx: click.Context, district: str, version_id: int) -> None:
    """What publishing a draft now would change (#23): points changing grid, owners, supervisors, workloads."""
    from citygrid.gridding import impact

    with _transaction(_settings(ctx)) as conn:
        _echo_json(impact.of_draft(conn, district, version_id))


@grids.command("diff")
@click.option("--district", required=True)
@click.argument("version_a", type=click.IntRange(1, 1_000_000))
@click.argument("version_b", type=click.IntRange(1, 1_000_000))
@click.option("--json", "as_json", is_flag=True, help="The whole answer with GeoJSON (EPSG:4326).")
@click.pass_context
def grids_diff(ctx: click.Context, district: str, version_a: int, version_b: int, as_json: bool) -> None:
    """Unit grids added, removed, changed or reassigned from VERSION_A to VERSION_B (#23), with area deltas."""
    from citygrid.gridding import history

    with _transaction(_settings(ctx)) as conn:
        found = history.diff(conn, district, version_a, version_b)
    if as_json:
        _echo_json(found)
        return
    click.echo(f"{district}: version {version_a} -> {version_b}: " +
               ", ".join(f"{n} {k}" for k, n in found["counts"].items()))
    for feature in found["features"]["features"]:
        p = feature["properties"]
        areas = f"{p['area_before_m2'] or 0:>12.1f} -> {p['area_after_m2'] or 0:>12.1f} m² ({p['area_delta_m2']:+.1f})"
        click.echo(f"{p['change']:10} {p['code']}  {areas}  "
                   f"{p['supervision_before'] or '-'} -> {p['supervision_after'] or '-'}")


@grids.command("versions")
@click.option("--district", required=True)
@click.pass_context
def grids_versions(ctx: click.Context, district: str) -> None:
    """The dated history of a district's grid versions."""
    from citygrid.gridding.queries import versions

    with _transaction(_settings(ctx)) as conn:
        rows = versions(conn, district)
    _echo_json([{k: v for k, v in r.items() if k != "params"} for r in rows])


@grids.command("stats")
@click.option("--district", required=True)
@click.option("--version", "version_id", type=int, default=None, help="Default: the current published version.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def grids_stats(ctx: click.Context, district: str, version_id: int | None, as_json: bool) -> None:
    """Counts and quality of a grid version, recomputed from the stored geometry."""
    from citygrid.gridding import service as gridding

    with _transaction(_settings(ctx)) as conn:
        info = gridding.stats(conn, district, version_id)
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, default=str))
    else:
        for key, value in info.items():
            click.echo(f"{key}: {value}")


@grids.command("export")
@click.option("--district", required=True)
@click.option("--format", "fmt", type=click.Choice(["gpkg", "geojson", "shp"]), required=True)
@click.option("--output", type=click.Path(path_type=Path), required=True)
@click.option("--version", "version_id", type=int, default=None)
@click.option("--kind", type=click.Choice(["unit", "supervision"]), default="unit")
@click.option("--lonlat", is_flag=True, help="Write EPSG:4326 instead of the deployment CRS.")
@click.pass_context
def grids_export(ctx: click.Context, district: str, fmt: str, output: Path, version_id: int | None, kind: str,
                 lonlat: bool) -> None:
    """Write a grid version with codes and attributes to a GeoPackage, GeoJSON or Shapefile."""
    from citygrid.gridding import service as gridding

    with _transaction(_settings(ctx)) as conn:
        _echo_json(gridding.export(conn, district, output, fmt, version_id=version_id, kind=kind,
                                   to_lonlat=lonlat))


# ------------------------------------------------------------------------------------------ grids: editing (#23)
def _lonlat_option(text: str | None, name: str) -> list[float] | None:
    """``LON,LAT`` as a GeoJSON position, or None."""
    if text is None:
        return None
    try:
        lon, lat = (float(t) for t in text.split(","))
    except ValueError:
        raise InvalidInput(f"--{name} must be LON,LAT (e.g. 116.48,39.93)", field=name) from None
    return [lon, lat]


def _geojson_option(text: str | None, name: str) -> Any:
    """A GeoJSON text, or ``@FILE`` holding one, parsed; None when not given."""
    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"--{name}: cannot read {text[1:]}: {exc}", field=name) from None
    try:
        return json.loads(text)
    except ValueError:
        raise InvalidInput(f"--{name} must be GeoJSON text or @FILE holding it", field=name) from None


def _code_list(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


@grids.command("draft")
@click.option("--district", required=True)
@click.option("--from", "from_version", type=click.IntRange(1, 1_000_000), default=None,
              help="The version to copy (default: the published one).")
@click.option("--note", default="")
@click.pass_context
def grids_draft(ctx: click.Context, district: str, from_version: int | None, note: str) -> None:
    """Make a draft to edit, copied from a version (default the published one); prints its number."""
    from citygrid.gridding import drafts

    settings = _settings(ctx)
    with _transaction(settings) as conn:
        _echo_json(drafts.create(conn, district, from_version, author=cli_actor(), note=note,
                                 max_open=settings.max_open_drafts))


@grids.command("drop-draft")
@click.option("--district", required=True)
@click.option("--version", "version_id", type=click.IntRange(1, 1_000_000), required=True, help="The draft.")
@click.pass_context
def grids_drop_draft(ctx: click.Context, district: str, version_id: int) -> None:
    """Drop a draft with its grids and edit log; the codes it issued stay registered, never reused."""
    from citygrid.gridding import drafts

    with _transaction(_settings(ctx)) as conn:
        _echo_json(drafts.drop(conn, district, version_id, author=cli_actor()))


@grids.command("edit")
@click.argument("op", type=click.Choice(["split", "merge", "reshape", "move-vertex", "reassign", "set-team"]))
@click.option("--district", required=True)
@click.option("--version", "version_id", type=click.IntRange(1, 1_000_000), required=True, help="The draft.")
@click.option("--code", default=None, help="split, reshape: the unit grid.")
@click.option("--codes", default=None, help="merge, reassign: unit grids, comma-separated.")
@click.option("--line", default=None, help="split: a GeoJSON LineString (EPSG:4326), or @FILE.")
@click.option("--geometry", default=None, help="reshape: the new boundary, a GeoJSON Polygon (EPSG:4326), or @FILE.")
@click.option("--from", "from_xy", default=None, help="move-vertex: the vertex, LON,LAT.")
@click.option("--to", "to_xy", default=None, help="move-vertex: where it goes, LON,LAT.")
@click.option("--supervision-code", default=None, help="reassign: the new supervision grid; set-team: the one moved.")
@click.option("--team", "team_code", default=None, help="set-team: the new team.")
@click.option("--expected-revision", type=click.IntRange(0, 1_000_000_000), default=None,
              help="The draft's revision this edit is made against (default: the current one).")
@click.option("--json", "as_json", is_flag=True, help="A rejection as JSON (reason, geometry) on stdout.")
@click.pass_context
def grids_edit(ctx: click.Context, op: str, district: str, version_id: int, code: str | None, codes: str | None,
               line: str | None, geometry: str | None, from_xy: str | None, to_xy: str | None,
               supervision_code: str | None, team_code: str | None, expected_revision: int | None,
               as_json: bool) -> None:
    """Edit a draft: split (--code --line), merge (--codes), reshape (--code --geometry), move-vertex (--from
    --to), reassign (--codes --supervision-code), set-team (--supervision-code --team). A rejected edit prints
    its reason (and with --json its geometry, GeoJSON) and exits 8; a stale --expected-revision exits 4."""
    from citygrid.gridding import edits
    from citygrid.gridding.edit_requests import OPS

    given = {"code": code, "codes": _code_list(codes), "line": _geojson_option(line, "line"),
             "geometry": _geojson_option(geometry, "geometry"), "from": _lonlat_option(from_xy, "from"),
             "to": _lonlat_option(to_xy, "to"), "supervision_code": supervision_code, "team_code": team_code}
    extra = [name for name, value in given.items() if value is not None and name not in OPS[op]]
    if extra:
        raise InvalidInput(f"{op} takes {', '.join('--' + m.replace('_', '-') for m in OPS[op])}, not "
                           f"--{extra[0].replace('_', '-')}", field=extra[0])
    request = {"op": op, **{name: value for name, value in given.items() if value is not None}}
    try:
        with _transaction(_settings(ctx)) as conn:
            _echo_json(edits.apply(conn, district, version_id, request, expected_revision, cli_actor()))
    except Rejected as exc:
        click.echo(f"error: {exc.message} (reason: {exc.extra.get('reason')})", err=True)
        if as_json:
            _echo_json({"error": exc.code, "message": exc.message, **exc.extra})
        ctx.exit(EXIT_CODES[Rejected])


@grids.command("undo")
@click.option("--district", required=True)
@click.option("--version", "version_id", type=click.IntRange(1, 1_000_000), required=True, help="The draft.")
@click.option("--expected-revision", type=click.IntRange(0, 1_000_000_000), default=None,
              help="The draft's revision (default: the current one).")
@click.pass_context
def grids_undo(ctx: click.Context, district: str, version_id: int, expected_revision: int | None) -> None:
    """Undo the draft's newest edit not yet undone (exactly; the codes it issued are never reused)."""
    from citygrid.gridding import edits

    with _transaction(_settings(ctx)) as conn:
        _echo_json(edits.undo(conn, district, version_id, expected_revision, cli_actor()))


@grids.command("edits")
@click.option("--district", required=True)
@click.option("--version", "version_id", type=click.IntRange(1, 1_000_000), required=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def grids_edits(ctx: click.Context, district: str, version_id: int, as_json: bool) -> None:
    """The edit log of a version, oldest first (who, when, what)."""
    from citygrid.gridding import edits

    with _transaction(_settings(ctx)) as conn:
        found = edits.log(conn, district, version_id, limit=None)
    if as_json:
        _echo_json(found)
        return
    click.echo(f"{district} version {version_id} ({found['status']}), revision {found['revision']}")
    for e in found["edits"]:
        undone = f"  undone by {e['undone_by']}" if e["undone_by"] else ""
        click.echo(f"{e['seq']:>4} {e['op']:11} {e['at']} {e['author']}: +{','.join(e['added']) or '-'} "
                   f"-{','.join(e['removed']) or '-'} ~{','.join(e['changed']) or '-'}{undone}")


# ------------------------------------------------------------------------------------------ census
@cli.group(cls=CitygridGroup)
def census() -> None:
    """Component censuses (部件普查): import with a row-by-row report, reconciliation, versions."""


@census.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@_source_options
@click.option("--district", required=True)
@click.option("--crs", default=None, help="CRS when the file does not say (or to override): EPSG:4548, gcj02 …")
@click.option("--encoding", default=None, help="Attribute encoding when there is no .cpg and detection fails.")
@click.option("--layer", default=None)
@click.option("--mapping", "mapping_file", type=click.Path(path_type=Path), default=None,
              help="YAML mapping file; keys: columns: {ObjID: 标识码, …} (attribute: the file's column), "
                   "set: {class_code: \"0402\"} (one value for every row), values: {class_code: {国槐: \"0402\"}, "
                   "status: {…}} (the file's values to ours), geometry: {wkt: COLUMN} or {wkb: COLUMN} (CSV "
                   "points in one column), id_field: COLUMN. Any other key is an error.")
@click.option("--id-field", default=None,
              help="The file's column of the city's own feature IDs: reconciliation matches on it, and a "
                   "re-imported feature keeps the ObjID generated for it the first time.")
@click.option("--x-field", default=None, help="CSV: x/longitude column.")
@click.option("--y-field", default=None, help="CSV: y/latitude column.")
@click.option("--dry-run", is_flag=True, help="Preview the reconciliation (scope, retire ratio); change nothing.")
@click.option("--partial", is_flag=True, help="The file updates part of the census: retire nothing.")
@click.option("--scope", type=click.Choice(["classes", "all"]), default="classes", show_default=True,
              help="Which current components the file replaces, so that those it lacks are retired: those of "
                   "the classes it holds, or the district's whole census.")
@click.option("--max-retire-ratio", type=float, default=0.2, show_default=True,
              help="Refuse (exit 4) a reconciliation that would retire more than this share of the current "
                   "components in scope.")
@click.option("--allow-mass-retire", is_flag=True, help="Retire more than --max-retire-ratio all the same.")
@click.option("--max-bad-ratio", type=float, default=0.05, show_default=True,
              help="Above this share of bad rows nothing is imported (exit 2).")
@click.option("--move-tolerance-m", type=float, default=5.0, show_default=True)
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
              help="Write the row report (CSV) here.")
@click.pass_context
def census_import(ctx: click.Context, file: Path, district: str, crs: str | None, encoding: str | None,
                  layer: str | None, mapping_file: Path | None, id_field: str | None, x_field: str | None,
                  y_field: str | None, dry_run: bool, partial: bool, scope: str, max_retire_ratio: float,
                  allow_mass_retire: bool, max_bad_ratio: float, move_tolerance_m: float,
                  report_path: Path | None) -> None:
    """Import a census file (Shapefile/zip, GeoPackage, GeoJSON, CSV, anything GDAL reads).

    Reconciles with the current census (new, moved, changed, unchanged, retired); exits 2 when too many
    rows are bad, 4 when it would retire more than --max-retire-ratio of the census in scope (nothing is
    imported either way).
    """
    from citygrid.components_survey import jobs
    from citygrid.components_survey.census import CensusOptions, report_csv
    from citygrid.components_survey.mapping import load_mapping_file
    from citygrid.components_survey.queries import report_rows

    options = CensusOptions(district=district, crs=crs, encoding=encoding, layer=layer,
                            mapping=load_mapping_file(mapping_file), x_field=x_field, y_field=y_field,
                            dry_run=dry_run, partial=partial, max_bad_ratio=max_bad_ratio,
                            move_tolerance_m=move_tolerance_m, id_field=id_field, scope=scope,
                            max_retire_ratio=max_retire_ratio, allow_mass_retire=allow_mass_retire).validate()
    engine = db.make_engine(db.database_url(_settings(ctx)))
    try:
        db.check_schema(engine)
        job_id = jobs.new_job(engine, file, options, created_by=cli_actor())
        jobs.record_source(engine, district, job_id, *_given_source(ctx, file))  # counts once committed
        with click.progressbar(length=100, label=f"importing {file.name}", file=sys.stderr) as bar:
            done = [0]

            def progress(percent: float, counts: dict[str, int]) -> None:
                bar.update(int(percent) - done[0])
                done[0] = int(percent)

            record = jobs.run_job(engine, job_id, file, options, progress)
        with engine.connect() as conn:
            problems = report_rows(conn, job_id)
    finally:
        engine.dispose()
    if report_path is not None:
        report_path.write_text(report_csv(problems), encoding="utf-8")
    record["report_rows"] = len(problems)
    record["first_problems"] = problems[:20]
    for key in ("params", "work_dir", "heartbeat_at"):
        record.pop(key, None)
    _echo_json(record)
    if record["state"] == "rejected":
        refused = ((record.get("preview") or {}).get("reconciliation") or {}).get("refused")
        click.echo(f"error: {record.get('message') or 'the import was refused'}", err=True)
        ctx.exit(4 if refused == "mass_retire" else 2)


# ------------------------------------------------------------------------------------------ class schemes
@cli.group(cls=CitygridGroup)
def taxonomy() -> None:
    """Class schemes: the packaged CJ/T 214 classes, or a city's own (its 311 service list, in its language)."""


@taxonomy.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--scheme", required=True, help="Name of the scheme, e.g. nyc311 (lower-case letters, digits, _ -).")
@click.option("--title", default=None, help="A title for it (default: its name).")
@click.option("--activate", is_flag=True, help="Make it the deployment's active scheme (intake, classifier, Open311).")
@click.pass_context
def taxonomy_import(ctx: click.Context, file: Path, scheme: str, title: str | None, activate: bool) -> None:
    """Load a class scheme from a CSV or YAML file: code, name, kind (event|component), and optionally group,
    group_code, keywords, description, service_code, open311 (true|false). One transaction: a file with one bad
    row loads nothing."""
    from citygrid.components_survey.schemes import import_scheme

    with _transaction(_settings(ctx)) as conn:
        _echo_json(import_scheme(conn, file, scheme=scheme, title=title, activate=activate))


@taxonomy.command("activate")
@click.argument("scheme")
@click.pass_context
def taxonomy_activate(ctx: click.Context, scheme: str) -> None:
    """Make a loaded scheme the deployment's active one (cjt214: back to the packaged classes)."""
    from citygrid.components_survey.schemes import activate_scheme

    with _transaction(_settings(ctx)) as conn:
        activate_scheme(conn, scheme)
    click.echo(f"active class scheme: {scheme}")


@taxonomy.command("list")
@click.pass_context
def taxonomy_list(ctx: click.Context) -> None:
    """Loaded class schemes with their class counts; the active one is marked."""
    from citygrid.components_survey.schemes import list_schemes

    with _transaction(_settings(ctx)) as conn:
        _echo_json(list_schemes(conn))


# ------------------------------------------------------------------------------------------ cases
@cli.group(cls=CitygridGroup)
def cases() -> None:
    """Cases: classification of free text (and, to come, bulk import and history)."""


@cases.command("classify")
@click.argument("text")
@click.option("--kind", type=click.Choice(["event", "component"]), default=None)
@click.pass_context
def cases_classify(ctx: click.Context, text: str, kind: str | None) -> None:
    """The class of a description in the active class scheme, with the top three and their probabilities, or
    "classified": false and the reason when the text cannot be classified (no known vocabulary, out of
    scheme, low confidence)."""
    from citygrid.cases.classify import classifier_for
    from citygrid.cases.rules import CaseRules
    from citygrid.cases.service import active_scheme
    from citygrid.components_survey.queries import taxonomy

    settings = _settings(ctx)
    with _transaction(settings) as conn:
        scheme = active_scheme(conn)
        classes = taxonomy(conn, scheme=scheme, kind=kind)
    model = CaseRules.load(settings.data_dir).model_for(scheme, kind)
    _echo_json({"scheme": scheme, **classifier_for(classes, model).classify(text).as_dict()})


@cases.command("escalate-overdue")
@click.option("--district", default=None)
@click.pass_context
def cases_escalate(ctx: click.Context, district: str | None) -> None:
    """Escalate every overdue dispatched case one level (community -> street -> district)."""
    from citygrid.cases import service as case_service
    from citygrid.cases.queries import overdue_ids
    from citygrid.cases.rules import CaseRules

    settings = _settings(ctx)
    rules = CaseRules.load(settings.data_dir)
    escalated, skipped = [], []
    with _transaction(settings) as conn:
        for case_id in overdue_ids(conn, district):
            try:
                with conn.begin_nested():
                    case_service.transition(conn, rules, case_id, "escalate", actor="system", role="system",
                                            note="overdue")
                escalated.append(case_id)
            except Conflict:
                skipped.append(case_id)
    _echo_json({"escalated": escalated, "already_at_top": skipped})


@cases.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@_source_options
@click.option("--mapping", "mapping_file", type=click.Path(path_type=Path), default=None,
              help="YAML mapping file: columns, values, set, ignore, case_sensitive, time_format (below).")
@click.option("--key-field", default=None, metavar="COLUMN",
              help="The column holding each case's own number (its key); without one, keys are derived from "
                   "each row's content.")
@click.option("--ignore", "ignore", multiple=True, metavar="FIELD",
              help="Do not read the column named like FIELD (e.g. a 'source' column of channel names); "
                   "repeatable.")
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write every problem (not only the first 100 printed) to this CSV.")
@click.option("--max-bad-ratio", type=float, default=0.05, show_default=True)
@click.option("--encoding", default=None, help="The CSV's text encoding (cp1252, latin-1, …) when it is not "
              "UTF-8; without it only plainly Chinese GB18030 text is read besides UTF-8.")
@click.pass_context
def cases_import(ctx: click.Context, file: Path, mapping_file: Path | None, key_field: str | None,
                 ignore: tuple[str, ...], report_path: Path | None, max_bad_ratio: float,
                 encoding: str | None) -> None:
    """Import historic cases, with their history, from a CSV (one transaction; every problem by line).

    \b
    Columns (found by these names, any case, or named in the mapping's columns:):
      lon, lat           WGS84 (or per row crs: wgs84|gcj02|bd09)   also longitude/latitude, 经度/纬度
      class_code, kind   a class of the deployment's scheme; kind event (default) or component
      reported_at        ISO 8601 or the mapping's time_format; no offset: the deployment's time zone
      status             reported verified accepted rejected dispatched fed_back checked closed evaluated
                         (default: after the last dated step, else closed)
      source             supervisor hotline citizen open311 camera import (default import)
      description, address, crs
      idempotency_key    the case's own number (also case_no, 案件编号, "Unique Key"); without it, or
                         --key-field, each key is derived from the row's content, so a re-import adds nothing
      verified_at accepted_at rejected_at dispatched_at fed_back_at checked_at closed_at evaluated_at
                         dated steps, imported as the case's events at those times; a step before the report
                         or before an earlier step is a row problem

    \b
    Mapping file (YAML, no aliases/anchors; any other key is an error):
      columns:  {reported_at: Created Date, closed_at: Closed Date, source: Open Channel Type}
      values:   {status: {Closed: closed, In Progress: dispatched}, source: {PHONE: hotline},
                 class_code: {Illegal Parking: "0201"}}     (also kind, crs)
      set:      {kind: event}               one value for every row
      ignore:   [source]                    fields whose same-named column is not read
      case_sensitive: false                 the default: Closed matches closed
      time_format: "%m/%d/%Y %I:%M:%S %p"   strptime format of every time column

    A value that is not ours and not mapped is a row problem, never forced. A point outside the district
    says how far outside, and which edge is nearest.
    """
    from citygrid import deploy
    from citygrid.cases.history import import_cases, load_mapping, report_csv
    from citygrid.cases.queries import last_case_id

    source, licence = _given_source(ctx, file)
    with _transaction(_settings(ctx)) as conn:
        first_case_id = last_case_id(conn)
        result = import_cases(conn, file, mapping=load_mapping(mapping_file), key_field=key_field, ignore=ignore,
                              max_bad_ratio=max_bad_ratio, encoding=encoding)
        if result.state != "rejected" and result.imported:
            deploy.record_case_import(conn, first_case_id, source=source, licence=licence)
        if report_path is not None:  # before the commit: a report that cannot be written imports nothing
            try:
                report_path.write_text(report_csv(result.problems), encoding="utf-8")
            except OSError as exc:
                raise InvalidInput(f"--report {report_path}: {exc.strerror or exc}", field="report") from None
    _echo_json({"state": result.state, "rows": result.rows, "imported": result.imported, "events": result.events,
                "already_stored": result.already_stored, "key": result.key,
                "problems": result.problems[:100], "problem_count": len(result.problems),
                **({"report": str(report_path)} if report_path is not None else {})})
    if result.state == "rejected":
        ctx.exit(2)


@cases.command("synthesize")
@click.option("--district", required=True)
@click.option("--n", "count", type=click.IntRange(1, 5_000_000), default=20_000, show_default=True)
@click.option("--seed", type=int, default=2026, show_default=True)
@click.pass_context
def cases_synthesize(ctx: click.Context, district: str, count: int, seed: int) -> None:
    """Add a seeded SYNTHETIC year of cases (labelled synthetic) to a district."""
    from citygrid import deploy
    from citygrid.cases import synthetic
    from citygrid.cases.queries import last_case_id

    with _transaction(_settings(ctx)) as conn:
        first_case_id = last_case_id(conn)
        result = synthetic.generate(conn, district, count, seed=seed)
        if result.imported:
            deploy.record_case_import(conn, first_case_id, source=SYNTHETIC_SOURCE, synthetic=True)
    _echo_json({"cases": result.imported, "problems": len(result.problems), "synthetic": True})


@cases.command("train-classifier")
@click.pass_context
def cases_train(ctx: click.Context) -> None:
    """Retrain the text classifier of the active class scheme on its stored, real (non-synthetic), classified
    cases that have a description (saved as data/models/<scheme>.joblib)."""
    from citygrid.cases.classify import train
    from citygrid.cases.queries import labelled_texts
    from citygrid.cases.rules import CaseRules
    from citygrid.cases.service import active_scheme

    settings = _settings(ctx)
    with _transaction(settings) as conn:
        scheme = active_scheme(conn)
        rows = labelled_texts(conn, scheme)
    names = {r[1]: r[2] for r in rows}
    _echo_json(train([r[0] for r in rows], [r[1] for r in rows], names,
                     CaseRules.load(settings.data_dir).model_path(scheme)))


# ------------------------------------------------------------------------------------------ ownership
@cli.group(cls=CitygridGroup)
def ownership() -> None:
    """Who answers for each unit grid in the four roles (#22): a city's own lists, dated."""


@ownership.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--district", required=True, help="District code (110105, or NYCBK in the alnum scheme).")
@click.option("--role", required=True, type=click.Choice(["responsibility", "management", "enforcement",
                                                          "supervision"]))
@click.option("--valid-from", default=None, metavar="YYYY-MM-DD",
              help="The local day (the deployment's time zone) the list takes effect; default today.")
@click.option("--mapping", "mapping_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="YAML: columns {grid_code: 网格编码, name: …}, set {kind: unit}, values {kind: {单位: unit}}.")
@click.option("--encoding", default=None, help="A CSV's text encoding when it is not UTF-8 (or GB18030).")
@click.option("--max-bad-ratio", type=float, default=0.05, show_default=True,
              help="Refuse the whole file when more rows than this share have an error.")
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write every problem to this CSV (cells safe for spreadsheets).")
@_source_options
@click.pass_context
def ownership_import(ctx: click.Context, file: Path, district: str, role: str, valid_from: str | None,
                     mapping_file: Path | None, encoding: str | None, max_bad_ratio: float,
                     report_path: Path | None) -> None:
    """Assign parties to unit grids from FILE: a CSV of grid code → party (grid_code, kind, code, name,
    contact), or a vector file of responsibility areas (any format GDAL reads here, its CRS from the file)
    whose parties get the grids they cover by the largest share (ties and slivers under 5 % reported).

    \b
    The previous assignment of each listed grid in the role ends where the new one starts (the first instant
    of --valid-from there); grids the file does not list keep their owner; re-importing changes nothing.
    Parties are matched by (kind, code), else created from the row's name and contact. Kinds: department,
    unit, street_office, community, team, person, frontage_unit, property_company (or 街道办事处, 社区, 单位 …).
    """
    from citygrid.responsibility.ownership_import import ImportOptions, import_ownership, load_mapping

    day = _day_option(valid_from, "--valid-from")
    mapping = load_mapping(_read_text(mapping_file, "--mapping"), f"mapping file {mapping_file.name}") \
        if mapping_file else None
    source, licence = _given_source(ctx, file)
    options = ImportOptions(district=district, role=role, valid_from=day, source=source, licence=licence,
                            max_bad_ratio=max_bad_ratio, encoding=encoding,
                            **({"mapping": mapping} if mapping else {})).validate()
    with _transaction(_settings(ctx)) as conn:
        result = import_ownership(conn, file, options)
        if report_path is not None:  # before the commit: a report that cannot be written imports nothing
            _write_report(report_path, result.problems)
    _echo_json({**result.as_dict(100), **({"report": str(report_path)} if report_path is not None else {})})
    if result.state == "rejected":
        ctx.exit(2)


def _day_option(value: str | None, name: str) -> Any:
    """A YYYY-MM-DD option as a date (None when not given); ``InvalidInput`` naming the option otherwise."""
    import datetime as dt
    import re

    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value.strip()):
        raise InvalidInput(f"{name} must be a date, YYYY-MM-DD", field=name)
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{name} {value.strip()!r} is not a date", field=name) from None


def _read_text(path: Path, name: str) -> bytes:
    """A small file's bytes (a mapping); ``InvalidInput`` naming the option when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{name} {path}: {exc.strerror or exc}", field=name) from None


def _write_report(path: Path, problems: list[dict[str, Any]]) -> None:
    """Every problem as a CSV (``ownership_import.report_csv``); ``InvalidInput`` when it cannot be written."""
    from citygrid.responsibility.ownership_import import report_csv

    try:
        path.write_text(report_csv(problems), encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"--report {path}: {exc.strerror or exc}", field="report") from None


# ------------------------------------------------------------------------------------------ people
@cli.group(cls=CitygridGroup)
def people() -> None:
    """Named people (实名制, #22) and the slots they hold, dated: supervisors, team leaders, enforcement officers,
    community heads, units' contacts."""


@people.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--district", required=True, help="District code (110105, or NYCBK in the alnum scheme).")
@click.option("--valid-from", default=None, metavar="YYYY-MM-DD",
              help="The local day rows without their own valid_from take effect; default today.")
@click.option("--encoding", default=None, help="The CSV's text encoding when it is not UTF-8 (or GB18030).")
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write every problem to this CSV (cells safe for spreadsheets).")
@_source_options
@click.pass_context
def people_import(ctx: click.Context, file: Path, district: str, valid_from: str | None, encoding: str | None,
                  report_path: Path | None) -> None:
    """Import people and their slots from a CSV: name, role, phone, account, code, position, valid_from.

    \b
    role: supervisor (code: a supervision grid), team_leader (a team), enforcement_officer (a community;
    position lead or assisting), community_head (a community), unit_contact (a party, e.g. a frontage unit).
    A person is matched by account, else by name and phone. A slot's previous holder is closed where the new
    one starts. One bad row imports nothing (exit 2, every row's problem listed). 监管分离: an account cannot
    both supervise and dispose.
    """
    from citygrid.loaders.tables import read_csv_table
    from citygrid.responsibility.people import import_people

    day = _day_option(valid_from, "--valid-from")
    source, _licence = _given_source(ctx, file)
    table, _encoding = read_csv_table(file, encoding=encoding)
    with _transaction(_settings(ctx)) as conn:
        try:
            result = import_people(conn, district, table, valid_from=day, source=source)
        except InvalidInput as exc:
            if report_path is not None:
                _write_report(report_path, exc.details)
            raise
        if report_path is not None:
            _write_report(report_path, result["problems"])
    _echo_json({**result, "problems": result["problems"][:100]})


@people.command("list")
@click.option("--district", required=True, help="District code.")
@click.option("--role", default=None, type=click.Choice(["supervisor", "enforcement_officer", "community_head",
                                                         "unit_contact"]))
@click.pass_context
def people_list(ctx: click.Context, district: str, role: str | None) -> None:
    """The district's people with the slots they hold now (JSON, phones included: the CLI is an operator's)."""
    from citygrid.responsibility.queries import PeopleFilter, list_people

    with _transaction(_settings(ctx)) as conn:
        _echo_json(list_people(conn, PeopleFilter(district=district, role=role, phones=True, limit=100_000)))


# ------------------------------------------------------------------------------------------ demo, status, serve
@cli.command("load-demo")
@click.argument("demo", default="chaoyang")
@click.option("--force", is_flag=True, help="Reload even when the district is already there.")
@click.pass_context
def load_demo(ctx: click.Context, demo: str, force: bool) -> None:
    """Set up and load a real demo district: chaoyang (Beijing) or guancheng (Zhengzhou)."""
    from citygrid import deploy

    settings = _settings(ctx)
    summary = deploy.load_demo(settings, demo, force=force)
    if summary["loaded"] or summary.get("grids") or summary.get("synthetic_history") or summary.get("synthetic_census"):
        _echo_json(summary)
    else:
        click.echo(f"{summary['district']} already loaded in {summary['database']}, with its grids")
    if summary.get("accounts"):
        where = deploy.demo_password_file(settings)
        shown = (f"the password {deploy.demo_password(settings)} (shown only now; kept in {where})"
                 if summary.get("demo_password_created") else f"the demo password kept in {where}")
        click.echo(f"demo accounts {', '.join(summary['accounts'])} created: sign in with {shown}")


@cli.command("backup")
@click.argument("district")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), required=True,
              help="The backup file to write (a zip).")
@click.pass_context
def backup_command(ctx: click.Context, district: str, out: Path) -> None:
    """Back up every row of one district (one consistent snapshot) and its cases' photo files to a file."""
    from citygrid import backup

    if out.exists():
        raise InvalidInput(f"{out} exists; choose another name (a backup never overwrites)", field="out")
    partial = out.with_name(out.name + ".partial")
    settings = _settings(ctx)
    try:
        with _transaction(settings, isolation="REPEATABLE READ") as conn:
            manifest = backup.backup(conn, district, partial, photos_dir=settings.photos_dir)
        partial.rename(out)
    finally:
        partial.unlink(missing_ok=True)
    _echo_json({"file": str(out), "sha256": backup.digest(out), "district": district,
                "schema_revision": manifest["schema_revision"],
                "rows": {t: v["rows"] for t, v in manifest["tables"].items()},
                "photos": len(manifest.get("photos") or {}), "photos_missing": manifest.get("photos_missing", [])})


@cli.command("restore")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--replace", is_flag=True, help="Overwrite the district when it exists.")
@click.pass_context
def restore_command(ctx: click.Context, file: Path, replace: bool) -> None:
    """Restore a district from a backup, in one transaction (nothing changes if any step fails), and the photo
    files missing from this deployment's photo directory."""
    from citygrid import backup

    settings = _settings(ctx)
    with _transaction(settings) as conn:
        _echo_json(backup.restore(conn, file, replace=replace, photos_dir=settings.photos_dir))


# ------------------------------------------------------------------------------------------ accounts
@cli.group(cls=CitygridGroup)
def users() -> None:
    """Accounts: add, list, disable/enable, set a password, issue and revoke API tokens."""


@users.command("add")
@click.argument("username")
@click.option("--roles", required=True, help="Comma-separated: planner, supervisor, dispatcher, unit, analyst, gis, "
                                             "admin.")
@click.option("--team", default=None, help="Supervisors: their supervision team (e.g. 110105T01).")
@click.option("--district", default=None, help="The district the user works in (its code).")
@click.option("--party", default=None, help="Unit accounts: the code of their party (parties.code in --district; "
                                            "they read and act on the cases dispatched to it).")
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (else prompt; "
                                                     "token-only users need none: --no-password).")
@click.option("--no-password", is_flag=True, help="An API-only user (signs in with tokens only).")
@click.pass_context
def users_add(ctx: click.Context, username: str, roles: str, team: str | None, district: str | None,
              party: str | None, display_name: str, password_stdin: bool, no_password: bool) -> None:
    """Add a user (the password is hashed with Argon2id; it is never stored or shown)."""
    from citygrid.accounts import service as accounts

    password = None
    if not no_password:
        password = (sys.stdin.readline().rstrip("\n") if password_stdin
                    else click.prompt("password", hide_input=True, confirmation_prompt=True))
    with _transaction(_settings(ctx)) as conn:
        _echo_json(accounts.add_user(conn, username.strip().lower(), accounts.parse_roles(roles), password=password,
                                     display_name=display_name, district=district, team=team, party=party))


@users.command("roles")
@click.argument("username")
@click.option("--roles", required=True, help="The account's roles from now on, comma-separated.")
@click.option("--team", default=None, help="Supervisors: their supervision team (default: the one they have).")
@click.option("--party", default=None, help="Unit accounts: their party's code (default: the one they have).")
@click.pass_context
def users_roles(ctx: click.Context, username: str, roles: str, team: str | None, party: str | None) -> None:
    """Change a user's roles. 监管分离: one account cannot both supervise (supervisor) and dispose (unit), nor
    take the other side of a person it is linked to (exit 4 with the rule)."""
    from citygrid.accounts import service as accounts

    with _transaction(_settings(ctx)) as conn:
        _echo_json(accounts.set_roles(conn, username.strip().lower(), accounts.parse_roles(roles), team=team,
                                      party=party))


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    from citygrid.accounts import service as accounts

    with _transaction(_settings(ctx)) as conn:
        _echo_json(accounts.list_users(conn))


@users.command("disable")
@click.argument("username")
@click.option("--enable", is_flag=True, help="Enable the user again instead.")
@click.pass_context
def users_disable(ctx: click.Context, username: str, enable: bool) -> None:
    """Disable a user: their sessions end and their tokens stop working at once."""
    from citygrid.accounts import service as accounts

    with _transaction(_settings(ctx)) as conn:
        accounts.set_disabled(conn, username, not enable)
    _echo_json({"username": username, "disabled": not enable})


@users.command("password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True)
@click.pass_context
def users_password(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Set a user's password: their sessions end and their API tokens are revoked."""
    from citygrid.accounts import service as accounts

    password = (sys.stdin.readline().rstrip("\n") if password_stdin
                else click.prompt("new password", hide_input=True, confirmation_prompt=True))
    with _transaction(_settings(ctx)) as conn:
        ended = accounts.set_password(conn, username, password)
    _echo_json({"username": username, "password": "changed", **ended})


@users.command("token")
@click.argument("username")
@click.option("--label", default="", help="What the token is for.")
@click.option("--days", type=float, default=None, help="Expires after this many days (default: never).")
@click.option("--revoke", "revoke_id", type=int, default=None, help="Revoke the token with this id instead.")
@click.pass_context
def users_token(ctx: click.Context, username: str, label: str, days: float | None, revoke_id: int | None) -> None:
    """Issue an API token (printed once; send it as 'Authorization: Bearer <token>'), or revoke one."""
    from citygrid.accounts import service as accounts

    with _transaction(_settings(ctx)) as conn:
        if revoke_id is not None:
            accounts.revoke_token(conn, revoke_id)
            _echo_json({"token_id": revoke_id, "revoked": True})
            return
        _echo_json(accounts.issue_token(conn, username, label=label, days=days))


@cli.command("audit")
@click.option("--kind", "object_kind", default=None, help="Object kind (a table such as cases, or grid_version).")
@click.option("--id", "object_id", default=None, help="Object id.")
@click.option("--actor", default=None, help="Who.")
@click.option("--district", default=None)
@click.option("--since", default=None, help="ISO 8601 date or time.")
@click.option("--until", default=None, help="ISO 8601 date (that whole day) or time (exclusive).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.pass_context
def audit_command(ctx: click.Context, object_kind: str | None, object_id: str | None, actor: str | None,
                  district: str | None, since: str | None, until: str | None, limit: int) -> None:
    """The audit log, newest first, with before/after values."""
    import datetime as dt

    from citygrid.accounts.queries import AuditFilter, audit_entries
    from citygrid.periods import period

    def iso(value: str, name: str) -> str:
        try:
            return dt.datetime.fromisoformat(value).isoformat()
        except ValueError:
            raise InvalidInput(f"{name} must be an ISO 8601 date or date-time", field=name) from None

    # inclusive dates: --since 2026-03-01 --until 2026-03-01 is that one day
    since, until = period(since, until, iso, start_field="--since", end_field="--until")
    with _transaction(_settings(ctx)) as conn:
        _echo_json(audit_entries(conn, AuditFilter(object_kind=object_kind, object_id=object_id, actor=actor,
                                                   district=district, start=since, end=until, limit=limit)))


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Versions, schema revision, storage CRS and districts of the deployment."""
    from citygrid import deploy

    info = deploy.status(_settings(ctx))
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, default=str))
        return
    click.echo(f"citygrid {info['app_version']} · PostgreSQL {info['postgresql_version']} · PostGIS "
               f"{info['postgis_version']} · schema {info['schema_revision']} · EPSG:{info['srid']} · "
               f"{info['timezone']}")
    for d in info["districts"]:
        synthetic = f" ({d['synthetic_cases']} SYNTHETIC)" if d["synthetic_cases"] else ""
        click.echo(f"  {d['code']} {d['name']}: {d['area_km2']} km², {d['streets']} streets, "
                   f"{d['communities']} communities, {d['roads']} roads ({d['road_km']} km), "
                   f"{d['components']} components, {d['cases']} cases{synthetic}")
        for s in d["sources"]:
            licence = f" ({s['licence']})" if s["licence"] else ""
            click.echo(f"    {s['kind']}: {s['source']}{licence}{' — SYNTHETIC' if s['synthetic'] else ''}")


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--prod", is_flag=True, help="gunicorn with workers for this machine, JSON access logs, graceful stop.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="With --prod: override the worker count.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, prod: bool, workers: int | None) -> None:
    """Serve the map and the API."""
    from citygrid import deploy
    from citygrid.app import create_app
    from citygrid.webmap.ratelimit import proxy_warning

    settings = _settings(ctx)
    deploy.ensure_server(settings)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    # on stderr after the URL line (stdout flushed first): scripts read the URL from the first line
    warning = proxy_warning(host, settings.trusted_proxy, prod=prod)
    if prod:
        from citygrid.webmap.prod import ProdServer

        create_app({"CITYGRID_SETTINGS": settings})  # check the schema once before forking workers
        click.echo(f"citygrid (gunicorn) is serving {db.database_url(settings).database} at http://{shown}:{port}/  "
                   "(Ctrl-C stops)")
        _echo_demo_sign_in(settings)
        sys.stdout.flush()
        if warning:
            click.echo(f"warning: {warning}", err=True)
        ProdServer(lambda: create_app({"CITYGRID_SETTINGS": settings}), host, port, workers=workers).run()
        return
    app = create_app({"CITYGRID_SETTINGS": settings})
    click.echo(f"citygrid is serving {db.database_url(settings).database} at http://{shown}:{port}/  (Ctrl-C stops)")
    _echo_demo_sign_in(settings)
    sys.stdout.flush()
    if warning:
        click.echo(f"warning: {warning}", err=True)
    app.run(host=host, port=port, threaded=True, use_reloader=False)


def _echo_demo_sign_in(settings: Settings) -> None:
    """Where a demo deployment's users get in: the file holding the demo password (load-demo made it and
    printed it once; it is not printed on every start, where logs and screens would keep it). Only when this
    database has the demo accounts: a city's own deployment has no demo sign-in to offer."""
    from citygrid import deploy

    names = deploy.demo_accounts(settings)
    if names and deploy.demo_password_file(settings).exists():
        click.echo(f"  sign in as {' or '.join(repr(n) for n in names)} with the demo password kept in "
                   f"{deploy.demo_password_file(settings)}")


# ------------------------------------------------------------------------------------------ frontage
@cli.group(cls=CitygridGroup)
def frontage() -> None:
    """Frontage units (门前三包) and property companies: the responsibility units of the pavement in front of
    their premises (#22)."""


@frontage.command("import")
@_import_command
@click.option("--district", required=True, help="District code (e.g. 410104, or NYCBK in the alnum scheme).")
@click.option("--wkt-field", default=None, help="CSV: the column holding each frontage polygon as WKT "
              "(default: wkt, geometry, geom); a CSV needs --crs.")
@click.option("--valid-from", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="First (local) day of units whose row gives no valid_from; default today.")
@click.pass_context
def frontage_import(ctx: click.Context, file: Path, crs: str | None, layer: str | None, encoding: str | None,
                    source: str | None, licence: str, district: str, wkt_field: str | None, valid_from) -> None:
    """Import frontage units from FILE (any vector file, or a CSV with WKT polygons): name, kind (shop,
    institution, property_company, market, other), credit_code (统一社会信用代码) or registry_id,
    contact_person, contact_phone, address, valid_from, valid_to; rows of one credit code are one unit with
    several frontage polygons. Re-importing updates the units named; units the file does not name are kept."""
    from citygrid.responsibility.frontage_import import import_frontage, read_frontage_file

    read = read_frontage_file(file, crs_text=crs, layer=layer, encoding=encoding, wkt_field=wkt_field)
    with _transaction(_settings(ctx)) as conn:
        _echo_json(import_frontage(conn, read, district=district, source=_source_of(source, file), licence=licence,
                                   valid_from=valid_from.date() if valid_from else None))


@frontage.command("list")
@click.option("--district", required=True)
@click.option("--all", "everything", is_flag=True, help="Also units whose validity has ended or not begun.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.pass_context
def frontage_list(ctx: click.Context, district: str, everything: bool, limit: int) -> None:
    """The district's frontage units as GeoJSON (EPSG:4326)."""
    from citygrid.responsibility.queries import FrontageFilter, frontage_units

    with _transaction(_settings(ctx)) as conn:
        _echo_json(frontage_units(conn, FrontageFilter(districts=(district,), current_only=not everything,
                                                       phones=True, limit=limit)))


# ------------------------------------------------------------------------------------------ rotation
@cli.group(cls=CitygridGroup)
def rotation() -> None:
    """Supervisor rotation (seed 001): grids within the team every two months, teams and leaders yearly."""


@rotation.command("plan")
@click.option("--district", required=True)
@click.option("--start", required=True, metavar="YYYY-MM-DD", help="The plan's first local day.")
@click.option("--months", type=int, default=12, show_default=True, help="A multiple of 2, at most 36.")
@click.option("--min-gap", type=int, default=3, show_default=True,
              help="Periods before a supervisor may return to a grid.")
@click.option("--team-move-at-start", is_flag=True,
              help="The yearly move to another team (and new leaders) at the start, not only a year in.")
@click.option("--time-limit", "time_limit_s", type=float, default=60.0, show_default=True,
              help="Seconds the solver may spend on the whole plan.")
@click.option("--seed", type=int, default=2026, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the whole plan (periods and rows), not the summary.")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write the plan to FILE: .csv (spreadsheet-safe) or .json.")
@click.pass_context
def rotation_plan(ctx: click.Context, district: str, start: str, months: int, min_gap: int,
                  team_move_at_start: bool, time_limit_s: float, seed: int, as_json: bool, out: Path | None) -> None:
    """Make and store a rotation plan for the district's supervisors (OR-Tools CP-SAT); prints its id, the
    workload spread and the violations (none)."""
    from citygrid.responsibility import rotation_plans
    from citygrid.responsibility.rotation import Request

    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise InvalidInput("--out must name a .csv or .json file", field="out")
    request = Request(rotation_plans.validate_start(start), months, min_gap, team_move_at_start, time_limit_s,
                      seed)
    with _transaction(_settings(ctx)) as conn:
        made = rotation_plans.make_plan(conn, district, request, created_by=cli_actor())
        plan = rotation_plans.read_plan(conn, made["plan_id"])
    if out is not None:
        text = rotation_plans.plan_csv(plan) if out.suffix.lower() == ".csv" else \
            json.dumps(plan, ensure_ascii=False, indent=1, default=str)
        out.write_text(text, encoding="utf-8")
    _echo_json(plan if as_json else made)


@rotation.command("publish")
@click.argument("plan_id", type=click.IntRange(1, 2**62))
@click.pass_context
def rotation_publish(ctx: click.Context, plan_id: int) -> None:
    """Write a plan's dated supervisor and team-leader assignments (once per plan)."""
    from citygrid.responsibility import rotation_plans

    with _transaction(_settings(ctx)) as conn:
        _echo_json(rotation_plans.publish_plan(conn, plan_id, by=cli_actor()))


@rotation.command("show")
@click.argument("plan_id", type=click.IntRange(1, 2**62))
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@click.pass_context
def rotation_show(ctx: click.Context, plan_id: int, fmt: str) -> None:
    """A stored plan, as JSON or spreadsheet-safe CSV."""
    from citygrid.responsibility import rotation_plans

    with _transaction(_settings(ctx)) as conn:
        plan = rotation_plans.read_plan(conn, plan_id)
    if fmt == "csv":
        click.echo(rotation_plans.plan_csv(plan), nl=False)
    else:
        _echo_json(plan)


# ------------------------------------------------------------------------------------------ evaluate
@cli.command("evaluate")
@click.option("--district", required=True, help="District code.")
@click.option("--month", required=True, metavar="YYYY-MM", help="Local month of the deployment's zone.")
@click.option("--kind", type=click.Choice(["all", "supervisors", "teams", "units", "streets", "communities"]),
              default="all", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "html"]), default="json", show_default=True,
              help="html: the printable report (every kind, one A4 page each).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of standard output.")
@click.pass_context
def evaluate(ctx: click.Context, district: str, month: str, kind: str, fmt: str, output: str | None) -> None:
    """The monthly evaluation (考核评价): indicators, scores, grades and rankings (#24)."""
    import csv
    import io

    from citygrid.evaluation import queries, report
    from citygrid.evaluation.indicators import KINDS
    from citygrid.evaluation.scores import EvaluationRules
    from citygrid.webmap.formats import csv_cell

    rules = EvaluationRules.load(_settings(ctx).data_dir)
    kinds = KINDS if kind == "all" or fmt == "html" else (kind,)
    with _transaction(_settings(ctx)) as conn:
        answer = queries.evaluate_all(conn, rules, district, month, kinds=kinds)
    if fmt == "html":
        text = report.render(answer)
    elif fmt == "csv":
        buffer = io.StringIO()
        columns = list(dict.fromkeys(c for k in kinds for c in queries.fields(k)))
        writer = csv.DictWriter(buffer, fieldnames=["kind", *columns], extrasaction="ignore")
        writer.writeheader()
        for name in kinds:
            for row in answer["kinds"][name]["rows"]:
                writer.writerow({"kind": name, **{k: csv_cell(v) for k, v in row.items()}})
        text = buffer.getvalue()
    else:
        text = json.dumps(answer, ensure_ascii=False, indent=2, default=str) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)



# ------------------------------------------------------------------------------------------ hotspots (#24)
def _hotspot_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``citygrid hotspots`` and ``citygrid hotspots emerging`` share (those of the API);
    ``--district`` is required by each (checked in the command: the group's own would be asked for before
    ``emerging``)."""
    for option in reversed([
            click.option("--district", default=None, help="Required."),
            click.option("--level", type=click.Choice(["unit", "supervision", "community", "street"]),
                         default="unit", show_default=True),
            click.option("--start", default=None, help="ISO 8601 date (local) or date-time."),
            click.option("--end", default=None, help="ISO 8601 date (that whole day) or date-time (exclusive)."),
            click.option("--kind", type=click.Choice(["event", "component"]), default=None),
            click.option("--class-code", default=None),
            click.option("--weights", type=click.Choice(["queen", "distance"]), default="queen", show_default=True),
            click.option("--distance-m", type=float, default=None, help="Distance band in metres (default 500)."),
            click.option("--alpha", type=float, default=0.05, show_default=True),
            click.option("--format", "fmt", type=click.Choice(["json", "csv", "geojson"]), default="json",
                         show_default=True),
            click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None)]):
        command = option(command)
    return command


def _required_district(district: str | None) -> str:
    if not district:
        raise InvalidInput("--district is required", field="--district")
    return district


def _hotspot_filter(conn: Connection, district: str, start: str | None, end: str | None, kind: str | None,
                    class_code: str | None) -> Any:
    """The case filter of the hot-spot commands (dates are local days of the deployment's zone), after checking
    ``district`` against the deployment's code scheme."""
    from citygrid import codes
    from citygrid.periods import period
    from citygrid.spatial.analysis.queries import CaseloadFilter
    from citygrid.spatial.timezones import instant

    zone = db.deployment_zone(conn)
    codes.scheme(db.deployment_code_scheme(conn)).check("district", district, "--district")

    def parse(value: str, name: str) -> str:
        try:
            return instant(value, zone).isoformat()
        except (ValueError, OverflowError):
            raise InvalidInput(f"{name} must be an ISO 8601 date or date-time", field=name) from None

    first, last = period(start, end, parse, start_field="--start", end_field="--end")
    code = None if class_code is None else codes.check("class", class_code, "--class-code")
    return CaseloadFilter(start=first, end=last, kind=kind, class_code=code)


def _write_table(answer: dict[str, Any], fields: tuple[str, ...], fmt: str, output: str | None,
                 id_key: str = "code") -> None:
    """An analysis answer as JSON, GeoJSON (EPSG:4326; each feature's id its row's ``id_key``) or CSV on stdout
    or in ``output``."""
    import csv
    import io

    from citygrid.webmap.formats import csv_cell

    rows = answer.pop("rows")
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
        text = buffer.getvalue()
    elif fmt == "geojson":
        features = [{"type": "Feature", "id": r.get(id_key), "geometry": r.get("geometry"),
                     "properties": {k: v for k, v in r.items() if k != "geometry"}} for r in rows]
        text = json.dumps({"type": "FeatureCollection", "features": features, **answer}, ensure_ascii=False,
                          default=str) + "\n"
    else:
        text = json.dumps({**answer, "rows": rows}, ensure_ascii=False, indent=2, default=str) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@cli.group("hotspots", cls=CitygridGroup, invoke_without_command=True)
@_hotspot_options
@click.option("--permutations", type=click.IntRange(0, 9999), default=999, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=2026, show_default=True)
@click.option("--fdr/--no-fdr", default=False, show_default=True, help="Benjamini-Hochberg per confidence level.")
@click.pass_context
def hotspots_command(ctx: click.Context, district: str, level: str, start: str | None, end: str | None,
                     kind: str | None, class_code: str | None, weights: str, distance_m: float | None, alpha: float,
                     fmt: str, output: str | None, permutations: int, seed: int, fdr: bool) -> None:
    """Getis-Ord Gi* of the cases per area for a period (z, pseudo p, ArcGIS's classes); ``hotspots
    emerging`` for trends over months or weeks."""
    if ctx.invoked_subcommand is not None:
        return
    from citygrid.hotspots import queries

    district = _required_district(district)
    with _transaction(_settings(ctx)) as conn:
        answer = queries.hotspots(conn, district, _hotspot_filter(conn, district, start, end, kind, class_code),
                                  queries.HotspotParams(level=level, weights=weights, distance_m=distance_m,
                                                        permutations=permutations, seed=seed, alpha=alpha, fdr=fdr),
                                  with_geometry=fmt == "geojson")
    _write_table(answer, queries.GI_FIELDS, fmt, output)


@hotspots_command.command("emerging")
@_hotspot_options
@click.option("--bin", "bin_unit", type=click.Choice(["month", "week"]), default="month", show_default=True)
@click.option("--k", type=click.IntRange(0, 12), default=1, show_default=True, help="Previous bins in the "
              "neighbourhood.")
@click.option("--fdr/--no-fdr", default=True, show_default=True, help="Benjamini-Hochberg over the cube's bins.")
@click.pass_context
def hotspots_emerging(ctx: click.Context, district: str, level: str, start: str | None, end: str | None,
                      kind: str | None, class_code: str | None, weights: str, distance_m: float | None,
                      alpha: float, fmt: str, output: str | None, bin_unit: str, k: int, fdr: bool) -> None:
    """Emerging hot spots: space-time Gi* per local month or week, Mann-Kendall trend, ArcGIS's 17 categories."""
    from citygrid.hotspots import queries

    district = _required_district(district)
    with _transaction(_settings(ctx)) as conn:
        answer = queries.emerging(conn, district, _hotspot_filter(conn, district, start, end, kind, class_code),
                                  queries.EmergingParams(level=level, weights=weights, distance_m=distance_m,
                                                         bin=bin_unit, k=k, alpha=alpha, fdr=fdr),
                                  with_geometry=fmt == "geojson")
    _write_table(answer, queries.EMERGING_FIELDS, fmt, output)

# ------------------------------------------------------------------------------------------ recurrence (#24)
def _recurrence_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``citygrid recurrence components`` and ``places`` share (those of the API)."""
    for option in reversed([
            click.option("--district", required=True, help="District code."),
            click.option("--start", default=None, help="ISO 8601 date (local) or date-time; default: 365 days "
                         "before the end."),
            click.option("--end", default=None, help="ISO 8601 date (that whole day) or date-time (exclusive); "
                         "default: now."),
            click.option("--kind", type=click.Choice(["event", "component"]), default=None),
            click.option("--class-code", default=None),
            click.option("--min-cases", type=click.IntRange(2, 1000), default=3, show_default=True),
            click.option("--limit", type=click.IntRange(1, 5000), default=1000, show_default=True),
            click.option("--format", "fmt", type=click.Choice(["json", "csv", "geojson"]), default="json",
                         show_default=True),
            click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None)]):
        command = option(command)
    return command


def _recurrence_filters(conn: Connection, district: str, start: str | None, end: str | None, kind: str | None,
                        class_code: str | None) -> Any:
    """The recurrence filters (``recurrence.queries.filters``): dates are local days of the deployment's zone,
    the end day inclusive; ``district`` and ``class_code`` checked against the code formats."""
    import datetime as dt

    from citygrid import codes
    from citygrid.periods import period
    from citygrid.recurrence.queries import filters
    from citygrid.spatial.timezones import instant

    zone = db.deployment_zone(conn)
    codes.scheme(db.deployment_code_scheme(conn)).check("district", district, "--district")

    def parse(value: str, name: str) -> dt.datetime:
        try:
            return instant(value, zone)
        except (ValueError, OverflowError):
            raise InvalidInput(f"{name} must be an ISO 8601 date or date-time", field=name) from None

    first, last = period(start, end, parse, start_field="--start", end_field="--end")
    code = None if class_code is None else codes.check("class", class_code, "--class-code")
    return filters(first, last, code, kind)


@cli.group("recurrence", cls=CitygridGroup)
def recurrence_group() -> None:
    """Recurrence (#24): chronic components and recurring places, for the source agencies."""


@recurrence_group.command("components")
@_recurrence_options
@click.pass_context
def recurrence_components(ctx: click.Context, district: str, start: str | None, end: str | None, kind: str | None,
                          class_code: str | None, min_cases: int, limit: int, fmt: str, output: str | None) -> None:
    """Chronic components: those with at least --min-cases cases in the period, ranked, with the owning
    department and the repeat intervals."""
    from citygrid.recurrence import queries

    with _transaction(_settings(ctx)) as conn:
        answer = queries.chronic_components(conn, district, _recurrence_filters(conn, district, start, end, kind,
                                                                                class_code),
                                            min_cases=min_cases, limit=limit)
    _write_table(answer, queries.COMPONENT_FIELDS, fmt, output, id_key="obj_id")


@recurrence_group.command("places")
@_recurrence_options
@click.option("--eps-m", type=click.FloatRange(5, 1000), default=50.0, show_default=True,
              help="Neighbours lie at most this many metres apart.")
@click.option("--window-days", type=click.FloatRange(1, 730), default=90.0, show_default=True,
              help="... and were reported at most this many days apart.")
@click.pass_context
def recurrence_places(ctx: click.Context, district: str, start: str | None, end: str | None, kind: str | None,
                      class_code: str | None, min_cases: int, limit: int, fmt: str, output: str | None, eps_m: float,
                      window_days: float) -> None:
    """Recurring places: ST-DBSCAN clusters of one class among the cases without a component, ranked by size
    and recency, with their grids, cases and a polygon (EPSG:4326)."""
    from citygrid.recurrence import queries
    from citygrid.recurrence.places import PlaceParams

    with _transaction(_settings(ctx)) as conn:
        answer = queries.recurring_places(conn, district, _recurrence_filters(conn, district, start, end, kind,
                                                                              class_code),
                                          PlaceParams(eps_m=eps_m, window_days=window_days, min_cases=min_cases),
                                          limit=limit)
    _write_table(answer, queries.PLACE_FIELDS, fmt, output, id_key="cluster_id")


# ------------------------------------------------------------------------------------------ export (#25)
@cli.command("export")
@click.argument("kind", metavar="KIND")
@click.option("--district", required=True)
@click.option("--format", "fmt", type=click.Choice(["gpkg", "shp", "geojson", "csv"]), required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The file; for shp a .shp (the set beside it) or a .zip (the set zipped).")
@click.option("--version", "version_id", type=click.IntRange(1, 2**31 - 1), default=None,
              help="A grid version (grid kinds; default the current one).")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="A local day: the version or census in force at its end, the cases reported during it.")
@click.option("--crs", default=None, help="deployment (default for gpkg/shp), EPSG:4326 (default for geojson/csv) "
                                          "or EPSG:4490.")
@click.option("--encoding", default="UTF-8", show_default=True, help="UTF-8 or GBK (shp and csv).")
@click.option("--style-role", default=None, help="The owner role that colours unit grids in a GeoPackage's style.")
@click.pass_context
def export_command(ctx: click.Context, kind: str, district: str, fmt: str, output: Path, version_id: int | None,
                   day: Any, crs: str | None, encoding: str, style_role: str | None) -> None:
    """Export a district's KIND (unit-grids, supervision-grids, teams, communities, streets, components, cases,
    frontage-units) as the operator: everything, whoever may read it on the server."""
    from citygrid.interop import exports, queries

    request = exports.ExportRequest(kind=kind, district=district, fmt=fmt, version=version_id,
                                    day=day.date() if day else None, crs=crs, encoding=encoding)
    with _transaction(_settings(ctx)) as conn:
        _echo_json(exports.export(conn, request, output, queries.OPERATOR, style_role=style_role))


# ------------------------------------------------------------------------------------------ QGIS project (#25)
@cli.command("qgis-project")
@click.option("--district", required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The QGIS project file to write (.qgs).")
@click.option("--role", default=None, help="The owner role unit grids are coloured by: responsibility (default), "
                                           "management, enforcement or supervision.")
@click.option("--service", default=None, metavar="NAME",
              help="Connect through this pg_service.conf service instead of the deployment's URL.")
@click.option("--url-without-password", is_flag=True,
              help="Connect with the deployment's URL, its password left out (the default).")
@click.option("--ogc-url", default=None, metavar="URL",
              help="The server's OGC API (http://host:8000/ogc): the same layers through it, as a second group.")
@click.option("--ogc-authcfg", default=None, metavar="ID",
              help="The QGIS authentication configuration the OGC layers sign in with (cases need an account).")
@click.pass_context
def qgis_project_command(ctx: click.Context, district: str, output: Path, role: str | None, service: str | None,
                         url_without_password: bool, ogc_url: str | None, ogc_authcfg: str | None) -> None:
    """Write a QGIS project of a district: its PostGIS layers styled and labelled (no password in the file)."""
    from citygrid.interop import qgis_project

    if service is not None and url_without_password:
        raise InvalidInput("give --service or --url-without-password, not both", field="service")
    if output.suffix.lower() != ".qgs" or not output.parent.is_dir():
        raise InvalidInput(f"{output}: the output must be a .qgs file in an existing folder", field="output")
    settings = _settings(ctx)
    pg = (qgis_project.pg_from_service(service) if service is not None
          else qgis_project.pg_from_url(db.database_url(settings)))
    with _transaction(settings) as conn:
        text = qgis_project.project_xml(conn, district, pg=pg, role=role, ogc_url=ogc_url, ogc_authcfg=ogc_authcfg)
    from citygrid.interop.exports import staged_output

    with staged_output(output) as staged:  # whole or not at all; an unwritable folder is bad input
        staged.write_text(text, encoding="utf-8")
    _echo_json({"file": str(output), "district": district, "connection": pg.uri(), "ogc": ogc_url is not None})


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="citygrid")


if __name__ == "__main__":
    main()



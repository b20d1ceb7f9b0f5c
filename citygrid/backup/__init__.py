"""Backup and restore of one district: every row of every table keyed by ``district_code``.

A backup is a zip: ``manifest.json`` (format, schema revision, storage SRID, district, per table its columns,
row count and checksum) and one ``<table>.copy`` per table in PostgreSQL's COPY text format, which carries
every type (geometry as hex EWKB, JSON, ranges) exactly. Deployment-wide tables (taxonomy, deployment record)
are not part of it; the restoring deployment must have the same schema revision, SRID and taxonomy.

A restore is one transaction: the district's rows are deleted (children first) only with ``replace``, the
backup is copied in (parents first, identity values kept), identity sequences are moved past the restored
values, the checksums are verified, and the district's layer revisions are raised above anything seen before
so no map tile cached from earlier data survives. Any failure leaves the database as it was.

Photos (``citygrid.evidence``): given the deployment's photo directory, a backup also holds the file and the
thumbnail of every photo of the district's cases as ``photos/<sha256>.<ext>``, each with its sha256 and size in
the manifest (``photos``); a file missing from the directory is listed under ``photos_missing`` instead of
failing the backup. A restore checks every photo entry (a name that is not ``<sha256>.<ext>``, a size or hash that
differs from the manifest's: the file is refused, and so is the restore) before it writes the missing ones into
the directory, atomically; files already there are kept (same name, same content).
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from citygrid import codes
from citygrid.backup import store
from citygrid.components_survey.store import LOAD_PREFIX, RETIRED_PREFIX
from citygrid.errors import Conflict, InvalidInput, SchemaMismatch
from citygrid.evidence import service as evidence
from citygrid.evidence.storage import FILE_NAME, PhotoStorage
from citygrid.spatial import db
from citygrid.spatial import store as spatial_store

FORMAT = "citygrid-district-backup/1"
# Caches (rebuilt by triggers, raised past their old values on restore) and accounts (deployment-wide: a user
# may be scoped to a district but is not the district's record; restoring must not remove or revive accounts).
# Cell tables are a cache too (rebuilt from the grids when missing). Census load tables and replaced
# partitions are an import's scratch space, not the district's record.
SKIPPED = ("layer_revisions", "users", "grid_cell_tables")
SCRATCH_PREFIXES = (LOAD_PREFIX, RETIRED_PREFIX)


def district_tables(conn: Connection) -> list[str]:
    """Tables with a ``district_code`` column, parents before children (foreign keys among them). A
    partitioned table counts once, under its own name (its partitions are where it keeps the rows)."""
    tables = {t for t in store.tables_with_district_code(conn) - set(SKIPPED) if not t.startswith(SCRATCH_PREFIXES)}
    edges = store.foreign_keys(conn)
    parents = {t: {p for c, p in edges if c == t and p in tables and p != t} for t in tables}
    ordered: list[str] = []
    while parents:
        ready = sorted(t for t, ps in parents.items() if not ps - set(ordered))
        if not ready:
            raise RuntimeError(f"foreign keys form a cycle among {sorted(parents)}")
        ordered.extend(ready)
        for t in ready:
            del parents[t]
    return ordered


@contextmanager
def _session_zone(conn: Connection, zone: object) -> Iterator[None]:
    """The session's TimeZone set to ``zone`` (a backup's ``checksum_timezone``) inside, then back as it was;
    unchanged when ``zone`` is None (a backup made before it was recorded)."""
    if zone is None:
        yield
        return
    if not isinstance(zone, str) or not re.fullmatch(r"[A-Za-z0-9_+\-/:<>.,]{1,64}", zone) or ".." in zone:
        raise InvalidInput(f"the backup's checksum_timezone {str(zone)[:64]!r} is not a time zone name", field="file")
    was = store.session_timezone(conn)
    try:
        with conn.begin_nested():
            store.set_session_timezone(conn, zone)
    except DBAPIError:
        raise InvalidInput(f"the backup's checksum_timezone {zone!r} is unknown to this PostgreSQL server",
                           field="file") from None
    try:
        yield
    finally:
        store.set_session_timezone(conn, was)


def backup(conn: Connection, district: str, path: Path, photos_dir: Path | None = None) -> dict[str, Any]:
    """Write the district's rows to ``path`` (a zip), and with ``photos_dir`` (``Settings.photos_dir``) the files
    of its cases' photos; returns the manifest. Run it in a REPEATABLE READ transaction (the CLI does) so every
    table comes from one snapshot."""
    # Before the snapshot is taken: a census import swaps partitions, which a snapshot taken earlier would see
    # as an empty census; holding this lock makes a swap wait for the backup (and the backup for a swap).
    store.lock_components(conn)
    if not store.district_exists(conn, district):
        raise InvalidInput(f"no district {district} in this database", field="district")
    # The checksums hash rows as text, and a time's text follows the session's zone (the deployment's): the
    # manifest says which, so a deployment that records another zone (or corrected its own) can verify them.
    manifest: dict[str, Any] = {"format": FORMAT, "district": district, "srid": db.deployment_srid(conn),
                                "code_scheme": db.deployment_code_scheme(conn),
                                "checksum_timezone": store.session_timezone(conn),
                                "schema_revision": db.current_revision(conn), "tables": {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for table in district_tables(conn):
            columns = store.stored_columns(conn, table)
            rows, checksum = store.checksum(conn, table, columns, district)
            with archive.open(f"{table}.copy", "w", force_zip64=True) as out:
                for block in store.copy_out(conn, table, columns, district):
                    out.write(block)
            manifest["tables"][table] = {"columns": columns, "rows": rows, "md5": checksum}
        if photos_dir is not None:
            manifest.update(_write_photos(archive, PhotoStorage(photos_dir), evidence.district_files(conn, district)))
        archive.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
    return manifest


def _write_photos(archive: zipfile.ZipFile, storage: PhotoStorage, names: list[str]) -> dict[str, Any]:
    """Copy the photo files ``names`` (``<sha256>.<ext>``) into ``archive`` under ``photos/``; returns the
    manifest's ``photos`` (name -> sha256 and bytes) and ``photos_missing`` (names not in the directory)."""
    written: dict[str, dict[str, Any]] = {}
    missing = []
    for name in names:
        sha, _, ext = name.partition(".")
        try:
            data = storage.read(sha, ext)
        except FileNotFoundError:
            missing.append(name)
            continue
        archive.writestr(f"photos/{name}", data, compress_type=zipfile.ZIP_STORED)  # already compressed images
        written[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    return {"photos": written, "photos_missing": missing}


def _check_photo_entries(archive: zipfile.ZipFile, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The manifest's photo entries after checking each against its name and the file in ``archive``.

    Raises ``InvalidInput`` (field ``file``) for a name that is not ``<sha256>.<ext>`` (``../``, an absolute path),
    a hash in the manifest that is not the name's, an entry missing from the zip, or bytes whose size or sha256
    differ from the manifest's."""
    photos = manifest.get("photos") or {}
    if not isinstance(photos, dict):
        raise InvalidInput("the backup's photos entry is not a mapping of file names", field="file")
    for name, entry in photos.items():
        match = FILE_NAME.match(name) if isinstance(name, str) else None
        if match is None or not isinstance(entry, dict) or entry.get("sha256") != match[1]:
            raise InvalidInput(f"the backup names a photo {str(name)[:80]!r} that is not <sha256>.<ext> of its "
                               f"content: refused", field="file")
        sha = hashlib.sha256()
        size = 0
        try:
            for block in _blocks(archive, f"photos/{name}"):
                sha.update(block)
                size += len(block)
        except KeyError:
            raise InvalidInput(f"photo {name} is in the manifest but not in the backup", field="file") from None
        if sha.hexdigest() != match[1] or size != entry.get("bytes"):
            raise InvalidInput(f"photo {name}: its bytes differ from the manifest's (the file is damaged)",
                               field="file")
    return photos


def _restore_photos(archive: zipfile.ZipFile, manifest: dict[str, Any], photos_dir: Path | None) -> dict[str, int]:
    """Check every photo entry, then write those missing from ``photos_dir`` (none without one)."""
    photos = _check_photo_entries(archive, manifest)
    if photos_dir is None:
        return {"photos_in_backup": len(photos), "photos_written": 0}
    storage = PhotoStorage(photos_dir)
    written = 0
    for name in photos:
        try:
            written += storage.put_verified(name, _blocks(archive, f"photos/{name}"))
        except ValueError as exc:
            raise InvalidInput(f"photo {name}: {exc}", field="file") from None
    return {"photos_in_backup": len(photos), "photos_written": written}


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a backup; ``InvalidInput`` when the file is not one."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("manifest.json"))
    except (OSError, zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path} is not a citygrid district backup ({exc})", field="file") from exc
    if manifest.get("format") != FORMAT:
        raise InvalidInput(f"{path}: unknown backup format {manifest.get('format')!r} (expected {FORMAT})",
                           field="file")
    return manifest


def _blocks(archive: zipfile.ZipFile, name: str, size: int = 1 << 20) -> Iterator[bytes]:
    with archive.open(name) as member:
        while block := member.read(size):
            yield block


def restore(conn: Connection, path: Path, *, replace: bool = False, photos_dir: Path | None = None) -> dict[str, Any]:
    """Restore a district backup inside the caller's transaction; returns rows per table, and how many photo
    files the backup holds and how many were written into ``photos_dir`` (``Settings.photos_dir``; every photo
    entry is checked even without one).

    Raises ``SchemaMismatch`` for another schema revision, ``InvalidInput`` for another SRID or code scheme
    (``citygrid.codes``; a backup from before schemes were recorded: its district code must fit this
    deployment's) or a damaged file (checksum), ``Conflict`` when the district exists and ``replace`` is not set.
    """
    manifest = read_manifest(path)
    district = manifest["district"]
    revision = db.current_revision(conn)
    if manifest["schema_revision"] != revision:
        raise SchemaMismatch(f"the backup is of schema revision {manifest['schema_revision']}, this database is at "
                             f"{revision}: restore it into a deployment at the same revision")
    if manifest["srid"] != db.deployment_srid(conn):
        raise InvalidInput(f"the backup is stored in EPSG:{manifest['srid']}, this deployment in "
                           f"EPSG:{db.deployment_srid(conn)}", field="file")
    scheme = codes.deployment_scheme(conn)
    if manifest.get("code_scheme", scheme.name) != scheme.name:
        raise InvalidInput(f"the backup's codes follow the {codes.show(str(manifest['code_scheme']))} code scheme, "
                           f"this deployment's the {scheme.name} scheme", field="file")
    if not isinstance(district, str) or not scheme.matches("district", district):
        raise InvalidInput(f"the backup's district code {codes.show(str(district))} is not a district code of "
                           f"this deployment ({scheme.formats['district'].text})", field="file")
    tables = district_tables(conn)
    unknown = sorted(set(manifest["tables"]) - set(tables))
    if unknown:
        raise InvalidInput(f"the backup has tables this database does not: {', '.join(unknown)}", field="file")
    if store.district_exists(conn, district) and not replace:
        raise Conflict(f"district {district} exists in this database; restore with --replace to overwrite it")
    # The rows are the backup's, audit history included: the row triggers stay quiet and one audit row says
    # who restored what.
    db.quiet_row_audit(conn, True)
    old_revisions = store.layer_revisions(conn, district)
    for table in reversed(tables):
        store.delete_district_rows(conn, table, district)
    restored: dict[str, int] = {}
    with zipfile.ZipFile(path) as archive:
        for table in tables:
            entry = manifest["tables"].get(table)
            if entry is None:
                continue
            store.copy_in(conn, table, entry["columns"], _blocks(archive, f"{table}.copy"))
            with _session_zone(conn, manifest.get("checksum_timezone")):
                rows, checksum = store.checksum(conn, table, entry["columns"], district)
            if (rows, checksum) != (entry["rows"], entry["md5"]):
                raise InvalidInput(f"{table}: restored {rows} rows whose checksum differs from the backup's "
                                   f"({entry['rows']} rows): the file is damaged", field="file")
            restored[table] = rows
        photos = _restore_photos(archive, manifest, photos_dir)  # after the rows: a damaged table writes no file
    store.advance_identities(conn, tables)
    db.quiet_row_audit(conn, False)
    spatial_store.audit(conn, action="restore", object_kind="district", object_id=district, district=district,
                        after={"file": path.name, "rows": restored, "created_at": manifest.get("created_at")})
    for layer, value in old_revisions.items():
        store.raise_layer_revision(conn, district, layer, value + 1)
    return {"district": district, "tables": restored, "rows": sum(restored.values()), **photos}


def digest(path: Path) -> str:
    """sha256 of a backup file (printed by the CLI so an operator can check a copy)."""
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()

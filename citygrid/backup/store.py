"""SQL of district backups: the catalogue (which tables hold a district's rows, their columns, foreign keys and
identities), checksums, COPY out and in, and the session settings a restore changes.

Table and column names come from the catalogue (never from a file) and are quoted; values are bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


# ------------------------------------------------------------------------------------------ catalogue
def tables_with_district_code(conn: Connection) -> set[str]:
    """Ordinary and partitioned tables (not partitions) of schema ``public`` with a ``district_code`` column."""
    return set(conn.execute(sa.text(
        """SELECT c.relname FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'district_code' AND NOT a.attisdropped
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"""
    )).scalars())


def foreign_keys(conn: Connection) -> list[tuple[str, str]]:
    """(child table, parent table) of every foreign key."""
    return [tuple(r) for r in conn.execute(sa.text(
        """SELECT DISTINCT child.relname, parent.relname FROM pg_constraint k
             JOIN pg_class child ON child.oid = k.conrelid JOIN pg_class parent ON parent.oid = k.confrelid
            WHERE k.contype = 'f'""")).all()]


def stored_columns(conn: Connection, table: str) -> list[str]:
    """Stored columns of ``table`` in order (generated columns cannot be copied in)."""
    return list(conn.execute(sa.text(
        """SELECT column_name FROM information_schema.columns
            WHERE table_schema = 'public' AND table_name = :t AND is_generated = 'NEVER'
            ORDER BY ordinal_position"""), {"t": table}).scalars())


def district_exists(conn: Connection, district: str) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM districts WHERE district_code = :d"), {"d": district}).first() \
        is not None


# ------------------------------------------------------------------------------------------ rows
def checksum(conn: Connection, table: str, columns: list[str], district: str) -> tuple[int, str]:
    """(rows, md5 of the rows' text in a stable order) of one district's rows in ``table``."""
    listed = _listed(columns)
    row = conn.execute(sa.text(
        f"""SELECT count(*), coalesce(md5(string_agg(r::text, E'\\n' ORDER BY r::text)), '')
              FROM (SELECT {listed} FROM "{table}" WHERE district_code = :d) r"""), {"d": district}).one()
    return int(row[0]), str(row[1])


def copy_out(conn: Connection, table: str, columns: list[str], district: str) -> Iterator[bytes]:
    """The district's rows of ``table`` in PostgreSQL's COPY text format, block by block."""
    with _raw(conn).cursor() as cursor, cursor.copy(
            f'COPY (SELECT {_listed(columns)} FROM "{table}" WHERE district_code = %s) TO STDOUT',
            (district,)) as copy:
        for block in copy:
            yield bytes(block)


def copy_in(conn: Connection, table: str, columns: list[str], blocks: Iterable[bytes]) -> None:
    """Append rows in COPY text format (``columns`` in that order) to ``table``."""
    with _raw(conn).cursor() as cursor, cursor.copy(f'COPY "{table}" ({_listed(columns)}) FROM STDIN') as copy:
        for block in blocks:
            copy.write(block)


def delete_district_rows(conn: Connection, table: str, district: str) -> None:
    conn.execute(sa.text(f'DELETE FROM "{table}" WHERE district_code = :d'), {"d": district})


def advance_identities(conn: Connection, tables: list[str]) -> None:
    """Move each identity sequence of ``tables`` past the largest value now stored (restored rows kept theirs)."""
    identities = conn.execute(sa.text(
        """SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = 'public' AND is_identity = 'YES' AND table_name = ANY(:t)"""),
        {"t": tables}).all()
    for table, column in identities:
        conn.execute(sa.text(
            f"""SELECT setval(pg_get_serial_sequence(:t, :c),
                              GREATEST((SELECT max("{column}") FROM "{table}"), 1))"""), {"t": table, "c": column})


def lock_components(conn: Connection) -> None:
    """Hold off a census import's partition swap until the transaction ends (and wait for one under way)."""
    conn.execute(sa.text("LOCK TABLE components IN ACCESS SHARE MODE"))


# ------------------------------------------------------------------------------------------ layer revisions
def layer_revisions(conn: Connection, district: str) -> dict[str, int]:
    """The district's map-layer revision counters by layer."""
    return dict(conn.execute(sa.text(
        "SELECT layer, revision FROM layer_revisions WHERE district_code = :d"), {"d": district}).all())


def raise_layer_revision(conn: Connection, district: str, layer: str, at_least: int) -> None:
    """Make the district's ``layer`` revision at least ``at_least`` (created if missing)."""
    conn.execute(sa.text(
        """INSERT INTO layer_revisions (district_code, layer, revision) VALUES (:d, :l, :r)
           ON CONFLICT (district_code, layer) DO UPDATE
           SET revision = GREATEST(layer_revisions.revision, EXCLUDED.revision), changed_at = now()"""),
        {"d": district, "l": layer, "r": at_least})


# ------------------------------------------------------------------------------------------ session settings
def session_timezone(conn: Connection) -> str:
    return conn.execute(sa.text("SHOW TimeZone")).scalar_one()


def set_session_timezone(conn: Connection, zone: str) -> None:
    """The session's TimeZone for the rest of the transaction; a ``DBAPIError`` for a zone the server lacks."""
    conn.execute(sa.text("SELECT set_config('TimeZone', :z, true)"), {"z": zone})


def _listed(columns: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _raw(conn: Connection) -> Any:
    return conn.connection.driver_connection

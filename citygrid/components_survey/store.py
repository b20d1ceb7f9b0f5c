"""SQL of the components_survey package: taxonomy, census load tables, reconciliation and partition swap, import
jobs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy.engine import Connection, Engine

from citygrid import codes
from citygrid.components_survey.taxonomy import TaxonomyClass
from citygrid.errors import Conflict


def scheme_exists(conn: Connection, scheme: str) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM taxonomy_schemes WHERE scheme = :s"), {"s": scheme}).first() is not None


def replace_scheme(conn: Connection, scheme: str, title: str, source: str, classes: list[TaxonomyClass]) -> None:
    """Insert or refresh a scheme and all its classes (one transaction: the caller's). Classes missing from
    ``classes`` stay (cases may refer to them); service codes are reassigned as given."""
    conn.execute(
        sa.text(
            "INSERT INTO taxonomy_schemes (scheme, title, source) VALUES (:s, :t, :src) "
            "ON CONFLICT (scheme) DO UPDATE SET title = EXCLUDED.title, source = EXCLUDED.source, loaded_at = now()"
        ),
        {"s": scheme, "t": title, "src": source},
    )
    # Service codes are unique per scheme: clear them first so a re-import may move one to another class.
    conn.execute(sa.text("UPDATE taxonomy_classes SET service_code = NULL "
                         "WHERE scheme = :s AND service_code IS NOT NULL"), {"s": scheme})
    conn.execute(
        sa.text(
            """
            INSERT INTO taxonomy_classes (scheme, kind, code, major_code, major_name, name, sources, verified,
                                          keywords, description, service_code, open311)
            VALUES (:scheme, :kind, :code, :major_code, :major_name, :name, :sources, :verified,
                    :keywords, :description, :service_code, :open311)
            ON CONFLICT (scheme, kind, code) DO UPDATE
               SET major_code = EXCLUDED.major_code, major_name = EXCLUDED.major_name, name = EXCLUDED.name,
                   sources = EXCLUDED.sources, verified = EXCLUDED.verified, keywords = EXCLUDED.keywords,
                   description = EXCLUDED.description, service_code = EXCLUDED.service_code,
                   open311 = EXCLUDED.open311
            """
        ),
        [{"scheme": scheme, **asdict(c)} for c in classes],
    )


def schemes(conn: Connection) -> list[dict[str, Any]]:
    """Loaded schemes with their class counts, oldest first."""
    rows = conn.execute(sa.text(
        """SELECT s.scheme, s.title, s.source, s.loaded_at, count(c.code) AS classes
             FROM taxonomy_schemes s LEFT JOIN taxonomy_classes c USING (scheme)
            GROUP BY s.scheme ORDER BY s.loaded_at, s.scheme""")).mappings()
    return [dict(r) for r in rows]


def active_scheme(conn: Connection, default: str) -> str:
    """The deployment's active class scheme (``deployment.class_scheme``), ``default`` when none was chosen."""
    chosen = conn.execute(sa.text("SELECT class_scheme FROM deployment")).scalar()
    return chosen or default


def set_active_scheme(conn: Connection, scheme: str) -> None:
    """Record ``scheme`` (a loaded one) as the deployment's active class scheme."""
    conn.execute(sa.text("UPDATE deployment SET class_scheme = :s"), {"s": scheme})


def taxonomy(conn: Connection, scheme: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Classes ordered by scheme, kind, code; filters optional."""
    rows = conn.execute(
        sa.text(
            """
            SELECT c.scheme, s.title AS scheme_title, c.kind, c.code, c.major_code, c.major_name, c.name,
                   c.verified, c.keywords, c.description, c.service_code, c.open311
              FROM taxonomy_classes c JOIN taxonomy_schemes s USING (scheme)
             WHERE (CAST(:scheme AS text) IS NULL OR c.scheme = :scheme)
               AND (CAST(:kind AS text) IS NULL OR c.kind = :kind)
             ORDER BY c.scheme, c.kind, c.code
            """
        ),
        {"scheme": scheme, "kind": kind},
    ).mappings()
    return [dict(r) for r in rows]


# An Open311 service is a class of the active scheme offered there (``open311``); its code is the class's own
# ``service_code``, else E/C + the class code (the packaged scheme: E0102 for event 0102, C0101 for component 0101).
_SERVICE_CODE_SQL = "coalesce(c.service_code, CASE c.kind WHEN 'component' THEN 'C' ELSE 'E' END || c.code)"


def open311_services(conn: Connection, scheme: str, service_code: str | None = None) -> list[dict[str, Any]]:
    """The Open311 services of ``scheme`` (all, or the one with ``service_code``), ordered by kind and code."""
    rows = conn.execute(sa.text(
        f"""SELECT {_SERVICE_CODE_SQL} AS service_code, c.kind, c.code, c.name, c.major_code, c.major_name,
                   c.keywords, c.description
              FROM taxonomy_classes c
             WHERE c.scheme = :s AND c.open311
               AND (CAST(:sc AS text) IS NULL OR {_SERVICE_CODE_SQL} = :sc)
             ORDER BY c.kind, c.code"""), {"s": scheme, "sc": service_code}).mappings()
    return [dict(r) for r in rows]


def has_own_service_codes(conn: Connection, scheme: str) -> bool:
    """Whether ``scheme``'s classes carry their own Open311 service codes (an imported scheme's do)."""
    return conn.execute(sa.text("SELECT 1 FROM taxonomy_classes WHERE scheme = :s AND service_code IS NOT NULL "
                                "LIMIT 1"), {"s": scheme}).first() is not None


# ------------------------------------------------------------------------------------------ census
# Columns of a census load COPY, in this order (the rest come from the load table's defaults).
LOAD_COLUMNS = ("obj_id", "class_code", "obj_name", "dept_code1", "dept_name1", "dept_code2", "dept_name2",
                "dept_code3", "dept_name3", "bgid_in_file", "obj_state", "or_date", "ch_date", "data_source", "note",
                "unit_grid_code", "supervision_code", "attrs", "geom")


def load_columns(native: bool = False) -> tuple[str, ...]:
    """The columns of a census load COPY: ``LOAD_COLUMNS``, then the city's own feature ID when the file has
    one (``--id-field``); a census without them sends no column of nulls."""
    return (*LOAD_COLUMNS, "native_id") if native else LOAD_COLUMNS


COMPARED = ("class_code", "obj_name", "dept_code1", "dept_name1", "dept_code2", "dept_name2", "dept_code3",
            "dept_name3", "obj_state", "or_date", "ch_date", "data_source", "note")


def component_classes(conn: Connection, scheme: str) -> dict[str, str]:
    """Component class code → name in ``scheme``."""
    rows = conn.execute(sa.text("SELECT code, name FROM taxonomy_classes WHERE scheme = :s AND kind = 'component'"),
                        {"s": scheme})
    return {code: name for code, name in rows}


RETIRED_PREFIX = "components_retired_"
LOAD_PREFIX = "components_load_"
# The primary key of ``components`` (migration 0009); a load table gets the same one, which ATTACH then adopts.
KEY_COLUMNS = ("obj_id", "valid_from", "district_code")
SWAP_LOCK_TIMEOUT_S = 30


def drop_retired_partitions(engine: Engine, wait_s: float = 0.2, attempts: int = 3) -> int:
    """Drop the census partitions replaced by earlier imports (already emptied and detached).

    Dropping one removes its foreign-key triggers from ``districts`` and ``taxonomy_classes``, which needs an
    exclusive lock on them, and requests queue behind a waiting exclusive lock: so each try waits at most
    ``wait_s`` and gives up; an empty leftover is harmless and the next import's call retries. Returns how
    many were dropped."""
    return _drop_leftovers(engine, RETIRED_PREFIX, wait_s, attempts)


def drop_orphan_loads(engine: Engine, wait_s: float = 0.2, attempts: int = 3) -> int:
    """Drop load tables left by imports that committed their staged rows and then failed or were rolled back.

    A committed load table belongs to a running import while that import holds ``lock_census``, so each drop
    first tries that lock and leaves the table when an import is running; each drop waits at most ``wait_s``
    for the table, as in ``drop_retired_partitions``."""
    return _drop_leftovers(engine, LOAD_PREFIX, wait_s, attempts, need_census_lock=True)


def _drop_leftovers(engine: Engine, prefix: str, wait_s: float, attempts: int, need_census_lock: bool = False
                    ) -> int:
    dropped = 0
    with engine.connect() as conn:
        names = conn.execute(sa.text(
            """SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition AND starts_with(relname, :p)
                ORDER BY relname"""
        ), {"p": prefix}).scalars().all()
    for name in names:
        if not re.fullmatch(rf"{prefix}[0-9a-f]{{16}}(_closing)?", name):  # a load table, or its list to close
            continue
        for attempt in range(attempts):
            try:
                with engine.begin() as conn:
                    if need_census_lock and not conn.execute(sa.text(f"SELECT {_TRY_CENSUS_LOCK}")).scalar_one():
                        return dropped  # an import is running: its table, or orphans it will drop itself
                    conn.execute(sa.text(f"SET LOCAL lock_timeout = '{int(wait_s * 1000)}ms'"))
                    conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
                dropped += 1
                break
            except sa.exc.OperationalError as exc:
                if not isinstance(exc.orig, psycopg.errors.LockNotAvailable):
                    raise
                time.sleep(wait_s * (attempt + 1))
    return dropped


_CENSUS_LOCK = "pg_advisory_xact_lock(hashtext('citygrid:census-import'))"
_TRY_CENSUS_LOCK = "pg_try_advisory_xact_lock(hashtext('citygrid:census-import'))"


def lock_census(conn: Connection) -> None:
    """Serialise census imports (until the end of the caller's transaction). Each one then reconciles
    against the census the previous one committed; and two imports of different districts cannot deadlock,
    each reading the default partition while waiting to ATTACH, which needs it exclusively. Imports are rare
    and heavy: one at a time per deployment costs nothing that matters."""
    conn.execute(sa.text(f"SELECT {_CENSUS_LOCK}"))


def clock_now(conn: Connection) -> datetime:
    """The server's clock now (``clock_timestamp()``, not the transaction's start): when a census import
    takes effect, its rows' ``valid_from``."""
    return conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()


def _district_literal(district: str) -> str:
    """The district code as an SQL literal for DDL (partition bounds cannot be bound parameters): codes of
    every scheme (``codes``) are digits, upper-case letters and hyphens, so nothing needs escaping."""
    if not codes.any_scheme("district").matches(district):
        raise ValueError(f"district code must be digits, upper-case letters and hyphens: {district!r}")
    return f"'{district}'"


def partition_name(district: str) -> str:
    """The table holding the district's census once it has been imported: ``components_110105``,
    ``components_nyc_bk`` for ``NYC-BK`` (codes hold no lower-case letter or underscore, so no two districts
    share a name)."""
    _district_literal(district)
    return f"components_{district.lower().replace('-', '_')}"


def tune_bulk_session(conn: Connection) -> None:
    """JIT off for the rest of the transaction: the import's few large statements are simple joins and scans,
    and compiling them cost more than it saved (the reconciliation join took about twice as long with JIT;
    figures in README, Benchmarks)."""
    conn.execute(sa.text("SET LOCAL jit = off"))


def can_stage_apart(conn: Connection) -> bool:
    """Whether a second connection sees what the caller's transaction sees: it has written nothing yet and
    reads committed data. Only then may the load table be filled and indexed by other connections."""
    return bool(conn.execute(sa.text(
        "SELECT pg_current_xact_id_if_assigned() IS NULL AND current_setting('transaction_isolation') = "
        "'read committed'")).scalar_one())


def build_load_indexes(engine: Engine, name: str) -> None:
    """Build the committed load table's GiST index and unique key index (later adopted as the primary key) on
    two other connections at once: PostgreSQL builds a GiST index on one core, the key's sort runs on the
    other. Returns when both are done; raises the first failure.

    Not its foreign keys: ATTACH would adopt them, and adopting one drops its triggers from ``districts``,
    which takes an exclusive lock there that every reader of ``districts`` would have to wait for. ATTACH
    validates the keys itself under lighter locks."""
    table = _load_name(name)
    builds = ([f"CREATE INDEX {table}_geom_gist ON {table} USING gist (geom)"],
              # On one core: the other is the GiST build's.
              ["SET LOCAL max_parallel_maintenance_workers = 0",
               f"CREATE UNIQUE INDEX {table}_pkey ON {table} ({', '.join(KEY_COLUMNS)})"])

    def run(statements: list[str]) -> None:
        with engine.connect() as conn, conn.begin():
            tune_bulk_session(conn)
            for statement in statements:
                conn.execute(sa.text(statement))

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="census-index") as pool:
        for future in [pool.submit(run, statements) for statements in builds]:
            future.result()


def create_load_table(conn: Connection, district: str, scheme: str, synthetic: bool, valid_from: Any) -> str:
    """A fresh table shaped like ``components`` for the new census of ``district``, without indexes or
    foreign keys (those are built or validated once, in ``swap_census``); its name is returned.

    The district, scheme, synthetic flag and ``valid_from`` are column defaults for the load, so COPY does not
    repeat them on every row; the CHECK on the district lets ATTACH skip scanning the table. Autovacuum stays
    off until the swap: once staged rows are committed it would otherwise start on the table and hold up the
    ATTACH (for ``deadlock_timeout``, 1 s, before it gives way).
    """
    name = f"{LOAD_PREFIX}{uuid.uuid4().hex[:16]}"
    literal = _district_literal(district)
    conn.execute(sa.text(
        f"""CREATE TABLE {name} (LIKE components INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE,
                                  CONSTRAINT {name}_district CHECK (district_code = {literal}))
            WITH (autovacuum_enabled = false)"""
    ))
    conn.execute(sa.text(f"ALTER TABLE {name} ALTER COLUMN district_code SET DEFAULT {literal}"))
    valid_from_literal = conn.execute(sa.text("SELECT quote_literal(CAST(:t AS timestamptz))"),
                                      {"t": valid_from}).scalar_one()
    scheme_literal = conn.execute(sa.text("SELECT quote_literal(CAST(:s AS text))"), {"s": scheme}).scalar_one()
    conn.execute(sa.text(
        f"ALTER TABLE {name} ALTER COLUMN valid_from SET DEFAULT CAST({valid_from_literal} AS timestamptz), "
        f"ALTER COLUMN scheme SET DEFAULT {scheme_literal}, "
        f"ALTER COLUMN synthetic SET DEFAULT {'true' if synthetic else 'false'}"
    ))
    return name


def drop_load_table(conn: Connection, name: str) -> None:
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {_load_name(name)}"))


def _load_name(name: str) -> str:
    if not re.fullmatch(r"components_load_[0-9a-f]{16}", name):
        raise ValueError(f"not a census load table: {name!r}")
    return name


# The COPY connection's socket send buffer (the kernel caps it at net.core.wmem_max, 4 MiB on Debian).
COPY_SEND_BUFFER = 4 * 2**20


def _widen_send_buffer(fd: int, size: int = COPY_SEND_BUFFER) -> None:
    """Let the kernel hold ``size`` bytes of COPY data for the server. psycopg's writer thread needs the GIL
    for every 128 KiB it sends, and the validating thread holds it for milliseconds at a time; the default
    buffer (208 KiB on a Unix socket) holds only a moment of the server's parsing, so the server ran dry while
    it waited and finished well after Python's last chunk (figures in README, Benchmarks)."""
    with socket.socket(fileno=os.dup(fd)) as sock, contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


class LoadWriter:
    """One COPY into a load table, fed rows in COPY's text format (``loaders.copytext``) chunk by chunk from
    a queue by psycopg's writer thread, so the server parses one chunk while Python validates the next (two
    cores busy instead of one)."""

    def __init__(self, conn: Connection, name: str, columns: tuple[str, ...] = LOAD_COLUMNS) -> None:
        if not set(columns) <= {*LOAD_COLUMNS, "native_id"}:
            raise ValueError(f"not census load columns: {columns!r}")
        raw = conn.connection.dbapi_connection
        _widen_send_buffer(raw.pgconn.socket)
        self._cursor = raw.cursor()
        self._context = self._cursor.copy(
            f"COPY {_load_name(name)} ({', '.join(columns)}) FROM STDIN",
            writer=QueuedLibpqWriter(self._cursor))
        self._copy = self._context.__enter__()

    def write(self, rows: bytes) -> None:
        self._copy.write(rows)

    def close(self, failed: BaseException | None = None) -> None:
        try:
            if failed is None:
                self._context.__exit__(None, None, None)
            else:
                self._context.__exit__(type(failed), failed, failed.__traceback__)
        finally:
            self._cursor.close()


def reuse_native_ids(conn: Connection, name: str, district: str) -> int:
    """Give load rows without an ObjID (placeholder ``#<line>``) the ObjID their feature ID (``native_id``)
    had last in the district, when the class is the same and the file does not use that ObjID itself; so
    re-importing a city's file keeps every ObjID generated the first time. Returns how many were kept; the
    rest are left to ``fill_missing_ids``. One hash join of the load with the district's versions."""
    table = _load_name(name)
    return conn.execute(sa.text(
        f"""WITH latest AS (  -- each ObjID's last version: one feature ID per ObjID
               SELECT DISTINCT ON (obj_id) obj_id, native_id, class_code, valid_from
                 FROM components WHERE district_code = :d AND native_id IS NOT NULL
                ORDER BY obj_id, valid_from DESC),
           last AS (  -- each feature ID's last ObjID
               SELECT DISTINCT ON (native_id) native_id, obj_id, class_code
                 FROM latest ORDER BY native_id, valid_from DESC)
           UPDATE {table} l SET obj_id = k.obj_id
             FROM last k
            WHERE l.obj_id LIKE '#%' AND l.native_id = k.native_id AND l.class_code = k.class_code
              AND NOT EXISTS (SELECT 1 FROM {table} o WHERE o.obj_id = k.obj_id)"""
    ), {"d": district}).rowcount


def fill_missing_ids(conn: Connection, name: str, district: str) -> int:
    """Give load rows without an ObjID (placeholder ``#<line>``) the next serials of their class, after every
    serial ever used in the district and every serial in the file, in file order. An ObjID is the district
    code + the 4-digit class + a 6-digit serial (``ids``)."""
    table = _load_name(name)
    return conn.execute(sa.text(
        f"""WITH issued AS (
               SELECT substr(obj_id, :n + 1, 4) AS cls, max(CAST(substr(obj_id, :n + 5, 6) AS int)) AS top
                 FROM (SELECT obj_id FROM components WHERE district_code = :d
                       UNION ALL SELECT obj_id FROM {table}) ids
                WHERE starts_with(obj_id, :d) AND substr(obj_id, :n + 1) ~ '^[0-9]{{10}}$'
                GROUP BY 1),
           numbered AS (
               SELECT l.obj_id AS placeholder, l.class_code,
                      coalesce(i.top, 0) + row_number() OVER (
                          PARTITION BY l.class_code ORDER BY CAST(substr(l.obj_id, 2) AS int)) AS serial
                 FROM {table} l LEFT JOIN issued i ON i.cls = l.class_code
                WHERE l.obj_id LIKE '#%')
           UPDATE {table} l SET obj_id = :d || n.class_code || lpad(CAST(n.serial AS text), 6, '0')
             FROM numbered n WHERE l.obj_id = n.placeholder"""
    ), {"d": district, "n": len(district)}).rowcount


def reconcile(conn: Connection, name: str, district: str, loaded: int, tolerance_m: float, partial: bool,
              sample: int = 20, *, classes: list[str] | None = None, native: bool = False) -> dict[str, Any]:
    """Sort the loaded rows into new / moved / changed / unchanged against the district's current census and
    count current components in scope the file no longer has (retired, unless ``partial``): those of
    ``classes`` (the classes the file holds), or every one when ``classes`` is None. Rows are matched on
    ObjID, or with ``native`` on the city's own feature ID (``native_id``; a different ObjID then counts as
    changed). Returns counts, the scope, ``current_in_scope`` (the current components of the scope) and up to
    ``sample`` ObjIDs per category (new ones as the file lists them, the first found in the fresh table, since
    sorting a million rows to show twenty is a noticeable part of an import; the others by ObjID). The
    categories of matched and retired current ObjIDs are kept in the temporary table ``census_categories``
    for ``prepare_partition`` and ``prepare_in_place``, so both apply the same scope.

    Matched rows come from an inner join, which lets the planner hash the current census and stream the load
    past it on every core; retired ones from the current census less those matched. One left join from the
    census to the load did both, but PostgreSQL 15 can only run it in parallel by hashing the load, which
    is slower for a load larger than the current census. The load table is not analysed first (that costs
    more than it saves): unanalysed, it is sized from its pages, and the plans stay hash joins of the right
    sides (checked with a load of a million rows over a small and over a large current census; figures in
    README, Benchmarks)."""
    table = _load_name(name)
    key = "native_id" if native else "obj_id"
    differs = " OR ".join(f"l.{c} IS DISTINCT FROM c.{c}" for c in (*COMPARED, *(("obj_id",) if native else ())))
    # Only what is needed is kept per matched row: the load's key when it is not the ObjID, the class when
    # the scope is some classes.
    extra = "".join((", l.native_id AS load_key" if native else "", ", c.class_code" if classes is not None else ""))
    conn.execute(sa.text("DROP TABLE IF EXISTS census_categories"))
    conn.execute(sa.text(
        f"""CREATE TEMP TABLE census_categories ON COMMIT DROP AS
            SELECT c.obj_id{extra},
                   CASE WHEN ST_Distance(l.geom, c.geom) > :tol THEN 'moved'
                        WHEN {differs} THEN 'changed'
                        ELSE 'unchanged' END AS cat
              FROM {table} l JOIN components c ON c.{key} = l.{key}
             WHERE c.district_code = :d AND c.valid_to IS NULL"""
    ), {"d": district, "tol": tolerance_m})
    conn.execute(sa.text("ANALYZE census_categories"))
    if not partial:
        scoped = classes is not None
        conn.execute(sa.text(
            f"""INSERT INTO census_categories (obj_id{', class_code' if scoped else ''}, cat)
                SELECT c.obj_id{', c.class_code' if scoped else ''}, 'retired' FROM components c
                 WHERE c.district_code = :d AND c.valid_to IS NULL
                   {'AND c.class_code = ANY(CAST(:classes AS text[]))' if scoped else ''}
                   AND NOT EXISTS (SELECT 1 FROM census_categories k WHERE k.obj_id = c.obj_id)"""
        ), {"d": district, "classes": classes})
    counts = {k: 0 for k in ("new", "moved", "changed", "unchanged", "retired")}
    in_scope = 0
    in_scope_sql = "count(*) FILTER (WHERE class_code = ANY(CAST(:classes AS text[])))" if classes is not None \
        else "count(*)"
    for category, n, n_in_scope in conn.execute(sa.text(
            f"SELECT cat, count(*), {in_scope_sql} FROM census_categories GROUP BY 1"), {"classes": classes}):
        counts[category] = n
        in_scope += n_in_scope
    if partial:  # nothing is retired, but the scope's current components are still its size
        in_scope = conn.execute(sa.text(
            """SELECT count(*) FROM components c WHERE c.district_code = :d AND c.valid_to IS NULL
                  AND (CAST(:classes AS text[]) IS NULL OR c.class_code = ANY(CAST(:classes AS text[])))"""
        ), {"d": district, "classes": classes}).scalar_one()
    counts["new"] = loaded - sum(counts[k] for k in ("moved", "changed", "unchanged"))
    samples: dict[str, list[str]] = {"new": []}
    if counts["new"]:  # else the search would read every loaded row to find none
        samples["new"] = conn.execute(sa.text(
            f"""SELECT l.obj_id FROM {table} l
                 WHERE NOT EXISTS (SELECT 1 FROM census_categories k
                                    WHERE k.{'load_key' if native else 'obj_id'} = l.{key}) LIMIT :n"""
        ), {"n": sample}).scalars().all()
    for category in ("moved", "changed", "unchanged", "retired"):
        samples[category] = [] if not counts[category] else conn.execute(sa.text(
            "SELECT obj_id FROM census_categories WHERE cat = :c ORDER BY obj_id LIMIT :n"
        ), {"c": category, "n": sample}).scalars().all()
    return {"counts": counts, "samples": samples, "move_tolerance_m": tolerance_m, "partial": partial,
            "scope": {"mode": "all" if classes is None else "classes", "classes": classes, "key": key},
            "current_in_scope": in_scope}


def _component_columns(conn: Connection) -> list[str]:
    return conn.execute(sa.text(
        """SELECT attname FROM pg_attribute WHERE attrelid = CAST('components' AS regclass) AND attnum > 0
              AND NOT attisdropped ORDER BY attnum"""
    )).scalars().all()


def prepare_partition(conn: Connection, name: str, district: str, valid_from: Any) -> None:
    """Fill the load table with the district's whole new census: drop the loaded rows that are unchanged and
    add every earlier version (closing, at ``valid_from``, the current ones that moved, changed or were
    retired). Needs ``census_categories`` (``reconcile``) in the same transaction."""
    table = _load_name(name)
    if conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM census_categories WHERE cat = 'unchanged')")).scalar_one():
        # Skipped when there are none: the join would still read every loaded row.
        conn.execute(sa.text(
            f"DELETE FROM {table} l USING census_categories k WHERE k.obj_id = l.obj_id AND k.cat = 'unchanged'"
        ))
    columns = _component_columns(conn)
    select = ", ".join("CASE WHEN c.valid_to IS NULL AND k.cat IN ('moved', 'changed', 'retired') "
                       "THEN CAST(:now AS timestamptz) ELSE c.valid_to END" if col == "valid_to" else f'c."{col}"'
                       for col in columns)
    conn.execute(sa.text(
        f"""INSERT INTO {table} ({', '.join(f'"{c}"' for c in columns)})
            SELECT {select} FROM components c
              LEFT JOIN census_categories k ON c.valid_to IS NULL AND k.obj_id = c.obj_id
             WHERE c.district_code = :d"""
    ), {"d": district, "now": valid_from})
    conn.execute(sa.text(
        f"ALTER TABLE {table} ALTER COLUMN district_code DROP DEFAULT, ALTER COLUMN scheme DROP DEFAULT, "
        "ALTER COLUMN valid_from SET DEFAULT now(), ALTER COLUMN synthetic SET DEFAULT false"
    ))


# A census that changes in at most this share of its components (new, moved, changed and retired, over the
# current ones) is updated in place rather than rebuilt and swapped; see ``small_change``.
IN_PLACE_SHARE = 0.2


def has_own_partition(conn: Connection, district: str) -> bool:
    """Whether the district's census has a partition of its own (it has, after its first import)."""
    return bool(conn.execute(sa.text("SELECT to_regclass(:p) IS NOT NULL"),
                             {"p": partition_name(district)}).scalar_one())


def small_change(counts: dict[str, int]) -> bool:
    """Whether a reconciled census (``reconcile``'s counts) changes little enough to be applied in place.

    In place, each changed component costs an update and an insert with both indexes maintained; a swap
    rewrites and re-indexes the whole census whatever changed. Re-importing a census of a million, in place
    is faster while a small share changes and slower once about a third does (figures in README,
    Benchmarks). ``IN_PLACE_SHARE`` stays well below that crossing; in place also takes no exclusive lock,
    so readers of the census never wait for it."""
    current = sum(counts[k] for k in ("moved", "changed", "unchanged", "retired"))
    changed = sum(counts[k] for k in ("new", "moved", "changed", "retired"))
    return current > 0 and changed <= IN_PLACE_SHARE * current


def prepare_in_place(conn: Connection, name: str) -> None:
    """Keep what ``apply_in_place`` needs beyond the load table: the ObjIDs of the current components that
    moved, changed or were retired (``census_categories``, from ``reconcile``), in a table of their own
    (``<load table>_closing``) that outlives this transaction when the load is staged apart."""
    table = _load_name(name)
    conn.execute(sa.text(
        f"""CREATE TABLE {table}_closing AS
            SELECT obj_id FROM census_categories WHERE cat IN ('moved', 'changed', 'retired')"""
    ))


def apply_in_place(conn: Connection, name: str, district: str, valid_from: Any) -> int:
    """Apply a reconciled load to the district's partition in the caller's transaction: close (at
    ``valid_from``) the current versions listed by ``prepare_in_place``, then insert every loaded component
    that no longer has a current version (new, moved, changed; the unchanged keep theirs). Drops the load
    table and its list. Returns the number of versions inserted. Readers are not blocked: only the changed
    rows are locked, and the layer revision rises by the table's own triggers."""
    table = _load_name(name)
    conn.execute(sa.text(
        f"""UPDATE components c SET valid_to = CAST(:now AS timestamptz)
              FROM {table}_closing k
             WHERE c.district_code = :d AND c.valid_to IS NULL AND c.obj_id = k.obj_id"""
    ), {"d": district, "now": valid_from})
    columns = ", ".join(f'"{c}"' for c in _component_columns(conn))
    inserted = conn.execute(sa.text(
        f"""INSERT INTO components ({columns})
            SELECT {columns} FROM {table} l
             WHERE NOT EXISTS (SELECT 1 FROM components c
                                WHERE c.district_code = :d AND c.valid_to IS NULL AND c.obj_id = l.obj_id)"""
    ), {"d": district}).rowcount
    conn.execute(sa.text(f"DROP TABLE {table}_closing, {table}"))
    return inserted


def swap_census(conn: Connection, name: str, district: str, indexed: bool = False) -> None:
    """Make the prepared load table (``prepare_partition``) the district's census: build its indexes, attach
    it as the district's partition in place of the old one, and raise the components layer revision (ATTACH
    fires no trigger). Runs in the caller's transaction: a failure leaves the old census. ``indexed``: the
    indexes were built already (``build_load_indexes``); the unique index becomes the primary key.
    """
    table = _load_name(name)
    literal = _district_literal(district)
    partition = partition_name(district)
    conn.execute(sa.text(f"ALTER TABLE {table} RESET (autovacuum_enabled)"))
    if indexed:
        conn.execute(sa.text(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY USING INDEX {table}_pkey"))
    else:
        # Indexes are built once the rows are in: building one is cheaper than maintaining it row by row during
        # the COPY (the primary key costs about twice as much maintained; README, Benchmarks).
        conn.execute(sa.text(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey "
                             f"PRIMARY KEY ({', '.join(KEY_COLUMNS)})"))
        conn.execute(sa.text(f"CREATE INDEX {table}_geom_gist ON {table} USING gist (geom)"))
    # Taking over the partition needs brief exclusive locks on components (readers wait for the swap, not for
    # the import); a transaction that keeps reading them for longer makes the import fail, not hang.
    previous_timeout = conn.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar_one()
    conn.execute(sa.text("SELECT set_config('lock_timeout', :t, true)"), {"t": f"{SWAP_LOCK_TIMEOUT_S}s"})
    try:
        if has_own_partition(conn, district):
            # Dropping a table with foreign keys locks the tables it references (districts) exclusively, so
            # the old partition is emptied and set aside here and dropped after the commit
            # (``drop_retired_partitions``).
            conn.execute(sa.text(f"ALTER TABLE components DETACH PARTITION {partition}"))
            conn.execute(sa.text(f"TRUNCATE {partition}"))
            conn.execute(sa.text(f"ALTER TABLE {partition} RENAME TO {RETIRED_PREFIX}{uuid.uuid4().hex[:16]}"))
        else:
            conn.execute(sa.text("DELETE FROM components_default WHERE district_code = :d"), {"d": district})
        conn.execute(sa.text(f"ALTER TABLE components ATTACH PARTITION {table} FOR VALUES IN ({literal})"))
    except sa.exc.OperationalError as exc:
        if isinstance(exc.orig, psycopg.errors.LockNotAvailable):
            raise Conflict(f"the components of district {district} stayed in use by another transaction for "
                           f"{SWAP_LOCK_TIMEOUT_S} s; nothing was imported, try again") from exc
        raise
    conn.execute(sa.text("SELECT set_config('lock_timeout', :t, true)"), {"t": previous_timeout})
    # The partition keeps its load table's index and constraint names (unique, unlike a name per district
    # while the replaced partition still waits to be dropped).
    conn.execute(sa.text(f"ALTER TABLE {table} RENAME TO {partition}"))
    conn.execute(sa.text("SELECT bump_layer_revision(:d, 'components')"), {"d": district})


def current_components(conn: Connection, district: str) -> int:
    return conn.execute(sa.text(
        "SELECT count(*) FROM components WHERE district_code = :d AND valid_to IS NULL"), {"d": district}
    ).scalar_one()


def component_history(conn: Connection, obj_id: str) -> list[dict[str, Any]]:
    """Every version of a component (newest first) with its class name, owners, grids, import job and
    position (lon/lat, EPSG:4326), and the number of cases that name it."""
    rows = conn.execute(sa.text(
        """SELECT c.district_code, c.obj_id, c.valid_from, c.valid_to, c.scheme, c.class_code, t.name AS class_name,
                  c.obj_name, c.dept_code1, c.dept_name1, c.dept_code2, c.dept_name2, c.dept_code3, c.dept_name3,
                  c.unit_grid_code, c.supervision_code, c.obj_state, c.or_date, c.ch_date, c.data_source, c.note,
                  c.synthetic, CAST(c.import_job_id AS text) AS import_job_id,
                  ST_X(ST_Transform(c.geom, 4326)) AS lon, ST_Y(ST_Transform(c.geom, 4326)) AS lat,
                  (SELECT count(*) FROM cases k WHERE k.district_code = c.district_code
                      AND k.component_obj_id = c.obj_id) AS cases
             FROM components c
             LEFT JOIN taxonomy_classes t ON t.scheme = c.scheme AND t.kind = 'component' AND t.code = c.class_code
            WHERE c.obj_id = :o ORDER BY c.valid_from DESC"""
    ), {"o": obj_id}).mappings()
    return [dict(r) for r in rows]


# ------------------------------------------------------------------------------------------ import jobs
STALE_AFTER_S = 120


def create_job(conn: Connection, district: str, job_id: str, kind: str, filename: str, params: dict[str, Any],
               created_by: str, work_dir: str = "") -> None:
    conn.execute(sa.text(
        """INSERT INTO import_jobs (district_code, job_id, kind, filename, state, params, created_by, work_dir,
                                    heartbeat_at)
           VALUES (:d, :j, :kind, :f, 'queued', CAST(:p AS jsonb), :by, :w, now())"""
    ), {"d": district, "j": job_id, "kind": kind, "f": filename, "p": json.dumps(params, ensure_ascii=False),
        "by": created_by, "w": work_dir})


def update_job(conn: Connection, job_id: str, *, state: str | None = None, percent: float | None = None,
               counts: dict[str, Any] | None = None, message: str | None = None,
               preview: dict[str, Any] | None = None, finished: bool = False) -> None:
    conn.execute(sa.text(
        """UPDATE import_jobs SET state = coalesce(:state, state), percent = coalesce(:percent, percent),
                  counts = coalesce(CAST(:counts AS jsonb), counts), message = coalesce(:message, message),
                  preview = coalesce(CAST(:preview AS jsonb), preview), heartbeat_at = now(),
                  finished_at = CASE WHEN :finished THEN now() ELSE finished_at END
            WHERE job_id = CAST(:j AS uuid)"""
    ), {"j": job_id, "state": state, "percent": percent,
        "counts": None if counts is None else json.dumps(counts),
        "preview": None if preview is None else json.dumps(preview, ensure_ascii=False, default=str),
        "message": message, "finished": finished})


def save_report(conn: Connection, district: str, job_id: str, problems: list[dict[str, Any]]) -> None:
    conn.execute(sa.text("DELETE FROM import_row_reports WHERE job_id = CAST(:j AS uuid)"), {"j": job_id})
    if problems:
        seq: dict[int, int] = {}
        rows = []
        for p in problems:
            seq[p["line"]] = seq.get(p["line"], 0) + 1
            rows.append({"d": district, "j": job_id, "line": p["line"], "seq": seq[p["line"]],
                         "obj": p.get("obj_id"), "field": p.get("field") or "", "reason": p["reason"],
                         "wkt": p.get("geom_wkt"), "severity": p.get("severity", "error")})
        conn.execute(sa.text(
            """INSERT INTO import_row_reports (district_code, job_id, line_no, seq, obj_id, field, reason, geom_wkt,
                                               severity)
               VALUES (:d, CAST(:j AS uuid), :line, :seq, :obj, :field, :reason, :wkt, :severity)"""
        ), rows)


def job(conn: Connection, job_id: str) -> dict[str, Any] | None:
    """A job; a running one whose heartbeat stopped is reported failed (its process died)."""
    row = conn.execute(sa.text(
        """SELECT CAST(job_id AS text) AS job_id, district_code, kind, filename, state, percent, counts, params,
                  message, created_by, created_at, finished_at, heartbeat_at, preview, work_dir,
                  (state IN ('queued', 'running') AND heartbeat_at < now() - make_interval(secs => :stale))
                      AS stale
             FROM import_jobs WHERE job_id = CAST(:j AS uuid)"""
    ), {"j": job_id, "stale": STALE_AFTER_S}).mappings().first()
    if row is None:
        return None
    out = dict(row)
    if out.pop("stale"):
        out["state"] = "failed"
        out["message"] = "the import stopped without finishing (process ended); nothing was imported"
    return out


def report_rows(conn: Connection, job_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(sa.text(
        """SELECT line_no AS line, obj_id, field, severity, reason, geom_wkt FROM import_row_reports
            WHERE job_id = CAST(:j AS uuid) ORDER BY line_no, seq"""
    ), {"j": job_id}).mappings()
    return [dict(r) for r in rows]

"""SQL of the components_survey package: taxonomy, census staging/reconciliation/commit, import jobs."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any

import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from citygrid.components_survey.taxonomy import TaxonomyClass


def scheme_exists(conn: Connection, scheme: str) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM taxonomy_schemes WHERE scheme = :s"), {"s": scheme}).first() is not None


def replace_scheme(conn: Connection, scheme: str, title: str, source: str, classes: list[TaxonomyClass]) -> None:
    """Insert or refresh a scheme and all its classes (one transaction: the caller's)."""
    conn.execute(
        sa.text(
            "INSERT INTO taxonomy_schemes (scheme, title, source) VALUES (:s, :t, :src) "
            "ON CONFLICT (scheme) DO UPDATE SET title = EXCLUDED.title, source = EXCLUDED.source, loaded_at = now()"
        ),
        {"s": scheme, "t": title, "src": source},
    )
    conn.execute(
        sa.text(
            """
            INSERT INTO taxonomy_classes (scheme, kind, code, major_code, major_name, name, sources, verified)
            VALUES (:scheme, :kind, :code, :major_code, :major_name, :name, :sources, :verified)
            ON CONFLICT (scheme, kind, code) DO UPDATE
               SET major_code = EXCLUDED.major_code, major_name = EXCLUDED.major_name, name = EXCLUDED.name,
                   sources = EXCLUDED.sources, verified = EXCLUDED.verified
            """
        ),
        [{"scheme": scheme, **asdict(c)} for c in classes],
    )


def taxonomy(conn: Connection, scheme: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Classes ordered by scheme, kind, code; filters optional."""
    rows = conn.execute(
        sa.text(
            """
            SELECT c.scheme, s.title AS scheme_title, c.kind, c.code, c.major_code, c.major_name, c.name,
                   c.verified
              FROM taxonomy_classes c JOIN taxonomy_schemes s USING (scheme)
             WHERE (CAST(:scheme AS text) IS NULL OR c.scheme = :scheme)
               AND (CAST(:kind AS text) IS NULL OR c.kind = :kind)
             ORDER BY c.scheme, c.kind, c.code
            """
        ),
        {"scheme": scheme, "kind": kind},
    ).mappings()
    return [dict(r) for r in rows]


# ------------------------------------------------------------------------------------------ census
STAGING_COLUMNS = ("line", "obj_id", "class_code", "obj_name", "dept_code1", "dept_name1", "dept_code2",
                   "dept_name2", "dept_code3", "dept_name3", "bgid_in_file", "obj_state", "or_date", "ch_date",
                   "data_source", "note", "unit_grid_code", "supervision_code", "attrs", "geom")
_FRAME_TO_STAGING = {"ObjID": "obj_id", "ClassCode": "class_code", "ObjName": "obj_name",
                     "DeptCode1": "dept_code1", "DeptName1": "dept_name1", "DeptCode2": "dept_code2",
                     "DeptName2": "dept_name2", "DeptCode3": "dept_code3", "DeptName3": "dept_name3",
                     "BGID": "bgid_in_file", "ObjState": "obj_state", "ORDate": "or_date", "CHDate": "ch_date",
                     "DataSource": "data_source", "Note": "note"}
COMPARED = ("class_code", "obj_name", "dept_code1", "dept_name1", "dept_code2", "dept_name2", "dept_code3",
            "dept_name3", "obj_state", "or_date", "ch_date", "data_source", "note")


def component_classes(conn: Connection, scheme: str) -> set[str]:
    rows = conn.execute(sa.text("SELECT code FROM taxonomy_classes WHERE scheme = :s AND kind = 'component'"),
                        {"s": scheme})
    return {r[0] for r in rows}


def create_staging(conn: Connection, srid: int) -> None:
    """A temporary table for the rows of one import, dropped at the end of the transaction."""
    conn.execute(sa.text("DROP TABLE IF EXISTS census_staging"))
    conn.execute(sa.text(
        f"""CREATE TEMP TABLE census_staging (
                line integer NOT NULL, obj_id text, class_code text NOT NULL, obj_name text,
                dept_code1 text, dept_name1 text, dept_code2 text, dept_name2 text, dept_code3 text,
                dept_name3 text, bgid_in_file text, obj_state text, or_date date, ch_date date,
                data_source text, note text, unit_grid_code text, supervision_code text, attrs jsonb,
                geom geometry(Point, {int(srid)}) NOT NULL
            ) ON COMMIT DROP"""
    ))


def copy_staging(conn: Connection, frame: Any, srid: int) -> None:
    """COPY validated rows (columns as produced by census._check_chunk; x, y in EPSG:``srid``)."""
    if len(frame) == 0:
        return
    out = frame.rename(columns=_FRAME_TO_STAGING)
    points = shapely.set_srid(shapely.points(out["x"].to_numpy(), out["y"].to_numpy()), srid)
    out["geom"] = shapely.to_wkb(points, hex=True, include_srid=True)
    buffer = io.StringIO()
    out[list(STAGING_COLUMNS)].to_csv(buffer, index=False, header=False, quoting=csv.QUOTE_MINIMAL, na_rep="")
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cursor, cursor.copy(
        f"COPY census_staging ({', '.join(STAGING_COLUMNS)}) FROM STDIN WITH (FORMAT csv, NULL '')"
    ) as copy:
        copy.write(buffer.getvalue())


def fill_missing_ids(conn: Connection, district: str) -> int:
    """Give staging rows without an ObjID the next serials of their class (after every serial ever used)."""
    return conn.execute(sa.text(
        """WITH issued AS (
               SELECT substr(obj_id, 7, 4) AS cls, max(CAST(substr(obj_id, 11, 6) AS int)) AS top
                 FROM (SELECT obj_id FROM components WHERE district_code = :d AND obj_id ~ '^[0-9]{16}$'
                       UNION ALL SELECT obj_id FROM census_staging WHERE obj_id ~ '^[0-9]{16}$') ids
                GROUP BY 1),
           numbered AS (
               SELECT s.line, s.class_code,
                      coalesce(i.top, 0) + row_number() OVER (PARTITION BY s.class_code ORDER BY s.line) AS serial
                 FROM census_staging s LEFT JOIN issued i ON i.cls = s.class_code
                WHERE s.obj_id IS NULL)
           UPDATE census_staging s SET obj_id = :d || n.class_code || lpad(CAST(n.serial AS text), 6, '0')
             FROM numbered n WHERE s.line = n.line"""
    ), {"d": district}).rowcount


def _categorised(tolerance_param: str = ":tol") -> str:
    """SQL of staging rows with their category against the current census (one join, no rewrite)."""
    differs = " OR ".join(f"s.{c} IS DISTINCT FROM c.{c}" for c in COMPARED)
    return f"""SELECT s.*, CASE WHEN c.obj_id IS NULL THEN 'new'
                                WHEN ST_Distance(s.geom, c.geom) > {tolerance_param} THEN 'moved'
                                WHEN {differs} THEN 'changed'
                                ELSE 'unchanged' END AS cat
                 FROM census_staging s
                 LEFT JOIN components c ON c.district_code = :d AND c.obj_id = s.obj_id AND c.valid_to IS NULL"""


def reconcile(conn: Connection, district: str, tolerance_m: float, partial: bool, sample: int = 20
              ) -> dict[str, Any]:
    """Sort staging rows into new / moved / changed / unchanged and count current components that the file
    no longer has (retired, unless ``partial``). Returns counts and up to ``sample`` ObjIDs per category.
    The categories are also kept (``census_categories``) for ``commit_staging``."""
    conn.execute(sa.text("DROP TABLE IF EXISTS census_categories"))
    conn.execute(sa.text(
        f"""CREATE TEMP TABLE census_categories ON COMMIT DROP AS
            SELECT k.line, k.cat FROM ({_categorised()}) k WHERE k.cat <> 'new'"""
    ), {"d": district, "tol": tolerance_m})
    counts = {k: 0 for k in ("new", "moved", "changed", "unchanged", "retired")}
    samples: dict[str, list[str]] = {k: [] for k in counts}
    for category, n in conn.execute(sa.text("SELECT cat, count(*) FROM census_categories GROUP BY 1")):
        counts[category] = n
    counts["new"] = conn.execute(sa.text("SELECT count(*) FROM census_staging")).scalar_one() - sum(
        counts[k] for k in ("moved", "changed", "unchanged"))
    samples["new"] = conn.execute(sa.text(
        """SELECT s.obj_id FROM census_staging s
            WHERE NOT EXISTS (SELECT 1 FROM census_categories k WHERE k.line = s.line) ORDER BY s.line LIMIT :n"""
    ), {"n": sample}).scalars().all()
    for category in ("moved", "changed", "unchanged"):
        samples[category] = conn.execute(sa.text(
            """SELECT s.obj_id FROM census_categories k JOIN census_staging s USING (line)
                WHERE k.cat = :c ORDER BY k.line LIMIT :n"""
        ), {"c": category, "n": sample}).scalars().all()
    if not partial:
        retired_sql = """FROM components c WHERE c.district_code = :d AND c.valid_to IS NULL
                           AND NOT EXISTS (SELECT 1 FROM census_staging s WHERE s.obj_id = c.obj_id)"""
        counts["retired"] = conn.execute(sa.text(f"SELECT count(*) {retired_sql}"), {"d": district}).scalar_one()
        samples["retired"] = conn.execute(sa.text(f"SELECT c.obj_id {retired_sql} ORDER BY c.obj_id LIMIT :n"),
                                          {"d": district, "n": sample}).scalars().all()
    return {"counts": counts, "samples": samples, "move_tolerance_m": tolerance_m, "partial": partial}


def commit_staging(conn: Connection, district: str, scheme: str, partial: bool, synthetic: bool) -> None:
    """Close superseded versions and insert the new ones, all stamped with one moment.

    Rows are inserted in spatial order (PostGIS sorts geometry along a Hilbert curve): the GiST index then
    grows page by page instead of
    jumping around the district, which makes a bulk load markedly faster.
    """
    now = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
    params = {"d": district, "now": now, "scheme": scheme, "synthetic": synthetic}
    conn.execute(sa.text(
        """UPDATE components c SET valid_to = :now
             FROM census_categories k JOIN census_staging s USING (line)
            WHERE c.district_code = :d AND c.valid_to IS NULL AND c.obj_id = s.obj_id
              AND k.cat IN ('moved', 'changed')"""
    ), params)
    if not partial:
        conn.execute(sa.text(
            """UPDATE components c SET valid_to = :now
                WHERE c.district_code = :d AND c.valid_to IS NULL
                  AND NOT EXISTS (SELECT 1 FROM census_staging s WHERE s.obj_id = c.obj_id)"""
        ), params)
    conn.execute(sa.text(
        """INSERT INTO components (district_code, obj_id, valid_from, scheme, class_code, obj_name, dept_code1,
                                   dept_name1, dept_code2, dept_name2, dept_code3, dept_name3, unit_grid_code,
                                   supervision_code, bgid_in_file, obj_state, or_date, ch_date, data_source, note,
                                   attrs, synthetic, geom)
           SELECT :d, s.obj_id, :now, :scheme, s.class_code, coalesce(s.obj_name, t.name, ''), s.dept_code1,
                  s.dept_name1, s.dept_code2, s.dept_name2, s.dept_code3, s.dept_name3, s.unit_grid_code,
                  s.supervision_code, s.bgid_in_file, s.obj_state, s.or_date, s.ch_date, s.data_source, s.note,
                  coalesce(s.attrs, '{}'), :synthetic, s.geom
             FROM census_staging s
             LEFT JOIN census_categories k USING (line)
             LEFT JOIN taxonomy_classes t ON t.scheme = :scheme AND t.kind = 'component' AND t.code = s.class_code
            WHERE k.cat IS NULL OR k.cat IN ('moved', 'changed')
            ORDER BY s.geom"""
    ), params)


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

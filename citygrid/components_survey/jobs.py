"""Import jobs: a census import with a durable record (state, percent, counts, row report).

The job row is written in its own transactions (so it survives a failed import); the import itself, its
report and the job's final state commit together. A process killed half-way leaves the census untouched and
the job, once its heartbeat is stale, reads as failed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from citygrid.components_survey import store
from citygrid.components_survey.census import CensusOptions, CensusResult, import_file
from citygrid.components_survey.mapping import parse_mapping
from citygrid.errors import CitygridError
from citygrid.loaders import safeyaml
from citygrid.spatial import db
from citygrid.spatial import store as spatial_store

PROGRESS_EVERY_S = 1.0
FAIL_RECORD_WAIT_S = 60.0


def new_job(engine: Engine, path: Path, options: CensusOptions, *, created_by: str, work_dir: str = "") -> str:
    """Record a queued job for ``path``; returns its id."""
    options.validate()
    job_id = str(uuid.uuid4())
    params = {k: v for k, v in options.__dict__.items() if k != "mapping"} | {"mapping": options.mapping,
                                                                            "path": str(path)}
    with engine.begin() as conn:
        store.create_job(conn, options.district, job_id, "census", Path(path).name, params, created_by, work_dir)
    return job_id


def run_job(engine: Engine, job_id: str, path: Path, options: CensusOptions, progress=None) -> dict[str, Any]:
    """Run a recorded job to its end; returns the final job record. Never raises for bad input: a file-level
    problem ends the job ``failed`` with the message (and re-raises for the CLI to exit non-zero)."""
    last = [0.0]

    def heartbeat(percent: float, counts: dict[str, int]) -> None:
        if progress:
            progress(percent, counts)
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            with engine.begin() as conn:
                store.update_job(conn, job_id, state="running", percent=percent, counts=counts)

    with engine.begin() as conn:
        store.update_job(conn, job_id, state="running", percent=0)
    try:
        with engine.begin() as conn:
            db.set_actor(conn, (store.job(conn, job_id) or {}).get("created_by") or "unknown")
            result: CensusResult = import_file(conn, path, options, heartbeat)
            if result.state != "preview":  # read for good: gone before anyone can see the job ended
                _remove_work_dir(engine, job_id)
            store.save_report(conn, options.district, job_id, result.problems)
            preview = {"reconciliation": result.reconciliation, "warnings": result.warnings,
                       "encoding": result.encoding, "source_crs": result.source_crs}
            store.update_job(conn, job_id, state=result.state, percent=100, counts=result.counts,
                             message="; ".join(result.warnings), preview=preview, finished=True)
    except CitygridError as exc:
        _fail(engine, job_id, exc.message, exc.details)
        _drop_orphans(engine)
        raise
    except sa.exc.OperationalError as exc:  # the database went away (restart, network): nothing was committed
        _fail(engine, job_id, "the database connection was lost during the import; nothing was imported "
                              f"and the census is as it was ({str(exc.orig).strip().splitlines()[0]})", [])
        _drop_orphans(engine)
        raise
    except Exception as exc:  # anything unexpected still ends the job, then surfaces
        _fail(engine, job_id, f"internal error: {type(exc).__name__}: {exc}", [])
        _drop_orphans(engine)
        raise
    finally:
        _remove_work_dir(engine, job_id)
    store.drop_retired_partitions(engine)
    _drop_orphans(engine)
    with engine.connect() as conn:
        return store.job(conn, job_id) or {}


def _remove_work_dir(engine: Engine, job_id: str) -> None:
    """Delete the job's upload folder once nothing needs it: every end but ``preview`` (whose commit re-reads
    the file; its commit job removes the folder when it ends). Jobs without a folder (the CLI's) keep the
    user's own file."""
    record: dict[str, Any] = {}
    with contextlib.suppress(sa.exc.SQLAlchemyError), engine.connect() as conn:
        record = store.job(conn, job_id) or {}
    if record.get("work_dir") and record.get("state") not in ("preview", "committed"):
        # (a committed job's folder went before its commit; "running" here: removed before the final state)
        shutil.rmtree(record["work_dir"], ignore_errors=True)


def _drop_orphans(engine: Engine) -> None:
    """Load tables committed by imports that then failed or were rolled back (this one's, or earlier ones'
    that could not be dropped then)."""
    with contextlib.suppress(sa.exc.SQLAlchemyError):
        store.drop_orphan_loads(engine)


def _fail(engine: Engine, job_id: str, message: str, details: list[dict[str, Any]],
          wait_s: float = FAIL_RECORD_WAIT_S) -> None:
    """Record the job as failed. When the database itself went away (a restart), keep trying for ``wait_s``
    seconds so the job says what happened; if it never comes back the stale heartbeat marks the job failed."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with engine.begin() as conn:
                store.update_job(conn, job_id, state="failed", message=message,
                                 preview={"details": details[:50]} if details else None, finished=True)
            return
        except sa.exc.OperationalError:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.5)


# Background jobs a process runs at once; more wait, queued (imports commit one at a time anyway, and each
# reads and checks its file on a core of its own).
MAX_RUNNING = 2
_RUNNING = threading.BoundedSemaphore(MAX_RUNNING)


def start_in_background(engine: Engine, job_id: str, path: Path, options: CensusOptions) -> threading.Thread:
    """Run a job on a daemon thread (the HTTP upload path), at most ``MAX_RUNNING`` at once per process; the
    job row tells how it went."""

    def target() -> None:
        with _RUNNING, contextlib.suppress(Exception):  # the outcome is recorded in the job row by run_job
            run_job(engine, job_id, path, options)

    thread = threading.Thread(target=target, name=f"import-{job_id}", daemon=True)
    thread.start()
    return thread


def parse_mapping_text(text: str | None) -> dict[str, Any]:
    """A mapping given inline in an upload form (JSON or YAML: the sections of a mapping file, or a flat
    ``{StandardName: column}`` object), checked (``mapping.parse_mapping``); returns the form
    ``CensusOptions.mapping`` takes."""
    if not text:
        return {}
    return parse_mapping(safeyaml.load(text, what="mapping")).to_dict()


def job_json(job: dict[str, Any]) -> str:
    return json.dumps(job, ensure_ascii=False, default=str)


def bad_rows_geojson(rows: list[dict[str, Any]], srid: int) -> dict[str, Any]:
    """Report rows of severity ``error`` as a GeoJSON FeatureCollection in EPSG:4326 (null geometry where the
    row could not be placed). ``geom_wkt`` of the rows is in EPSG:``srid``."""
    import shapely

    from citygrid.spatial.crs import to_lonlat

    errors = [r for r in rows if r["severity"] == "error"]
    placed = [i for i, r in enumerate(errors) if r.get("geom_wkt")]
    lonlat = to_lonlat(shapely.from_wkt([errors[i]["geom_wkt"] for i in placed]), srid) if placed else []
    geometry: dict[int, Any] = {i: shapely.geometry.mapping(g) for i, g in zip(placed, lonlat, strict=True)}
    features = [{"type": "Feature", "properties": {k: r[k] for k in ("line", "obj_id", "field", "reason")},
                 "geometry": geometry.get(i)} for i, r in enumerate(errors)]
    return {"type": "FeatureCollection", "features": features}


def record_source(engine: Engine, district: str, job_id: str, source: str, licence: str = "") -> None:
    """Record where a census import job's file came from (its own transaction, before the job runs): the
    source counts in the footer and ``status`` once the job is committed, never for a dry run or a failure.
    ``source`` and ``licence`` are checked by ``spatial.sources.source_text`` first."""
    with engine.begin() as conn:
        spatial_store.record_source(conn, district=district, kind="census", source=source, licence=licence,
                                    job_id=job_id)


def recorded_source(conn: Connection, district: str, job_id: str) -> dict[str, str] | None:
    """The source and licence recorded with a job (a preview's, carried over to its commit), or None."""
    return spatial_store.job_source(conn, district, job_id)

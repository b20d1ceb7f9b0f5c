"""Census uploads as jobs: ``POST /api/v1/imports`` (multipart), progress, row report, bad rows, commit."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from citygrid.components_survey import jobs
from citygrid.components_survey import queries as survey
from citygrid.components_survey.census import CensusOptions, report_csv
from citygrid.config import Settings
from citygrid.errors import Conflict, InvalidInput, NotFound, Unavailable
from citygrid.loaders import gdalsafe, safeyaml
from citygrid.loaders.archive import check_archive
from citygrid.spatial.db import deployment_srid
from citygrid.spatial.sources import source_text
from citygrid.webmap.auth import allow, require_principal
from citygrid.webmap.context import backend, connection
from citygrid.webmap.heavy import heavy
from citygrid.webmap.params import district_code

bp = Blueprint("imports_v1", __name__, url_prefix="/api/v1/imports")
ALLOWED_SUFFIXES = {".zip", ".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".gpkg", ".geojson",
                    ".json", ".csv", ".txt", ".fgb", ".gml", ".kml"}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_BAD_NAME = re.compile(r"[\\/\x00-\x1f]|^\.+$")


def _job_id(text: str) -> str:
    if not _UUID.match(text):
        raise InvalidInput(f"{text!r} is not an import job id", field="job_id")
    return text


def _flag(name: str) -> bool:
    raw = (request.form.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise InvalidInput(f"{name} must be true or false", field=name)


def _number(name: str, default: float) -> float:
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number", field=name) from None


def _imports_dir() -> Path:
    """Where uploads are kept: ``CITYGRID_IMPORTS_DIR`` or ``data/imports``."""
    if current_app.config.get("CITYGRID_IMPORTS_DIR"):
        return Path(current_app.config["CITYGRID_IMPORTS_DIR"])
    settings: Settings = current_app.config["CITYGRID_SETTINGS"]  # create_app always sets it
    return settings.data_dir / "imports"


def _job_links(job_id: str) -> dict[str, str]:
    return {"self": url_for("imports_v1.get_job", job_id=job_id),
            "report": url_for("imports_v1.get_report", job_id=job_id),
            "bad_rows": url_for("imports_v1.get_bad_rows", job_id=job_id)}


def _start(path: Path, options: CensusOptions, work_dir: Path, source: dict[str, str] | None = None) -> str:
    """Record and start a job; ``source`` (source, licence) is recorded with it and counts once it commits."""
    engine = backend().engine
    if engine is None:
        raise Unavailable("this server cannot run background imports (no database engine)")
    job_id = jobs.new_job(engine, path, options, created_by=require_principal().username, work_dir=str(work_dir))
    if source:
        jobs.record_source(engine, options.district, job_id, source["source"], source["licence"])
    jobs.start_in_background(engine, job_id, path, options)
    return job_id


@bp.post("")
@allow("gis")
@heavy
def upload():
    """Multipart form: ``file`` (a zip, a Shapefile's parts, or one GeoPackage/GeoJSON/CSV), ``district``,
    optional ``crs``, ``encoding``, ``layer``, ``mapping`` (JSON/YAML), ``x_field``, ``y_field``, ``dry_run``,
    ``partial``, ``max_bad_ratio``, ``move_tolerance_m``, ``id_field`` (the city's own feature ID column),
    ``scope`` (classes|all), ``max_retire_ratio``, ``allow_mass_retire``, ``source`` (where the data comes
    from; default the file name) and ``licence``, shown in the page footer once the import is committed.
    Answers 202 with the job."""
    district = district_code(request.form.get("district"))
    files = request.files.getlist("file")
    if not files:
        raise InvalidInput("upload at least one file in the 'file' field", field="file")
    options = CensusOptions(
        district=district, crs=request.form.get("crs") or None, encoding=request.form.get("encoding") or None,
        layer=request.form.get("layer") or None, mapping=jobs.parse_mapping_text(_mapping_text()),
        x_field=request.form.get("x_field") or None, y_field=request.form.get("y_field") or None,
        dry_run=_flag("dry_run"), partial=_flag("partial"), max_bad_ratio=_number("max_bad_ratio", 0.05),
        move_tolerance_m=_number("move_tolerance_m", 5.0), id_field=request.form.get("id_field") or None,
        scope=request.form.get("scope") or "classes", max_retire_ratio=_number("max_retire_ratio", 0.2),
        allow_mass_retire=_flag("allow_mass_retire"),
    ).validate()
    names = [_upload_name(storage.filename) for storage in files]  # every name checked before a byte is kept
    source = {"source": source_text(request.form.get("source"), "source", required=False),
              "licence": source_text(request.form.get("licence"), "licence", required=False)}
    work_dir = _imports_dir() / str(uuid.uuid4())
    try:  # the folder goes whenever the upload does not become a job (bad content, a corrupt zip, any error)
        work_dir.mkdir(parents=True, exist_ok=True)
        saved = []
        for storage, name in zip(files, names, strict=True):
            storage.save(work_dir / name)
            saved.append(work_dir / name)
        main = next((p for p in saved if p.suffix.lower() in (".zip", ".shp")), None) or saved[0]
        if main.suffix.lower() == ".zip":  # a lying or corrupt file is a 400 now, not a failed job later
            check_archive(main)
        elif main.suffix.lower() in gdalsafe.DRIVERS:
            gdalsafe.check_content(main)
        job_id = _start(main, options, work_dir, {**source, "source": source["source"] or main.name})
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return jsonify({"job_id": job_id, "state": "queued", "links": _job_links(job_id)}), 202


def _mapping_text() -> str | None:
    """The ``mapping`` form field, or a mapping file sent as a part of that name (``curl -F mapping=@m.yaml``,
    which was ignored, so the import ran without it). Any other file part than ``file`` and ``mapping`` is
    refused rather than ignored."""
    for name in request.files:
        if name not in ("file", "mapping"):
            raise InvalidInput(f"{name[:40]!r} must be a form field, not a file (only 'file' and 'mapping' "
                               "take files)", field=name[:40])
    parts = request.files.getlist("mapping")
    if not parts:
        return request.form.get("mapping")
    if len(parts) > 1 or request.form.get("mapping"):
        raise InvalidInput("send one mapping: one 'mapping' field or file", field="mapping")
    data = parts[0].stream.read(safeyaml.MAX_BYTES + 1)
    if len(data) > safeyaml.MAX_BYTES:
        raise InvalidInput(f"the mapping file is larger than {safeyaml.MAX_BYTES // 1024} KiB", field="mapping")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the mapping file is not UTF-8 text", field="mapping") from None


MAX_NAME = 200


def _upload_name(filename: str | None) -> str:
    """The name an uploaded part is kept under: its own base name, if it is an accepted dataset file."""
    name = Path(filename or "").name
    if not name or len(name) > MAX_NAME or _BAD_NAME.search(name) or Path(name).suffix.lower() not in ALLOWED_SUFFIXES:
        raise InvalidInput(f"file name {(filename or '')[:MAX_NAME]!r} is not an accepted dataset file "
                           f"({', '.join(sorted(ALLOWED_SUFFIXES))}; at most {MAX_NAME} characters)", field="file")
    return name


def _job(job_id: str) -> dict:
    """An existing job's record (404 otherwise)."""
    with connection() as conn:
        record = survey.job(conn, _job_id(job_id))
    if record is None:
        raise NotFound(f"no import job {job_id}")
    return record


@bp.get("/<job_id>")
@allow("gis")
def get_job(job_id: str):
    record = _job(job_id)
    record.pop("work_dir", None)
    record.get("params", {}).pop("path", None)
    if record.get("message"):  # GDAL's messages name the server's folders: keep the file's own name only
        record["message"] = _SERVER_PATH.sub("", record["message"])
    return jsonify({**record, "links": _job_links(job_id)})


_SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:[^/\s'\"]+/)+")


def _report_rows(job_id: str) -> tuple[list[dict], int]:
    """The row report of an existing job, and the deployment SRID its points are in."""
    _job(job_id)
    with connection() as conn:
        return survey.report_rows(conn, job_id), deployment_srid(conn)


@bp.get("/<job_id>/report.csv")
@allow("gis")
@heavy
def get_report(job_id: str):
    rows, _ = _report_rows(job_id)
    return Response(report_csv(rows), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename=import-{job_id}-report.csv"})


@bp.get("/<job_id>/bad.geojson")
@allow("gis")
@heavy
def get_bad_rows(job_id: str):
    rows, srid = _report_rows(job_id)
    return jsonify(jobs.bad_rows_geojson(rows, srid))


@bp.post("/<job_id>/commit")
@allow("gis")
def commit_preview(job_id: str):
    """Re-run a previewed (dry-run) import for real, as a new job on the same file; form field
    ``allow_mass_retire=true`` lets it retire more than the preview's ``max_retire_ratio``."""
    record = _job(job_id)
    if record["state"] != "preview":
        raise Conflict(f"job {job_id} is {record['state']}; only a preview can be committed")
    params = dict(record["params"])
    path = Path(params.pop("path"))
    if not path.exists():
        raise Conflict("the uploaded file of that preview is gone; upload it again")
    fields = set(CensusOptions.__dataclass_fields__)
    allow = {"allow_mass_retire": True} if _flag("allow_mass_retire") else {}
    options = CensusOptions(**{k: v for k, v in params.items() if k in fields} | {"dry_run": False} | allow
                            ).validate()
    with connection() as conn:
        previewed = jobs.recorded_source(conn, options.district, job_id)
    new_id = _start(path, options, Path(record["work_dir"] or path.parent), previewed)
    return jsonify({"job_id": new_id, "state": "queued", "previewed_by": job_id, "links": _job_links(new_id)}), 202

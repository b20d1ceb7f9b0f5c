"""``GET /healthz``: versions, schema revision, SRID and whether the database answers."""

from __future__ import annotations

from flask import Blueprint, jsonify

from citygrid import __version__
from citygrid.errors import CitygridError
from citygrid.spatial import db
from citygrid.webmap.auth import public
from citygrid.webmap.context import backend, connection
from citygrid.webmap.errors import error_body, status_for

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz():
    body = {"app_version": __version__, "database": backend().database, "database_reachable": False}
    try:
        with connection() as conn:
            body.update(db.server_versions(conn))
            body["schema_revision"] = db.current_revision(conn)
            body["srid"] = db.deployment_srid(conn)
            body["database_reachable"] = True
    except CitygridError as exc:
        return jsonify({**error_body(exc.code, exc.message), **body}), status_for(exc)
    except Exception as exc:  # the point of a health check: any failure to talk to the database is a 503
        return jsonify({**error_body("unavailable", f"database unreachable: {type(exc).__name__}"), **body}), 503
    body["status"] = "ok" if body["schema_revision"] == db.head_revision() else "schema_mismatch"
    return jsonify(body), 200 if body["status"] == "ok" else 503

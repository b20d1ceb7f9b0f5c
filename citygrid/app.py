"""Application factory: ``create_app(config=None) -> Flask``. Wiring only; nothing happens at import time."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, request
from sqlalchemy.engine import Connection

from citygrid.cases.publication import Publication
from citygrid.cases.rules import CaseRules
from citygrid.config import Settings
from citygrid.errors import TooLarge, Unavailable
from citygrid.spatial import db
from citygrid.webmap import (
    admin_api,
    analysis_api,
    api,
    auth,
    cases_api,
    desk_api,
    editing_api,
    evaluation_api,
    exports_api,
    grids_api,
    headers,
    health,
    heavy,
    history_api,
    hotspots_api,
    imports_api,
    inputs,
    ogc_api,
    open311,
    openapi,
    pages,
    photos_api,
    recurrence_api,
    responsibility_api,
    search_api,
    tiles_api,
)
from citygrid.webmap.context import Backend
from citygrid.webmap.errors import register_error_handlers
from citygrid.webmap.json_provider import IsoJSONProvider
from citygrid.webmap.ratelimit import TokenBuckets, parse_keys

log = logging.getLogger(__name__)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app.

    Config keys
    -----------
    CITYGRID_SETTINGS : ``Settings`` (default: from the environment, read once here and kept under this key);
        its ``data_dir`` holds the case rules (``cases.rules.CaseRules``) and the Open311 publication rule, read
        once here; the trusted proxy, the Open311 keys and the upload read limits come from it too.
    CITYGRID_BACKEND : a ready ``Backend`` (tests pass one whose connections roll back).
    CITYGRID_CHECK_SCHEMA : refuse to start on a schema revision the code does not know (default True).
    CITYGRID_HEAVY_REQUESTS, CITYGRID_HEAVY_WAIT_S : heavy requests at once per process (default 2), and how
        long one waits for a slot before 503 (default 0.5 s); see ``citygrid.webmap.heavy``.

    Raises ``SchemaMismatch`` at start-up when the database's schema is not the one this code knows.
    A database that cannot be reached at start-up is tolerated (requests answer 503 until it is back).
    """
    app = Flask(__name__.rsplit(".", 1)[0], static_folder=None)
    app.json = IsoJSONProvider(app)
    app.config.update(MAX_CONTENT_LENGTH=512 * 1024 * 1024, CITYGRID_MAX_BODY_BYTES=MAX_BODY_BYTES)
    app.config.update(config or {})
    settings = app.config["CITYGRID_SETTINGS"] = app.config.get("CITYGRID_SETTINGS") or Settings.from_env()
    backend = app.config.get("CITYGRID_BACKEND") or _engine_backend(settings)
    if app.config.get("CITYGRID_CHECK_SCHEMA", True) and backend.engine is not None:
        try:
            db.check_schema(backend.engine)
        except Unavailable as exc:
            log.warning("starting without a database: %s", exc)
    app.extensions["citygrid"] = backend
    app.extensions["citygrid_intake_buckets"] = TokenBuckets()  # per-client limits of the public intake
    app.extensions["citygrid_open311_keys"] = parse_keys(settings.open311_keys)  # their own limits, by API key
    app.extensions["citygrid_open311"] = Publication.from_data_dir(settings.data_dir)  # what Open311 GET shows
    app.extensions["citygrid_case_rules"] = CaseRules.load(settings.data_dir)  # read once: webmap.context.case_rules
    evaluation_api.install(app)  # data/evaluation.yaml read once; the public ranking's rate limit
    register_error_handlers(app)
    app.before_request(_limit_body)
    auth.install(app)
    inputs.install(app)  # no control characters in any text, no JSON nested past a depth (400 naming the field)
    heavy.install(app)  # the bound on concurrent heavy requests (CITYGRID_HEAVY_REQUESTS, CITYGRID_HEAVY_WAIT_S)
    headers.install(app)  # CSP, nosniff, no framing, referrer policy, Secure cookies over HTTPS
    for blueprint in (health.bp, api.bp, grids_api.bp, imports_api.bp, cases_api.bp, cases_api.classify_bp,
                      history_api.bp, open311.bp, analysis_api.bp, tiles_api.bp, search_api.bp, openapi.bp,
                      admin_api.bp, responsibility_api.bp, desk_api.bp, editing_api.bp, photos_api.bp,
                      evaluation_api.bp, hotspots_api.bp, recurrence_api.bp, exports_api.bp, ogc_api.bp,
                      pages.bp):
        app.register_blueprint(blueprint)
    return app


MAX_BODY_BYTES = 1024 * 1024  # any request but an upload (a report is ~1 KB)
UPLOAD_ENDPOINTS = frozenset({"imports_v1.upload", "responsibility_v1.ownership_import"})  # up to MAX_CONTENT_LENGTH


# Endpoints whose multipart form carries photos (``webmap.photos_api``): up to ten photos of 10 MiB each.
PHOTO_ENDPOINTS = frozenset({"photos_v1.add", "cases_v1.report", "cases_v1.transition"})


def _limit_body() -> None:
    """413 for a body over ``CITYGRID_MAX_BODY_BYTES`` except on upload endpoints (``MAX_CONTENT_LENGTH``) and
    photo forms (``photos_api.MAX_PHOTO_REQUEST_BYTES``, said in the 413 when the length is announced)."""
    if request.endpoint in PHOTO_ENDPOINTS and request.mimetype == "multipart/form-data":
        limit = min(photos_api.MAX_PHOTO_REQUEST_BYTES, current_app.config["MAX_CONTENT_LENGTH"])
        if (request.content_length or 0) > limit:
            raise TooLarge(f"a request with photos may have at most {limit:,} bytes (at most "
                           f"{photos_api.MAX_PHOTOS} photos of {photos_api.MAX_PHOTO_BYTES:,} bytes each)",
                           field="body")
        request.max_content_length = limit
    elif request.endpoint not in UPLOAD_ENDPOINTS:
        request.max_content_length = min(current_app.config["CITYGRID_MAX_BODY_BYTES"],
                                         current_app.config["MAX_CONTENT_LENGTH"])


def _engine_backend(settings: Settings) -> Backend:
    url = db.database_url(settings)
    engine = db.make_engine(url, pool_size=20, max_overflow=40, pool_timeout=30,
                            connect_args={"connect_timeout": 5})

    @contextmanager
    def connect() -> Iterator[Connection]:
        with engine.begin() as conn:
            yield conn

    return Backend(engine=engine, connect=connect, database=url.database or "")

"""One table from domain errors to HTTP status, and JSON error bodies ``{"error", "message", "details"}``."""

from __future__ import annotations

import logging
import math

import sqlalchemy as sa
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from citygrid.errors import (
    CitygridError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Overloaded,
    RateLimited,
    Rejected,
    RetryLater,
    SchemaMismatch,
    TooLarge,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger(__name__)

STATUS: dict[type[CitygridError], int] = {
    InvalidInput: 400,
    TooLarge: 413,
    NotFound: 404,
    Unauthorized: 401,
    Forbidden: 403,
    Conflict: 409,
    Rejected: 422,
    RateLimited: 429,
    Unavailable: 503,
    Overloaded: 503,
    SchemaMismatch: 503,
}


def error_body(code: str, message: str, details: list | None = None, extra: dict | None = None) -> dict:
    return {**(extra or {}), "error": code, "message": message, "details": details or []}


def status_for(exc: CitygridError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def register_error_handlers(app: Flask) -> None:
    """Every error leaves as JSON; nothing shows a stack trace to the caller."""

    @app.errorhandler(CitygridError)
    def _domain(exc: CitygridError):
        response = jsonify(error_body(exc.code, exc.message, exc.details, exc.extra))
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="citygrid"'
        if isinstance(exc, RetryLater):
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return response, status_for(exc)

    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.InterfaceError)
    def _db_down(exc: Exception):
        log.warning("database unavailable: %s", exc)
        return jsonify(error_body("unavailable", "the database is unavailable; try again shortly")), 503

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        name = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error_body(name, exc.description or exc.name)), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return jsonify(error_body("internal", "internal error; it has been logged")), 500

"""Every request's text checked once, before any view: no control characters, no JSON nested past a depth.

PostgreSQL refuses a NUL byte in text (a 500 before this check, anonymous Open311 included), and other C0
control characters have no business in a report, a filter or a name. Tab, line feed and carriage return are
allowed (multi-line descriptions and notes). A JSON body nested deeper than ``MAX_JSON_DEPTH`` is refused
too: Python's parser raises ``RecursionError`` on a few thousand brackets, which was another 500.

The 400 names the field: the query or form parameter, or the JSON path (``photos[0]``, ``attrs.note``).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, request

from citygrid.errors import InvalidInput
from citygrid.loaders.plaintext import TooDeep, control_character, control_in

MAX_JSON_DEPTH = 32


def _refuse(field: str, what: str) -> None:
    raise InvalidInput(f"{field} contains a control character ({what}); send plain text", field=field)


def _check_pairs(pairs: Any, kind: str) -> None:
    for key, value in pairs.items(multi=True):
        key = key if isinstance(key, str) else ""  # a multipart part without a name
        if (what := control_character(key)) is not None:
            _refuse(f"{kind} parameter name {key!r}", what)
        if isinstance(value, str) and (what := control_character(value)) is not None:
            _refuse(key, what)


def check_json(data: Any) -> None:
    """``InvalidInput`` for a control character in any string (key or value) of ``data``, or nesting deeper
    than ``MAX_JSON_DEPTH``; the field is the value's path (``loaders.plaintext.control_in``)."""
    try:
        found = control_in(data, max_depth=MAX_JSON_DEPTH)
    except TooDeep as exc:
        raise InvalidInput(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep",
                           field=exc.path or "body") from None
    if found is not None:
        _refuse(found[0] or "body", found[1])


def _check_request() -> None:
    """The before-request hook: path, query, form fields and JSON body."""
    if (what := control_character(request.path)) is not None:
        _refuse("path", what)
    _check_pairs(request.args, "query")
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            _check_pairs(request.form, "form")
        elif request.is_json and request.content_length != 0:
            try:
                data = json.loads(request.get_data(cache=True))
            except RecursionError:
                raise InvalidInput(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep",
                                   field="body") from None
            except ValueError:
                return  # not JSON: the view says so
            check_json(data)


def install(app: Flask) -> None:
    """Check every request's text (after authentication, so nobody unsigned makes us parse an upload)."""
    app.before_request(_check_request)

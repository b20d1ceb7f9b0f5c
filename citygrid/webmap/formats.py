"""One way to answer a table of results as JSON, GeoJSON (EPSG:4326) or CSV, shared by the analysts' endpoints.

CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return) are prefixed with an apostrophe: the text of a case or a name comes from the public, and an analyst opens
these files in Excel or WPS.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from flask import Response, jsonify

FORMATS = ("json", "geojson", "csv")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` made safe for a spreadsheet: text starting like a formula gets a leading apostrophe.

    >>> csv_cell("=HYPERLINK(1)"), csv_cell(-3), csv_cell("a")
    ("'=HYPERLINK(1)", -3, 'a')
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_response(rows: Iterable[dict[str, Any]], fields: Sequence[str], filename: str) -> Response:
    """Rows as a CSV attachment with the columns ``fields`` (others ignored), formula-like cells neutralised."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell(v) for k, v in row.items()})
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in filename)
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={safe}"})


def table_response(rows: list[dict[str, Any]], *, fmt: str, fields: Sequence[str], filename: str,
                   meta: dict[str, Any], rows_key: str = "rows", geometry_key: str = "geometry",
                   id_key: str | None = "code") -> Response:
    """Answer ``rows`` in ``fmt`` (one of ``FORMATS``).

    Parameters
    ----------
    rows : list of dict
        One result each; ``rows[i][geometry_key]`` a GeoJSON geometry in EPSG:4326 (needed for ``geojson``;
        dropped from the JSON and CSV answers).
    fmt : str
        ``json`` → ``{**meta, rows_key: rows}``; ``geojson`` → a FeatureCollection with ``meta`` as foreign
        members; ``csv`` → an attachment named ``filename`` with the columns ``fields``.
    """
    if fmt == "csv":
        return csv_response(rows, fields, filename)
    if fmt == "geojson":
        features = [{"type": "Feature", **({"id": r[id_key]} if id_key and id_key in r else {}),
                     "geometry": r.get(geometry_key),
                     "properties": {k: v for k, v in r.items() if k != geometry_key}} for r in rows]
        return jsonify({"type": "FeatureCollection", "features": features, **meta})
    return jsonify({**meta, rows_key: [{k: v for k, v in r.items() if k != geometry_key} for r in rows]})

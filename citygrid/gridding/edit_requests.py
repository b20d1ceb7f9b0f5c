"""The first step of a grid edit (#23): an edit request checked for its shape, before anything is read.

A request is a JSON object (the HTTP body without ``expected_revision``, or what the CLI builds): ``op`` and the
members that op takes, nothing else. Codes must be of the deployment's code scheme; geometry is GeoJSON in
EPSG:4326 (a bare geometry or a Feature) of the op's type, with finite coordinates in range and at most
``MAX_VERTICES`` vertices. Nothing here reads the database.

Examples
--------
>>> from citygrid.codes import SCHEMES
>>> request = parse({"op": "merge", "codes": ["110105001001001", "110105001001002"]}, SCHEMES["cn-admin"])
>>> request.op, request.codes
('merge', ('110105001001001', '110105001001002'))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from citygrid.codes import CodeScheme
from citygrid.errors import InvalidInput

# The members each op takes (all required).
OPS: dict[str, tuple[str, ...]] = {
    "split": ("code", "line"),
    "merge": ("codes",),
    "reshape": ("code", "geometry"),
    "move-vertex": ("from", "to"),
    "reassign": ("codes", "supervision_code"),
    "set-team": ("supervision_code", "team_code"),
}
MAX_VERTICES = 10_000  # of one geometry sent (a drawn line or boundary has a few dozen)
MAX_RINGS = 100
MAX_MERGE = 50  # unit grids merged at once
MAX_REASSIGN = 1000  # unit grids moved to another supervision grid at once


@dataclass(frozen=True)
class EditRequest:
    """One checked edit request.

    Attributes
    ----------
    op : one of ``OPS``.
    codes : the unit grids it names (``code`` or ``codes``), in the order given.
    supervision_code, team_code : of ``reassign`` / ``set-team``.
    geometry : the split line or the new boundary, shapely, EPSG:4326 (lon/lat).
    points : ``move-vertex``'s from and to, (lon, lat) in EPSG:4326.
    """

    op: str
    codes: tuple[str, ...] = ()
    supervision_code: str | None = None
    team_code: str | None = None
    geometry: BaseGeometry | None = None
    points: tuple[tuple[float, float], ...] = field(default=())

    def record(self) -> dict[str, Any]:
        """The request as the edit log keeps it (JSON; geometry as GeoJSON in EPSG:4326)."""
        out: dict[str, Any] = {"op": self.op}
        if self.op in ("split", "reshape"):
            out["code"] = self.codes[0]
            out["line" if self.op == "split" else "geometry"] = shapely.geometry.mapping(self.geometry)
        elif self.op in ("merge", "reassign"):
            out["codes"] = list(self.codes)
        if self.op == "move-vertex":
            out["from"], out["to"] = list(self.points[0]), list(self.points[1])
        if self.supervision_code is not None:
            out["supervision_code"] = self.supervision_code
        if self.team_code is not None:
            out["team_code"] = self.team_code
        return out


def parse(op: Any, scheme: CodeScheme) -> EditRequest:
    """Check an edit request's shape (see the module docstring); ``InvalidInput`` naming the member at fault."""
    if not isinstance(op, dict):
        raise InvalidInput("an edit is a JSON object with an op", field="op")
    name = op.get("op")
    if not isinstance(name, str) or name not in OPS:
        raise InvalidInput(f"op must be one of {', '.join(OPS)}", field="op")
    wanted = OPS[name]
    missing = [m for m in wanted if op.get(m) is None]
    if missing:
        raise InvalidInput(f"{name} needs {', '.join(wanted)}; {missing[0]} is missing", field=missing[0])
    unknown = sorted(str(k)[:40] for k in op if k != "op" and k not in wanted)
    if unknown:
        raise InvalidInput(f"{name} takes {', '.join(wanted)}, not {unknown[0]}", field=unknown[0])
    return _PARSERS[name](op, scheme)


def _split(op: dict[str, Any], scheme: CodeScheme) -> EditRequest:
    return EditRequest("split", codes=(scheme.check("unit_grid", op["code"], "code"),),
                       geometry=geojson(op["line"], "LineString", "line"))


def _merge(op: dict[str, Any], scheme: CodeScheme) -> EditRequest:
    return EditRequest("merge", codes=_codes(op["codes"], scheme, 2, MAX_MERGE))


def _reshape(op: dict[str, Any], scheme: CodeScheme) -> EditRequest:
    return EditRequest("reshape", codes=(scheme.check("unit_grid", op["code"], "code"),),
                       geometry=geojson(op["geometry"], "Polygon", "geometry"))


def _move_vertex(op: dict[str, Any], scheme: CodeScheme) -> EditRequest:
    points = (position(op["from"], "from"), position(op["to"], "to"))
    if points[0] == points[1]:
        raise InvalidInput("from and to are the same point: nothing would move", field="to")
    return EditRequest("move-vertex", points=points)


def _reassign(op: dict[str, Any], scheme: CodeScheme) -> EditRequest:
    return EditRequest("reassign", codes=_codes(op["codes"], scheme, 1, MAX_REASSIGN),
                       supervision_code=scheme.check("supervision_grid", op["supervision_code"], "supervision_code"))


def _set_team(op: dict[str, Any], scheme: CodeScheme) -> EditRequest:
    return EditRequest("set-team",
                       supervision_code=scheme.check("supervision_grid", op["supervision_code"], "supervision_code"),
                       team_code=scheme.check("team", op["team_code"], "team_code"))


_PARSERS = {"split": _split, "merge": _merge, "reshape": _reshape, "move-vertex": _move_vertex,
            "reassign": _reassign, "set-team": _set_team}


def _codes(value: Any, scheme: CodeScheme, least: int, most: int) -> tuple[str, ...]:
    """A list of ``least``–``most`` distinct unit-grid codes of the scheme."""
    if not isinstance(value, list | tuple):
        raise InvalidInput("codes must be a list of unit-grid codes", field="codes")
    if not least <= len(value) <= most:
        raise InvalidInput(f"codes must name {least} to {most} unit grids, not {len(value)}", field="codes")
    codes = tuple(scheme.check("unit_grid", c if isinstance(c, str) else None, "codes") for c in value)
    if len(set(codes)) != len(codes):
        raise InvalidInput("codes names a unit grid twice", field="codes")
    return codes


def position(value: Any, name: str) -> tuple[float, float]:
    """A GeoJSON position ``[lon, lat]`` (a third number, a height, is ignored): finite numbers in range."""
    if not isinstance(value, list | tuple) or not 2 <= len(value) <= 3:
        raise InvalidInput(f"{name} must be a position [lon, lat]", field=name)
    numbers = []
    for item in value[:2]:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise InvalidInput(f"{name} must be a position [lon, lat] of numbers", field=name)
        try:
            number = float(item)
        except OverflowError:  # an integer of hundreds of digits (JSON allows it)
            number = math.inf
        if not math.isfinite(number):
            raise InvalidInput(f"{name} has a coordinate that is not a finite number", field=name)
        numbers.append(number)
    lon, lat = numbers
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise InvalidInput(f"{name} [{lon:g}, {lat:g}] is not a WGS84 lon/lat (-180…180, -90…90)", field=name)
    return lon, lat


def geojson(value: Any, kind: str, name: str) -> BaseGeometry:
    """A GeoJSON ``LineString`` or ``Polygon`` (bare, or a Feature's geometry) in EPSG:4326 as shapely; at
    most ``MAX_VERTICES`` vertices. A polygon's rings must be closed; its validity is the edit's to judge."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or value.get("type") != kind:
        raise InvalidInput(f"{name} must be a GeoJSON {kind} in EPSG:4326 (lon/lat)", field=name)
    coordinates = value.get("coordinates")
    if kind == "LineString":
        return shapely.LineString(_positions(coordinates, name, 2, MAX_VERTICES))
    if not isinstance(coordinates, list | tuple) or not 1 <= len(coordinates) <= MAX_RINGS:
        raise InvalidInput(f"{name} must have 1 to {MAX_RINGS} rings", field=name)
    rings, left = [], MAX_VERTICES
    for ring in coordinates:
        points = _positions(ring, name, 4, left)
        if points[0] != points[-1]:
            raise InvalidInput(f"{name}: a ring must end where it starts", field=name)
        rings.append(points)
        left -= len(points)
    return shapely.Polygon(rings[0], rings[1:])


def _positions(value: Any, name: str, least: int, most: int) -> list[tuple[float, float]]:
    if not isinstance(value, list | tuple):
        raise InvalidInput(f"{name} must hold a list of positions", field=name)
    if len(value) > most:
        raise InvalidInput(f"{name} has more than {MAX_VERTICES:,} vertices", field=name)
    if len(value) < least:
        raise InvalidInput(f"{name} needs at least {least} positions", field=name)
    return [position(p, name) for p in value]

"""QGIS styles of the collections (#25): a categorized renderer per kind and labels on the feature id, written
as a QGIS style document (``.qml``) with ``xml.etree`` — the same style a GeoPackage export carries in its
``layer_styles`` table and the QGIS project (``qgis_project``) gives its layers.

What each kind is coloured by:

- unit grids: the party owning each grid in one of the four roles (``responsibility.ownership.ROLES``; the
  first, ``responsibility``, unless asked), as owned now in the district's current version;
- supervision grids: the supervision team; components: the census class; cases: the workflow status;
- the other kinds (teams, communities, streets, frontage units): one symbol, outlines only for areas.

Colours are stable: a category's colour comes from a seeded hash of its value (not from its rank), so the same
owner, team or class has the same colour in every export and project, whatever else is in the legend; case
statuses have a fixed palette (open: warm, closed: greens and greys). A value the style did not list (an older
version's owner, a class added since) falls under a last "other" category, drawn grey, so no feature is hidden.
No geometry here: styles name fields, never coordinates.
"""

from __future__ import annotations

import colorsys
import datetime as dt
import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from citygrid.cases.workflow import STATES
from citygrid.errors import InvalidInput, NotFound
from citygrid.gridding import queries as grids
from citygrid.interop import store
from citygrid.interop.collections import Kind, parse_collection_id
from citygrid.responsibility.ownership import ROLES

__all__ = ["Category", "Style", "layer_styles_row", "owner_field", "qml", "style_elements", "style_for"]

QGIS_VERSION = "3.22.16-Białowieża"
DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"
SEED = "citygrid-style-1"
OTHER_COLOUR = (170, 170, 170)
# Case statuses: open ones warm (new reports red, work in hand orange to blue), closed ones green and grey.
STATUS_COLOURS = {
    "reported": (215, 48, 39), "verified": (244, 109, 67), "accepted": (253, 174, 97),
    "dispatched": (69, 117, 180), "fed_back": (116, 173, 209), "checked": (94, 60, 153),
    "investigating": (197, 27, 125), "closed": (26, 152, 80), "evaluated": (0, 104, 55),
    "rejected": (120, 120, 120), "duplicate": (190, 190, 190),
}
# The largest scale denominator at which labels still show (zoomed out further they would cover the map).
LABEL_SCALE = {"fill": 25_000, "marker": 5_000, "line": 10_000}
SYMBOL_TYPES = {"Polygon": "fill", "MultiPolygon": "fill", "Point": "marker", "MultiPoint": "marker",
                "LineString": "line", "MultiLineString": "line"}
# QGIS's geometry type numbers (QgsWkbTypes::GeometryType), for ``layerGeometryType``.
GEOMETRY_NUMBERS = {"marker": "0", "line": "1", "fill": "2"}


@dataclass(frozen=True)
class Category:
    """One class of the legend: features whose ``Style.attribute`` equals ``value`` (text) get ``colour``."""

    value: str
    label: str
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class Style:
    """What a layer looks like, independent of XML.

    ``symbol`` is QGIS's symbol type (``fill``, ``line``, ``marker``); ``attribute`` the field the categories
    test (None: one symbol, ``colour``); ``label_field`` the field labelled; ``outline_only`` draws areas as
    outlines (boundaries laid over the grids).
    """

    title: str
    symbol: str
    attribute: str | None
    categories: tuple[Category, ...]
    label_field: str | None
    colour: tuple[int, int, int]
    outline_only: bool = False
    outline_width: float = 0.26


# ------------------------------------------------------------------------------------------ what to draw
def seeded_colour(value: str) -> tuple[int, int, int]:
    """A readable colour for ``value``, the same on every run: hue from a seeded hash, saturation 0.45–0.75 and
    lightness 0.45–0.65 (never near white or black, so labels and outlines stay legible).

    Examples
    --------
    >>> seeded_colour("T01") == seeded_colour("T01")
    True
    """
    digest = hashlib.blake2b(f"{SEED}:{value}".encode(), digest_size=8).digest()
    hue = int.from_bytes(digest[:4], "big") / 2**32
    saturation = 0.45 + digest[4] / 255 * 0.30
    lightness = 0.45 + digest[5] / 255 * 0.20
    red, green, blue = colorsys.hls_to_rgb(hue, lightness, saturation)
    return round(red * 255), round(green * 255), round(blue * 255)


def owner_field(kind: Kind, role: str) -> str | None:
    """The field of a unit-grids kind that holds the code of the party owning a grid in ``role``
    (``owner_<role>``), or None when the kind carries no owner of that role."""
    name = f"owner_{role}"
    return name if any(f.name == name for f in kind.fields) else None


def _field(kind: Kind, *names: str) -> str | None:
    """The first of ``names`` that is a field of ``kind``."""
    present = {f.name for f in kind.fields}
    return next((name for name in names if name in present), None)


def _categories(pairs: list[tuple[str, str]]) -> tuple[Category, ...]:
    """Categories of (value, label) pairs, seeded colours, duplicates and empty values dropped."""
    seen: dict[str, Category] = {}
    for value, label in pairs:
        if value not in (None, "") and str(value) not in seen:
            seen[str(value)] = Category(str(value), str(label or value), seeded_colour(str(value)))
    return tuple(seen.values())


def _owner_categories(conn: Connection, district: str, role: str) -> tuple[Category, ...]:
    try:
        _, owners = grids.current_owners(conn, district, role)
    except NotFound:
        return ()
    return _categories([(o["code"], f"{o['name']} ({o['grids']})") for o in owners])


def _team_categories(conn: Connection, district: str) -> tuple[Category, ...]:
    return _categories([(t["code"], t["name"] or t["code"]) for t in grids.current_teams(conn, district)])


def _class_categories(conn: Connection, district: str) -> tuple[Category, ...]:
    return _categories([(c["code"], f"{c['code']} {c['name'] or ''}".strip())
                        for c in store.style_component_classes(conn, district)])


def _status_categories() -> tuple[Category, ...]:
    return tuple(Category(s, s.replace("_", " "), STATUS_COLOURS.get(s, seeded_colour(s))) for s in STATES)


def _categorized(kind: Kind, conn: Connection, district: str, role: str) -> tuple[str | None, tuple[Category, ...]]:
    """(the attribute, its categories) of the kind's categorized renderer; (None, ()) for one symbol."""
    if kind.key == "unit-grids":
        attribute = owner_field(kind, role)
        return (attribute, _owner_categories(conn, district, role)) if attribute else (None, ())
    if kind.key == "supervision-grids":
        attribute = _field(kind, "team_code", "team")
        return (attribute, _team_categories(conn, district)) if attribute else (None, ())
    if kind.key == "components":
        attribute = _field(kind, "class_code", "class")
        return (attribute, _class_categories(conn, district)) if attribute else (None, ())
    if kind.key == "cases":
        attribute = _field(kind, "status")
        return (attribute, _status_categories()) if attribute else (None, ())
    return None, ()


def check_role(role: str | None) -> str:
    """``role`` or the default (the first of ``ROLES``); ``InvalidInput`` (field ``role``) for another name."""
    if role is None:
        return ROLES[0]
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}; got {str(role)[:40]!r}", field="role")
    return role


def style_for(conn: Connection, cid: str, *, role: str | None = None) -> Style:
    """The style of collection ``cid`` (see the module's docstring); ``NotFound`` for an unknown collection,
    ``InvalidInput`` (field ``role``) for an unknown role."""
    role = check_role(role)
    kind, district = parse_collection_id(cid)
    symbol = SYMBOL_TYPES.get(kind.geometry_type, "fill")
    attribute, categories = _categorized(kind, conn, district, role)
    boundary = kind.key in ("teams", "communities", "streets")
    return Style(title=f"{kind.title} {district}", symbol=symbol, attribute=attribute, categories=categories,
                 label_field=kind.id_field, colour=seeded_colour(kind.key), outline_only=boundary,
                 outline_width=0.6 if kind.key in ("supervision-grids", "teams", "streets") else 0.26)


# ------------------------------------------------------------------------------------------ QML (XML)
def _rgba(colour: tuple[int, int, int], alpha: int = 255) -> str:
    return f"{colour[0]},{colour[1]},{colour[2]},{alpha}"


def _darker(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    return (colour[0] * 3 // 5, colour[1] * 3 // 5, colour[2] * 3 // 5)


def _symbol_props(style: Style, colour: tuple[int, int, int]) -> tuple[str, dict[str, str]]:
    """(QGIS symbol-layer class, its properties) of one symbol of ``style`` in ``colour``."""
    if style.symbol == "marker":
        return "SimpleMarker", {"name": "circle", "color": _rgba(colour), "outline_color": "35,35,35,255",
                                "outline_width": "0.2", "size": "2.2", "size_unit": "MM"}
    if style.symbol == "line":
        return "SimpleLine", {"line_color": _rgba(colour), "line_width": str(style.outline_width),
                              "line_width_unit": "MM", "line_style": "solid"}
    outline = colour if style.outline_only else _darker(colour)
    return "SimpleFill", {"color": _rgba(colour, 110), "style": "no" if style.outline_only else "solid",
                          "outline_color": _rgba(outline), "outline_style": "solid",
                          "outline_width": str(style.outline_width), "outline_width_unit": "MM"}


def _symbol(style: Style, name: str, colour: tuple[int, int, int]) -> ET.Element:
    """One ``<symbol>`` with one simple symbol layer; properties both as QGIS ≥ 3.16's ``Option`` map and as
    the older ``prop`` list (what QGIS itself writes)."""
    element = ET.Element("symbol", {"type": style.symbol, "name": name, "alpha": "1", "clip_to_extent": "1",
                                    "force_rhr": "0"})
    layer_class, props = _symbol_props(style, colour)
    layer = ET.SubElement(element, "layer", {"class": layer_class, "pass": "0", "locked": "0", "enabled": "1"})
    options = ET.SubElement(layer, "Option", {"type": "Map"})
    for key, value in props.items():
        ET.SubElement(options, "Option", {"type": "QString", "name": key, "value": value})
    for key, value in props.items():
        ET.SubElement(layer, "prop", {"k": key, "v": value})
    return element


def _renderer(style: Style) -> ET.Element:
    """``<renderer-v2>``: categorized on ``style.attribute`` with a last catch-all category (empty value: QGIS's
    "all other values"), or one symbol."""
    if style.attribute is None:
        renderer = ET.Element("renderer-v2", {"type": "singleSymbol", "symbollevels": "0", "forceraster": "0",
                                              "enableorderby": "0"})
        ET.SubElement(renderer, "symbols").append(_symbol(style, "0", style.colour))
        return renderer
    renderer = ET.Element("renderer-v2", {"type": "categorizedSymbol", "attr": style.attribute,
                                          "symbollevels": "0", "forceraster": "0", "enableorderby": "0"})
    categories, symbols = ET.SubElement(renderer, "categories"), ET.SubElement(renderer, "symbols")
    listed = [*style.categories, Category("", "other", OTHER_COLOUR)]
    for number, category in enumerate(listed):
        ET.SubElement(categories, "category", {"render": "true", "value": category.value, "symbol": str(number),
                                               "label": category.label})
        symbols.append(_symbol(style, str(number), category.colour))
    ET.SubElement(renderer, "source-symbol").append(_symbol(style, "0", style.colour))
    return renderer


def _labeling(style: Style) -> ET.Element:
    """``<labeling>``: the label field in 8 pt dark grey with a white halo, placed over the centroid of an
    area, around a point, along a line; shown only from ``LABEL_SCALE`` in."""
    labeling = ET.Element("labeling", {"type": "simple"})
    settings = ET.SubElement(labeling, "settings", {"calloutType": "simple"})
    text = ET.SubElement(settings, "text-style", {
        "fieldName": style.label_field or "", "isExpression": "0", "fontSize": "8", "fontSizeUnit": "Point",
        "textColor": "40,40,40,255", "fontWeight": "50", "namedStyle": "Regular", "textOpacity": "1"})
    ET.SubElement(text, "text-buffer", {"bufferDraw": "1", "bufferSize": "0.8", "bufferSizeUnits": "MM",
                                        "bufferColor": "255,255,255,255", "bufferOpacity": "0.9",
                                        "bufferNoFill": "1", "bufferJoinStyle": "128"})
    placement = {"fill": "1", "marker": "0", "line": "2"}[style.symbol]
    ET.SubElement(settings, "placement", {"placement": placement, "dist": "1" if placement == "0" else "0",
                                          "distUnits": "MM", "priority": "5", "placementFlags": "10",
                                          "centroidInside": "1", "fitInPolygonOnly": "0"})
    ET.SubElement(settings, "rendering", {"drawLabels": "1", "scaleVisibility": "1", "scaleMin": "1",
                                          "scaleMax": str(LABEL_SCALE[style.symbol]), "obstacle": "1",
                                          "displayAll": "0", "labelPerPart": "0", "upsidedownLabels": "0"})
    return labeling


def style_elements(style: Style) -> list[ET.Element]:
    """The elements a QGIS layer's style is made of (the children of a ``.qml`` root, and of a project's
    ``<maplayer>``): renderer, labeling, blend modes, opacity, geometry type."""
    blend, feature_blend, opacity = ET.Element("blendMode"), ET.Element("featureBlendMode"), ET.Element("layerOpacity")
    blend.text, feature_blend.text, opacity.text = "0", "0", "1"
    geometry = ET.Element("layerGeometryType")
    geometry.text = GEOMETRY_NUMBERS[style.symbol]
    return [_renderer(style), _labeling(style), blend, feature_blend, opacity, geometry]


LAYER_ATTRIBUTES = {"labelsEnabled": "1", "hasScaleBasedVisibilityFlag": "0", "minScale": "100000000",
                    "maxScale": "0", "readOnly": "0", "simplifyDrawingHints": "1", "simplifyAlgorithm": "0",
                    "simplifyDrawingTol": "1", "simplifyLocal": "1", "simplifyMaxScale": "1"}


def qml_text(style: Style) -> str:
    """The ``.qml`` document of ``style`` (UTF-8 text with QGIS's DOCTYPE line)."""
    root = ET.Element("qgis", {"version": QGIS_VERSION, "styleCategories": "Symbology|Labeling",
                               **LAYER_ATTRIBUTES})
    root.extend(style_elements(style))
    ET.indent(root)
    return DOCTYPE + "\n" + ET.tostring(root, encoding="unicode") + "\n"


def qml(conn: Connection, cid: str, *, role: str | None = None) -> str:
    """A QGIS style document (``.qml`` text) for collection ``cid``.

    Parameters
    ----------
    cid : a collection id (``interop.collections.collection_id``), e.g. ``unit-grids-110105``.
    role : the ownership role unit grids are coloured by (``responsibility.ownership.ROLES``; default the
        first, ``responsibility``); ignored for the other kinds.

    Returns
    -------
    The document: a categorized renderer (see the module's docstring) or one symbol, and labels on the
    kind's id field. ``NotFound`` for an unknown collection, ``InvalidInput`` (``role``) for an unknown role.
    """
    return qml_text(style_for(conn, cid, role=role))


def layer_styles_row(conn: Connection, cid: str, table_name: str, geometry_column: str, *,
                     role: str | None = None) -> dict[str, Any]:
    """One row of a GeoPackage's ``layer_styles`` table (QGIS's convention; QGIS applies the row marked
    ``useAsDefault`` when it opens the layer) carrying ``qml(conn, cid, role=role)``.

    ``styleSLD`` is empty (QGIS reads the QML); ``update_time`` is the instant of the call (timezone-aware,
    UTC as GeoPackage timestamps are written).
    """
    style = style_for(conn, cid, role=role)
    return {"f_table_name": table_name, "f_geometry_column": geometry_column, "styleName": table_name,
            "styleQML": qml_text(style), "styleSLD": "", "useAsDefault": True,
            "description": f"{style.title}: citygrid's default style", "owner": "", "ui": None,
            "update_time": dt.datetime.now(dt.UTC)}

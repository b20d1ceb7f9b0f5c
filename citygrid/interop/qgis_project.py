"""A QGIS project of one district (#25): its collections as PostGIS layers of the live database, styled and
labelled (``interop.styles``), and optionally the same collections from the server's OGC API – Features as a
second group — written as a ``.qgs`` document with ``xml.etree``.

The PostGIS layers read the database directly, each through a SQL subquery (``interop.store.qgis_layer_sql``:
the collection's own columns, the district's current grid version, the census and frontage units in force, every
case) keyed on the collection's id field, in the deployment CRS (also the project's CRS). The connection is a
``pg_service.conf`` service name or the deployment's libpq parameters *without* its password: a project file is
shared, a password is not (libpq finds it in ``~/.pgpass`` or ``PGPASSWORD``, or the socket needs none).

The OGC group (``ogc_url`` given) uses QGIS's OAPIF provider with ``restrictToRequestBBOX``, so QGIS asks the
server only for what it shows; it is unchecked (not drawn) when the project opens. Cases need an account: the
project names a QGIS authentication configuration (``ogc_authcfg``), never a token.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pyproj import CRS
from sqlalchemy.engine import URL, Connection

from citygrid.errors import InvalidInput, NotFound
from citygrid.interop import store, styles
from citygrid.interop.collections import KINDS
from citygrid.interop.queries import OPERATOR, list_collections
from citygrid.spatial.db import deployment_srid

__all__ = ["PgConnection", "check_ogc_url", "pg_from_service", "pg_from_url", "project_xml"]

# Layer order, top of the legend (drawn last) first: points over areas, fine grids at the bottom.
LAYER_ORDER = ("cases", "components", "frontage-units", "streets", "communities", "teams", "supervision-grids",
               "unit-grids")
WKB_GEOMETRY = {"Point": "Point", "MultiPoint": "Point", "LineString": "Line", "MultiLineString": "Line",
                "Polygon": "Polygon", "MultiPolygon": "Polygon"}
_LIBPQ_KEYS = ("dbname", "host", "port", "user", "sslmode")


def _plain(text: str, what: str, extra: str = "_-.") -> str:
    """``text`` when it is 1–63 ASCII letters, digits or ``extra`` characters; ``InvalidInput`` otherwise."""
    if not (isinstance(text, str) and 0 < len(text) <= 63
            and all(ch.isascii() and (ch.isalnum() or ch in extra) for ch in text)):
        raise InvalidInput(f"{what} must be 1-63 letters, digits or {' '.join(extra)}; got {str(text)[:40]!r}",
                           field=what)
    return text


def _quoted(value: str) -> str:
    """A value of a QGIS data source URI: single-quoted, backslash and quote escaped (QgsDataSourceUri)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class PgConnection:
    """How QGIS connects to the database: a ``pg_service.conf`` service, or libpq parameters without a
    password (``dbname``, ``host`` — a name, an address or a socket folder —, ``port``, ``user``, ``sslmode``)."""

    service: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    def uri(self) -> str:
        """The connection part of a QGIS PostGIS data source URI."""
        if self.service is not None:
            return f"service={_quoted(self.service)}"
        return " ".join(f"{key}={_quoted(value)}" for key, value in self.params)


def pg_from_service(name: str) -> PgConnection:
    """A connection by ``pg_service.conf`` service ``name``; ``InvalidInput`` (field ``service``) for a name
    that is not plain."""
    return PgConnection(service=_plain(name, "service"))


def pg_from_url(url: URL) -> PgConnection:
    """The libpq parameters of SQLAlchemy ``url`` (a host name, or a socket folder in its ``host`` query
    argument) — every one but the password, which is dropped."""
    query = {key: (value if isinstance(value, str) else value[-1]) for key, value in url.query.items()}
    found = {"dbname": url.database, "host": url.host or query.get("host"),
             "port": str(url.port) if url.port else query.get("port"), "user": url.username,
             "sslmode": query.get("sslmode")}
    return PgConnection(params=tuple((key, str(found[key])) for key in _LIBPQ_KEYS if found[key]))


def check_ogc_url(url: str) -> str:
    """``url`` (the server's ``/ogc`` landing page) without a trailing slash; ``InvalidInput`` (field
    ``ogc_url``) unless it is a plain http(s) URL without credentials, quotes, spaces or control characters."""
    text = str(url)
    parts = urlsplit(text) if len(text) <= 500 else None
    bad = any(ch in text for ch in "'\"\\ <>") or any(ord(ch) < 32 or ord(ch) == 127 for ch in text)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.username \
            or parts.password or parts.query or parts.fragment or bad:
        raise InvalidInput("ogc_url must be the server's http(s) OGC API URL (e.g. http://host:8000/ogc), at most "
                           "500 characters, without a user, password, query, quotes or spaces", field="ogc_url")
    return text.rstrip("/")


# ------------------------------------------------------------------------------------------ XML pieces
def _text(parent: ET.Element, tag: str, text: str, attrib: dict[str, str] | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib or {})
    element.text = text
    return element


def _spatialrefsys(srid: int) -> ET.Element:
    """QGIS's ``<spatialrefsys>`` of EPSG ``srid`` (its WKT from pyproj; QGIS reads the WKT first)."""
    crs = CRS.from_epsg(srid)
    element = ET.Element("spatialrefsys")
    _text(element, "wkt", crs.to_wkt())
    _text(element, "srid", str(srid))
    _text(element, "authid", f"EPSG:{srid}")
    _text(element, "description", crs.name)
    _text(element, "geographicflag", "true" if crs.is_geographic else "false")
    return element


@dataclass(frozen=True)
class _Layer:
    id: str
    name: str
    provider: str
    source: str
    srid: int
    geometry_type: str
    style: styles.Style


def _postgis_layer(collection: dict[str, Any], style: styles.Style, pg: PgConnection) -> _Layer:
    kind = KINDS[collection["kind"]]
    srid = int(collection["storage_srid"])
    sql = store.qgis_layer_sql(kind.key, collection["district"])
    source = (f"{pg.uri()} key={_quoted(kind.id_field)} srid={srid} type={kind.geometry_type} "
              f"checkPrimaryKeyUnicity='0' table=\"({sql})\" (geom)")
    return _Layer(f"{collection['id'].replace('-', '_')}_postgis", kind.title, "postgres", source, srid,
                  kind.geometry_type, style)


def _ogc_layer(collection: dict[str, Any], style: styles.Style, ogc_url: str, authcfg: str | None) -> _Layer:
    kind = KINDS[collection["kind"]]
    source = f"url={_quoted(ogc_url)} typename={_quoted(collection['id'])} restrictToRequestBBOX='1'"
    if authcfg:
        source += f" authcfg={authcfg}"
    return _Layer(f"{collection['id'].replace('-', '_')}_ogc", f"{kind.title} (OGC API)", "OAPIF", source, 4326,
                  kind.geometry_type, style)


def _maplayer(layer: _Layer) -> ET.Element:
    """One ``<maplayer>``: its source, CRS, provider and style (``styles.style_elements``)."""
    element = ET.Element("maplayer", {"type": "vector", "geometry": WKB_GEOMETRY.get(layer.geometry_type, "Polygon"),
                                      "wkbType": layer.geometry_type, **styles.LAYER_ATTRIBUTES})
    _text(element, "id", layer.id)
    _text(element, "datasource", layer.source)
    _text(element, "layername", layer.name)
    ET.SubElement(element, "srs").append(_spatialrefsys(layer.srid))
    _text(element, "provider", layer.provider, {"encoding": "UTF-8"})
    element.extend(styles.style_elements(layer.style))
    return element


def _tree_group(name: str, layers: list[_Layer], checked: bool) -> ET.Element:
    state = "Qt::Checked" if checked else "Qt::Unchecked"
    group = ET.Element("layer-tree-group", {"name": name, "expanded": "1", "checked": state})
    for layer in layers:
        ET.SubElement(group, "layer-tree-layer", {"id": layer.id, "name": layer.name, "source": layer.source,
                                                  "providerKey": layer.provider, "checked": state, "expanded": "0"})
    return group


# ------------------------------------------------------------------------------------------ the project
def district_collections(conn: Connection, district: str) -> list[dict[str, Any]]:
    """The collections of ``district`` (``queries.list_collections`` as the operator reads them) in
    ``LAYER_ORDER``; ``NotFound`` when the district has none."""
    found = {c["kind"]: c for c in list_collections(conn, OPERATOR) if c["district"] == district}
    if not found:
        raise NotFound(f"no district {str(district)[:40]!r}: see `citygrid districts list`")
    return [found[key] for key in LAYER_ORDER if key in found]


def project_xml(conn: Connection, district: str, *, pg: PgConnection, role: str | None = None,
                ogc_url: str | None = None, ogc_authcfg: str | None = None) -> str:
    """The ``.qgs`` document of ``district``'s QGIS project.

    Parameters
    ----------
    district : the district's code.
    pg : how QGIS connects to the database (``pg_from_service`` / ``pg_from_url``; never a password).
    role : the ownership role unit grids are coloured by (``styles.qml``'s ``role``).
    ogc_url : the server's ``/ogc`` URL; given, a second group holds the same layers read through it.
    ogc_authcfg : the id of a QGIS authentication configuration the OGC layers use (cases need an account).

    Returns
    -------
    UTF-8 XML text. Layers are in the deployment CRS (PostGIS) or CRS84 (OGC API); the project's CRS is the
    deployment's. ``NotFound`` for an unknown district, ``InvalidInput`` for a bad role, URL or authcfg id.
    """
    role = styles.check_role(role)
    ogc_url = check_ogc_url(ogc_url) if ogc_url is not None else None
    authcfg = _plain(ogc_authcfg, "ogc_authcfg", "") if ogc_authcfg is not None else None
    collections = district_collections(conn, district)
    styled = [(c, styles.style_for(conn, c["id"], role=role)) for c in collections]
    postgis = [_postgis_layer(c, style, pg) for c, style in styled]
    ogc = [_ogc_layer(c, style, ogc_url, authcfg) for c, style in styled] if ogc_url else []
    name = collections[0].get("district_name") or district
    root = ET.Element("qgis", {"projectname": f"citygrid {name}", "version": styles.QGIS_VERSION})
    _text(root, "title", f"citygrid — {name} ({district})")
    ET.SubElement(root, "projectCrs").append(_spatialrefsys(deployment_srid(conn)))
    # QGIS reads <projectCrs> only when the project says its layers are reprojected on the fly.
    spatial = ET.SubElement(ET.SubElement(root, "properties"), "SpatialRefSys")
    _text(spatial, "ProjectionsEnabled", "1", {"type": "int"})
    tree = ET.SubElement(root, "layer-tree-group")
    tree.append(_tree_group(f"{name} — PostGIS", postgis, checked=True))
    if ogc:
        tree.append(_tree_group(f"{name} — OGC API – Features", ogc, checked=False))
    layers = ET.SubElement(root, "projectlayers")
    layers.extend(_maplayer(layer) for layer in postgis + ogc)
    ET.indent(root)
    return styles.DOCTYPE + "\n" + ET.tostring(root, encoding="unicode") + "\n"

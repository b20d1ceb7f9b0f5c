"""Build the HTML of a map page with Folium, pointed at the vendored assets (no CDN).

Folium makes the document and the Leaflet map; its default asset lists name CDNs (jsDelivr, code.jquery.com,
cdnjs…), so every page replaces them with the files under ``static/vendor`` — only Leaflet and the plugins a
page names — and adds nothing else from outside. The page's own behaviour is in ``static/<page>.js``
(loaded with ``defer``, so it runs after Folium's inline script has created the map), which finds the map in
``window.citygrid.map``. Header and footer HTML come from Flask templates (auto-escaped); page data is a JSON
script element, escaped so stored text cannot close it.

The few inline scripts and styles Folium writes hold no page data, and the map has a fixed name, so they are
the same on every render: ``inline_hashes`` gives their CSP hashes (from a render without page data) for the
page's Content-Security-Policy (``headers.page_policy``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

import folium
from branca.element import Element, MacroElement
from jinja2 import Template

from citygrid.webmap.headers import csp_hash, inline_code

# name -> (scripts, stylesheets) under static/vendor
VENDOR: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "leaflet": (("vendor/leaflet/leaflet.js",), ("vendor/leaflet/leaflet.css",)),
    "vectorgrid": (("vendor/vectorgrid/Leaflet.VectorGrid.bundled.min.js",), ()),
    "markercluster": (("vendor/markercluster/leaflet.markercluster.js",),
                      ("vendor/markercluster/MarkerCluster.css", "vendor/markercluster/MarkerCluster.Default.css")),
    # Leaflet-Geoman free (the editor's drawing, vertex editing and snapping): it hooks every L.Map made after it
    # loads, so it comes before Folium's inline script like the other plugins; its icons are data: URIs.
    "geoman": (("vendor/geoman/leaflet-geoman.js",), ("vendor/geoman/leaflet-geoman.css",)),
}


class _Expose(MacroElement):
    """Puts the Folium map in ``window.citygrid.map`` right after Folium creates it."""

    _template = Template("""{% macro script(this, kwargs) %}
    window.citygrid = Object.assign(window.citygrid || {}, {map: {{ this._parent.get_name() }}, ready: false});
{% endmacro %}""")


def json_script(element_id: str, data: Any) -> str:
    """``<script type="application/json">`` holding ``data``; ``<``, ``>`` and ``&`` are escaped so no stored
    text can end the element."""
    text = json.dumps(data, ensure_ascii=False, default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script id="{element_id}" type="application/json">{text}</script>'


def build_page(*, title: str, static_url: Callable[[str], str], plugins: Sequence[str], scripts: Sequence[str],
               header_html: str, footer_html: str = "", data: dict[str, Any] | None = None,
               centre: tuple[float, float] = (39.92, 116.45), zoom: int = 11) -> str:
    """The page's HTML: a Folium map (EPSG:3857 display, ``centre`` as WGS84 lat, lon) with no tile layer,
    the vendored ``plugins``, the page ``scripts`` (static paths), header/footer HTML and ``data`` as JSON
    (element ``cg-data``)."""
    page_map = _map(centre, zoom)
    page_map.default_js = [(f"vendor-{i}", static_url(path)) for i, path in
                           enumerate(p for name in ("leaflet", *plugins) for p in VENDOR[name][0])]
    page_map.default_css = [(f"vendor-css-{i}", static_url(path)) for i, path in
                            enumerate(p for name in ("leaflet", *plugins) for p in VENDOR[name][1])]
    root = page_map.get_root()
    root.header.add_child(Element(
        f'<title>{_escape(title)}</title><meta charset="utf-8"><link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="{static_url("citygrid.css")}">'
        + "".join(f'<script defer src="{static_url(path)}"></script>' for path in ("common.js", *scripts))))
    root.html.add_child(Element(header_html), index=0)
    root.html.add_child(Element(footer_html + json_script("cg-data", data or {})))
    return root.render()


MAP_ID = "citygrid"  # the map is ``map_citygrid`` (not a random name): its inline code, and their hashes, stay put


def _map(centre: tuple[float, float], zoom: int) -> folium.Map:
    """The Folium map of a page, exposed in ``window.citygrid.map``; everything in its inline code."""
    # maxZoom on the map itself (Folium would put it on a tile layer, and there is none): clustering needs it.
    page_map = folium.Map(location=list(centre), zoom_start=zoom, tiles=None, prefer_canvas=True,
                          control_scale=True, maxZoom=19, minZoom=3)
    page_map._id = MAP_ID
    page_map.add_child(_Expose())
    return page_map


@functools.lru_cache(maxsize=32)
def inline_hashes(centre: tuple[float, float] = (39.92, 116.45), zoom: int = 11) -> dict[str, tuple[str, ...]]:
    """CSP hash sources of the inline scripts and styles of a page built with this ``centre`` and ``zoom``
    (``build_page``'s defaults): ``{"scripts": (...), "styles": (...)}``. Computed from the map alone, never
    from a page carrying stored text."""
    found = inline_code(_map(centre, zoom).get_root().render())
    return {"scripts": tuple(sorted({csp_hash(s) for s in found["script"]})),
            "styles": tuple(sorted({csp_hash(s) for s in found["style"]}))}


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))

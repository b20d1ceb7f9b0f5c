// Shared helpers of the map pages (loaded with defer after Folium has made the map in window.citygrid.map).
// User-visible text is inserted with textContent only, so stored names and descriptions cannot inject markup.
(function () {
  "use strict";
  var cg = window.citygrid = window.citygrid || {};
  var dataElement = document.getElementById("cg-data");
  cg.data = dataElement ? JSON.parse(dataElement.textContent || "{}") : {};

  // Folium sizes the map at 100 % of the page; the stylesheet makes it fill what the header leaves, which
  // changes as the header wraps (fonts, phone rotation): keep Leaflet's idea of the size in step.
  if (cg.map) {
    cg.map.invalidateSize(false);
    if (window.ResizeObserver) {
      new ResizeObserver(function () { cg.map.invalidateSize(false); }).observe(cg.map.getContainer());
    }
  }

  // Leaflet.VectorGrid 1.3.0 calls L.DomEvent.fakeStop, which Leaflet 1.8 removed (Leaflet.VectorGrid#274).
  if (window.L && L.DomEvent && !L.DomEvent.fakeStop) { L.DomEvent.fakeStop = L.DomEvent.stopPropagation; }

  cg.getJSON = function (url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          throw new Error((body && body.message) || (url + " → " + r.status));
        });
      }
      return r.json();
    });
  };

  // A definition list of fields [[key, label], …] of props; values as text.
  cg.fields = function (props, fields) {
    var dl = document.createElement("dl");
    dl.className = "cg-popup";
    fields.forEach(function (f) {
      var dt = document.createElement("dt"); dt.textContent = f[1];
      var value = props[f[0]];
      var dd = document.createElement("dd"); dd.textContent = value == null || value === "" ? "—" : String(value);
      dl.appendChild(dt); dl.appendChild(dd);
    });
    return dl;
  };

  cg.element = function (tag, className, text) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    if (text != null) { el.textContent = String(text); }
    return el;
  };

  cg.palette = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
                "#469990", "#9a6324", "#800000", "#808000", "#000075", "#fabed4", "#dcbeff", "#ffd8b1"];
  // A stable colour for a code (same party, same colour on every page).
  cg.colourFor = function (key) {
    var s = String(key == null ? "" : key), h = 0;
    for (var i = 0; i < s.length; i++) { h = (h * 31 + s.charCodeAt(i)) >>> 0; }
    return cg.palette[h % cg.palette.length];
  };

  // A legend control: update([[colour, label], …], title).
  cg.legend = function (map) {
    var control = L.control({ position: "bottomright" });
    var box = cg.element("div", "cg-legend leaflet-bar");
    control.onAdd = function () { L.DomEvent.disableClickPropagation(box); return box; };
    control.update = function (entries, title) {
      box.textContent = "";
      if (title) { box.appendChild(cg.element("strong", null, title)); }
      entries.slice(0, 12).forEach(function (e) {
        var row = cg.element("div", "cg-legend-row");
        var swatch = cg.element("span", "cg-swatch"); swatch.style.background = e[0];
        row.appendChild(swatch); row.appendChild(cg.element("span", null, e[1]));
        box.appendChild(row);
      });
      if (entries.length > 12) { box.appendChild(cg.element("div", "cg-legend-more", "+ " + (entries.length - 12) + " more")); }
    };
    control.addTo(map);
    return control;
  };

  // The optional configured XYZ basemap (CITYGRID_BASEMAP_URL; none by default, see docs/basemap.md).
  cg.basemap = function (map) {
    if (!cg.data.basemap) { return null; }
    return L.tileLayer(cg.data.basemap.url, { attribution: cg.data.basemap.attribution, maxZoom: 19 }).addTo(map);
  };

  // The district boundary of `code`, drawn and fitted (unless `options.fit` is false: the page has fitted the
  // district's extent already); resolves with the GeoJSON feature.
  cg.boundary = function (map, code, layers, options) {
    return cg.getJSON("/api/v1/districts/" + code + "?simplify=10").then(function (feature) {
      var layer = L.geoJSON(feature, { style: { color: "#1f3b57", weight: 2, fill: false }, interactive: false });
      layer.addTo(map);
      if (layers) { layers.addOverlay(layer, "District boundary"); }
      if (!options || options.fit !== false) { map.fitBounds(layer.getBounds()); }
      return { feature: feature, layer: layer };
    });
  };

  // Grids drawn from tiles carry no per-grid click: a click asks the server which unit grid is under the point
  // and, when ``cardOf()`` gives a function, shows what it makes of the answer in a popup.
  cg.onGridClick = function (map, cardOf) {
    map.on("click", function (e) {
      var show = cardOf();
      if (!show) { return; }
      cg.getJSON("/api/v1/grids/at?lon=" + e.latlng.lng.toFixed(7) + "&lat=" + e.latlng.lat.toFixed(7))
        .then(function (found) { if (found.code) { L.popup().setLatLng(e.latlng).setContent(show(found)).openOn(map); } })
        .catch(function () {});
    });
  };

  // Vector tiles of one of the server's layers (see /tiles/<layer>.json), for drawing only: Leaflet keeps tiles
  // click-through and the overlay canvas lies above them, so pages answer clicks with a map click and a
  // lookup on the server (the grid or component under the point) instead.
  cg.tileLayer = function (name, style, options) {
    var styles = {}; styles[name] = style;
    return L.vectorGrid.protobuf("/tiles/" + name + "/{z}/{x}/{y}.mvt" + ((options && options.query) || ""),
      L.extend({ rendererFactory: L.canvas.tile, vectorTileLayerStyles: styles, interactive: false,
                 maxNativeZoom: 18, getFeatureId: function (f) { return f.properties.code || f.properties.obj_id ||
                                                                         f.properties.case_id; } }, options || {}));
  };
})();

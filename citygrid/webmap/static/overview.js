// Overview map: district boundary, roads and street/community points, all from this server's API.
// User-visible text is inserted with textContent only, so stored names cannot inject markup.
(function () {
  "use strict";
  var map = L.map("map", { preferCanvas: true, zoomControl: true });
  var layers = L.control.layers(null, null, { collapsed: false }).addTo(map);
  var current = [];

  function popup(props, fields) {
    var dl = document.createElement("dl");
    dl.className = "cg-popup";
    fields.forEach(function (f) {
      var dt = document.createElement("dt"); dt.textContent = f[1];
      var dd = document.createElement("dd"); dd.textContent = props[f[0]] == null ? "—" : String(props[f[0]]);
      dl.appendChild(dt); dl.appendChild(dd);
    });
    return dl;
  }

  function getJSON(url) {
    return fetch(url).then(function (r) {
      if (!r.ok) { throw new Error(url + " → " + r.status); }
      return r.json();
    });
  }

  function show(code) {
    current.forEach(function (l) { map.removeLayer(l); layers.removeLayer(l); });
    current = [];
    getJSON("/api/v1/districts/" + code + "?simplify=10").then(function (feature) {
      var boundary = L.geoJSON(feature, { style: { color: "#1f3b57", weight: 2, fill: false } }).addTo(map);
      layers.addOverlay(boundary, "District boundary"); current.push(boundary);
      map.fitBounds(boundary.getBounds());
      document.getElementById("summary").textContent = feature.properties.area_km2 + " km²";
      return getJSON("/api/v1/districts/" + code + "/lines?kind=road&simplify=2");
    }).then(function (roads) {
      if (roads.features.length) {
        var layer = L.geoJSON(roads, { style: { color: "#888", weight: 1.2 } }).addTo(map);
        layer.eachLayer(function (l) {
          l.bindPopup(popup(l.feature.properties, [["name", "名称"], ["class", "class"], ["source_id", "OSM"]]));
        });
        layers.addOverlay(layer, "Roads (OSM)"); current.push(layer);
      }
      return getJSON("/api/v1/districts/" + code + "/areas");
    }).then(function (areas) {
      ["street", "community"].forEach(function (level) {
        var layer = L.geoJSON({ type: "FeatureCollection",
                                features: areas.features.filter(function (f) { return f.properties.level === level; }) }, {
          pointToLayer: function (f, latlng) {
            return L.circleMarker(latlng, { radius: level === "street" ? 6 : 3,
                                            color: level === "street" ? "#b03a2e" : "#2e86c1", weight: 1 });
          },
          onEachFeature: function (f, l) {
            l.bindPopup(popup(f.properties, [["name", "名称"], ["code", "代码"], ["parent_code", "街道"]]));
          }
        }).addTo(map);
        layers.addOverlay(layer, level === "street" ? "Street points (街道)" : "Community points (社区)");
        current.push(layer);
      });
    }).catch(function (err) { document.getElementById("summary").textContent = "error: " + err.message; });
  }

  var select = document.getElementById("district");
  select.addEventListener("change", function () { show(select.value); });
  if (select.value) { show(select.value); } else { map.setView([39.92, 116.45], 10); }
})();

// Overview map: district boundary, roads and street/community points, all from this server's API.
// User-visible text is inserted with textContent only, so stored names cannot inject markup.
(function () {
  "use strict";
  var map = L.map("map", { preferCanvas: true, zoomControl: true });
  window.citygrid = { map: map, ready: false };  // read by the browser tests
  var layers = L.control.layers(null, null, { collapsed: window.innerWidth < 600 }).addTo(map);
  var current = [];
  var unitRefresh = null;

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
      return getJSON("/api/v1/grids?kind=supervision&limit=5000&district=" + code).catch(function () { return null; });
    }).then(function (sup) {
      if (sup && sup.features.length) {
        var palette = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c",
                       "#008080", "#9a6324", "#800000", "#808000", "#000075"];
        var layer = L.geoJSON(sup, {
          style: function (f) {
            var team = parseInt(String(f.properties.team_code).slice(-2), 10) || 0;
            return { color: "#333", weight: 1, fillColor: palette[team % palette.length], fillOpacity: 0.25 };
          },
          onEachFeature: function (f, l) {
            l.bindPopup(popup(f.properties, [["code", "监督网格"], ["team_code", "分队"], ["street_code", "街道"],
                                             ["workload", "workload"], ["area_m2", "m²"]]));
          }
        }).addTo(map);
        layers.addOverlay(layer, "Supervision grids (监督网格) v" + sup.version + ", by team");
        current.push(layer);
        addUnitGrids(code);
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
      window.citygrid.ready = true;
    }).catch(function (err) { document.getElementById("summary").textContent = "error: " + err.message; });
  }

  // The grid card: codes, names, supervision grid and team, owners per role, open cases.
  function gridCard(gridCode) {
    var box = document.createElement("div");
    box.className = "cg-card";
    box.textContent = gridCode + " …";
    getJSON("/api/v1/grids/" + gridCode + "/card").then(function (card) {
      var owners = card.owners || {};
      var rows = {
        code: card.code, street: card.street_name, community: card.community_name || "—",
        supervision: card.supervision_code + " / " + card.team_code,
        management: owners.management ? owners.management.name : "—",
        responsibility: owners.responsibility ? owners.responsibility.name : "—",
        enforcement: owners.enforcement ? owners.enforcement.name : "—",
        cases: card.open_cases + " open / " + card.all_cases, area: card.area_m2 + " m²"
      };
      box.textContent = "";
      box.appendChild(popup(rows, [["code", "单元网格"], ["street", "街道"], ["community", "社区"],
                                   ["supervision", "监督网格 / 分队"], ["management", "管理主体"],
                                   ["responsibility", "责任主体"], ["enforcement", "执法主体"],
                                   ["cases", "案件"], ["area", "面积"]]));
    }).catch(function (err) { box.textContent = "error: " + err.message; });
    return box;
  }

  // Unit grids are many: fetched for the visible box only, from zoom 14.
  function addUnitGrids(code) {
    var layer = L.geoJSON(null, {
      style: { color: "#555", weight: 0.6, fill: true, fillOpacity: 0.02 },
      onEachFeature: function (f, l) {
        // No auto-pan: panning reloads the visible grids, which would close the popup just opened.
        l.bindPopup(function () { return gridCard(f.properties.code); }, { autoPan: false, minWidth: 240, maxWidth: 320 });
      }
    });
    function refresh() {
      layer.clearLayers();
      if (map.getZoom() < 14 || !map.hasLayer(layer)) { return; }
      var b = map.getBounds();
      var bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(5); });
      getJSON("/api/v1/grids?kind=unit&limit=5000&district=" + code + "&bbox=" + bbox.join(","))
        .then(function (page) { layer.addData(page); }).catch(function () {});
    }
    if (unitRefresh) { map.off("moveend", unitRefresh); }  // the previous district's handler
    unitRefresh = refresh;
    map.on("moveend", refresh);
    layer.on("add", refresh);
    layers.addOverlay(layer, "Unit grids (单元网格, zoom ≥ 14)");
    current.push(layer);
    layer.addTo(map);
  }

  var select = document.getElementById("district");
  select.addEventListener("change", function () { show(select.value); });
  if (select.value) { show(select.value); } else { map.setView([39.92, 116.45], 10); }
})();

// Overview: district, roads, streets and communities, unit grids coloured by their owner in a chosen role and
// supervision grids by team (vector tiles), components from zoom 15 (vector tiles, by class), frontage units
// (门前三包) from zoom 16, a search box, and cards for a clicked grid or component. Everything comes from this
// server; text is inserted as text.
(function () {
  "use strict";
  var cg = window.citygrid, map = cg.map;
  var layers = L.control.layers(null, null, { collapsed: true }).addTo(map);
  var legend = cg.legend(map);
  var current = [], unitLayer = null, roadLayer = null, roadTolerance = null, highlight = null;
  // The district's extent: its grid layers ask for no tile outside it (at the overview's zoom most tiles of the
  // view hold nothing of the district, and each empty one was still a request queued behind the others).
  var districtBounds = null;
  var select = document.getElementById("district"), role = document.getElementById("role");
  cg.layers = {};

  cg.basemap(map);

  function forget() {
    current.forEach(function (l) { map.removeLayer(l); layers.removeLayer(l); });
    current = [];
  }
  function keep(layer, label, show) {
    if (show !== false) { layer.addTo(map); }
    layers.addOverlay(layer, label);
    current.push(layer);
    return layer;
  }

  // The grid card: codes, names, supervision grid and team, owners per role, open cases. `url` answers with the
  // card itself (/grids/<code>/card) or with {card} (/grids/at?lon&lat, the grid under a clicked point).
  function gridCard(url, label) {
    var box = cg.element("div", "cg-card", label + " …");
    cg.getJSON(url).then(function (answer) {
      if (answer.code === null) { box.textContent = answer.message; return; }
      var card = answer.card || answer, owners = card.owners || {};
      function owner(r) { return owners[r] ? owners[r].name : "—"; }
      // 门前三包: the unit whose frontage holds a clicked point (its responsibility subject), the grid's units.
      function unitLabel(u) { return u.name + (u.synthetic ? " [SYNTHETIC]" : ""); }
      var here = answer.frontage_unit, units = card.frontage_units || [];
      // 实名制: the named people answering for the grid now (phones only where the reader may see them).
      function personLabel(p) {
        return p.name + " (" + p.role + (p.position ? " " + p.position : "") + ")" + (p.phone ? " " + p.phone : "") +
          (p.synthetic ? " [SYNTHETIC]" : "");
      }
      var people = card.people || [];
      box.textContent = "";
      if (here) {
        box.appendChild(cg.element("div", here.synthetic ? "cg-synthetic" : null,
                                   "Frontage unit here 门前三包: " + unitLabel({ name: here.name, synthetic: here.synthetic })));
      }
      box.appendChild(cg.fields({
        code: card.code, street: card.street_name, community: card.community_name,
        supervision: card.supervision_code + " / " + card.team_code, management: owner("management"),
        responsibility: owner("responsibility"), enforcement: owner("enforcement"), supervisor: owner("supervision"),
        cases: card.open_cases + " open / " + card.all_cases, components: card.components, area: card.area_m2 + " m²",
        frontage: units.length ? units.slice(0, 8).map(unitLabel).join("; ") + (units.length > 8 ? " … (" + units.length + ")" : "") : "",
        people: people.length ? people.slice(0, 12).map(personLabel).join("; ") + (people.length > 12 ? " … (" + people.length + ")" : "") : ""
      }, [["code", "Unit grid 单元网格"], ["street", "Street 街道"], ["community", "Community 社区"], ["supervision", "Supervision grid / team 监督网格 / 分队"],
          ["management", "Management 管理主体"], ["responsibility", "Responsibility 责任主体"], ["enforcement", "Enforcement 执法主体"],
          ["supervisor", "Supervision 监督主体"], ["cases", "Cases 案件"], ["components", "Components 部件"], ["area", "Area 面积"],
          ["frontage", "Frontage units 门前三包"], ["people", "People 实名"]]));
    }).catch(function (err) { box.textContent = err.message; });
    return box;
  }

  // A component's card: attributes of its current version and its history.
  function componentCard(objId) {
    var box = cg.element("div", "cg-card", objId + " …");
    cg.getJSON("/api/v1/components/" + objId).then(function (c) {
      var v = c.current || c.versions[0];
      box.textContent = "";
      if (v.synthetic) { box.appendChild(cg.element("div", "cg-synthetic", "SYNTHETIC census (demo)")); }
      box.appendChild(cg.fields(v, [["obj_id", "ObjID 标识码"], ["class_name", "Component 部件"], ["class_code", "Class code 小类"],
        ["obj_name", "Name 名称"], ["dept_name1", "Department 主管部门"], ["dept_name2", "Owner 权属单位"], ["dept_name3", "Maintainer 养护单位"],
        ["obj_state", "Status 状态"], ["unit_grid_code", "Unit grid 单元网格"], ["cases", "Cases 案件"]]));
      box.appendChild(cg.element("strong", null, "History (" + c.versions.length + " version" +
                                 (c.versions.length > 1 ? "s" : "") + ")"));
      var list = cg.element("ul");
      c.versions.forEach(function (h) {
        list.appendChild(cg.element("li", null, String(h.valid_from).slice(0, 16) + " → " +
          (h.valid_to ? String(h.valid_to).slice(0, 16) : "now") + " · " + (h.obj_state || "") + " " +
          h.lon.toFixed(6) + ", " + h.lat.toFixed(6)));
      });
      box.appendChild(list);
    }).catch(function (err) { box.textContent = "error: " + err.message; });
    return box;
  }

  function ownerKey(props) {
    var r = role.value;
    if (r === "team") { return props.supervision ? String(props.supervision) : ""; }
    return props[r === "supervision" ? "supervision_owner" : r] || "";
  }

  // The unit grids, coloured by the owner in the chosen role; resolves once they are drawn (or after 10 s at the
  // latest), and only then asks for the owners' legend.
  function addUnitGrids(code) {
    var settle, drawn = new Promise(function (resolve) { settle = resolve; });
    if (unitLayer) { map.removeLayer(unitLayer); layers.removeLayer(unitLayer); current.splice(current.indexOf(unitLayer), 1); }
    var teamOf = {};
    (cg.data.per_district[code].teams || []).forEach(function (t) { teamOf[t.code] = t; });
    function style(p) {
      var key = ownerKey(p);
      return { weight: 0.5, color: "#444", fill: true, fillOpacity: 0.35,
               fillColor: key ? cg.colourFor(key) : "#ccc" };
    }
    if (new URLSearchParams(window.location.search).get("unit_grids") === "geojson") {
      // The whole layer as GeoJSON documents instead of tiles: the anchor of the page_overview benchmark.
      unitLayer = L.geoJSON(null, { style: function (f) { return style(f.properties); }, interactive: false });
      Promise.all([0, 5000].map(function (offset) {
        return cg.getJSON("/api/v1/grids?kind=unit&limit=5000&offset=" + offset + "&district=" + code);
      })).then(function (pages) {
        pages.forEach(function (page) { unitLayer.addData(page); });
        requestAnimationFrame(settle);
      }, settle);
    } else {
      unitLayer = cg.tileLayer("unit_grids", style, { minZoom: 10, bounds: districtBounds });
      unitLayer.once("load", settle);
      // A tile that never answers must not keep the rest of the page away for good.
      setTimeout(settle, 10000);
    }
    keep(unitLayer, "Unit grids (单元网格), coloured by owner");
    cg.layers.unitGrids = unitLayer;
    var r = role.value === "team" ? null : role.value;
    drawn.then(function () { legendFor(code, r); });
    return drawn;
  }

  function legendFor(code, r) {
    if (r) {
      cg.getJSON("/api/v1/grids/owners?district=" + code + "&role=" + r).then(function (o) {
        legend.update(o.owners.map(function (p) {
          return [cg.colourFor(p.code), p.name + " (" + p.grids + ")"];
        }), r + " owners");
      }).catch(function () { legend.update([], ""); });
    } else {
      legend.update([], "coloured by supervision grid");
    }
  }

  function refreshRoads(code) {
    var z = map.getZoom(), tolerance = z < 13 ? 20 : (z < 15 ? 5 : 1);  // simplified per zoom (metres)
    if (tolerance === roadTolerance && roadLayer) { return; }
    roadTolerance = tolerance;
    cg.getJSON("/api/v1/districts/" + code + "/lines?kind=road&simplify=" + tolerance).then(function (roads) {
      if (roadLayer) { map.removeLayer(roadLayer); layers.removeLayer(roadLayer); current.splice(current.indexOf(roadLayer), 1); }
      roadLayer = null;
      if (!roads.features.length) { return; }
      roadLayer = keep(L.geoJSON(roads, {
        style: { color: "#888", weight: 1.2 }, bubblingMouseEvents: false,
        onEachFeature: function (f, l) {
          l.bindPopup(function () { return cg.fields(f.properties, [["name", "Name 名称"], ["class", "class"], ["source_id", "OSM"]]); });
        }
      }), "Roads (OSM)");
      roadLayer.bringToBack();
    }).catch(function () {});
  }

  // The district's secondary layers (roads, supervision grids, components, frontage units, street and community
  // points) and the owners' legend: asked for once the unit grids are drawn, so on the overview's first load the
  // unit-grid tiles do not queue behind them for the browser's six connections and the server's cores (#23:
  // page_overview). Resolves when the street and community points are drawn.
  function addSecondary(code) {
    refreshRoads(code);
    var teamColour = function (p) { return cg.colourFor(p.team); };
    cg.layers.supervisionGrids = keep(cg.tileLayer("supervision_grids", function (p) {
      return { weight: 1.6, color: teamColour(p), fill: false };
    }, { minZoom: 8, bounds: districtBounds, zIndex: 2 }), "Supervision grids (监督网格), outlined by team");
    var components = cg.tileLayer("components", function (p) {
      return { radius: 4, weight: 1, color: "#222", fill: true, fillOpacity: 0.9, fillColor: cg.colourFor("major" + p.major) };
    }, { minZoom: 15 });
    cg.layers.components = keep(components, "Components (部件, zoom ≥ 15)");
    // Frontage units (门前三包) from zoom 16, off until chosen; seeded demo units are drawn dashed.
    cg.layers.frontage = keep(cg.tileLayer("frontage_units", function (p) {
      return { weight: 1, color: p.synthetic ? "#8e44ad" : "#d35400", fill: true, fillOpacity: 0.35,
               dashArray: p.synthetic ? "4 3" : null };
    }, { minZoom: 16, attribution: "Frontage units 门前三包 (demo units: SYNTHETIC)" }),
      "Frontage units (门前三包, zoom ≥ 16)", false);
    return cg.getJSON("/api/v1/districts/" + code + "/areas").then(function (areas) {
      ["street", "community"].forEach(function (level) {
        keep(L.geoJSON({ type: "FeatureCollection",
                         features: areas.features.filter(function (f) { return f.properties.level === level; }) }, {
          pointToLayer: function (f, latlng) {
            return L.circleMarker(latlng, { radius: level === "street" ? 6 : 3, bubblingMouseEvents: false,
                                            color: level === "street" ? "#b03a2e" : "#2e86c1", weight: 1 });
          },
          onEachFeature: function (f, l) {
            l.bindPopup(function () { return cg.fields(f.properties, [["name", "Name 名称"], ["code", "Code 代码"], ["parent_code", "Street 街道"]]); });
          }
        }), level === "street" ? "Street points (街道)" : "Community points (社区)");
      });
    });
  }

  // A district: its extent comes with the page (cg.data.per_district[code].bbox, lon/lat), so the unit-grid
  // tiles are asked for at once, while the boundary itself is still on its way. `cg.ready`: the boundary and the
  // unit grids are drawn; `cg.complete`: every layer is there too (false until then).
  function show(code) {
    forget();
    unitLayer = null; roadLayer = null; roadTolerance = null;
    cg.ready = false; cg.complete = false;
    var box = (cg.data.per_district[code] || {}).bbox, drawn = null;
    function start(bounds) {
      districtBounds = bounds.pad(0.01);
      drawn = addUnitGrids(code);
    }
    if (box) {
      var bounds = L.latLngBounds([box[1], box[0]], [box[3], box[2]]);
      map.fitBounds(bounds);
      start(bounds);
    }
    var summary = document.getElementById("summary");
    cg.boundary(map, code, null, { fit: !box }).then(function (b) {
      current.push(b.layer); layers.addOverlay(b.layer, "District boundary");
      summary.textContent = b.feature.properties.area_km2 + " km²";
      if (!drawn) { start(b.layer.getBounds()); }
      return drawn;
    }).then(function () {
      cg.ready = true;
      return addSecondary(code);
    }).then(function () {
      cg.complete = true;
    }).catch(function (err) { summary.textContent = "error: " + err.message; cg.ready = true; cg.complete = true; });
  }

  // Search: a grid code, case ID, component ID or an address; the first result is shown.
  document.getElementById("search-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = document.getElementById("search").value.trim(), summary = document.getElementById("summary");
    if (!q) { return; }
    cg.getJSON("/api/v1/search?q=" + encodeURIComponent(q) + "&district=" + select.value).then(function (found) {
      if (highlight) { map.removeLayer(highlight); highlight = null; }
      if (!found.results.length) { summary.textContent = "nothing found for " + q; return; }
      var hit = found.results[0];
      summary.textContent = hit.kind + ": " + hit.label;
      if (hit.geometry) {
        highlight = L.geoJSON(hit.geometry, { style: { color: "#ff0", weight: 4, fill: false } }).addTo(map);
        map.fitBounds(highlight.getBounds(), { maxZoom: 17 });
      } else {
        map.setView([hit.lat, hit.lon], Math.max(map.getZoom(), 16));
        highlight = L.circleMarker([hit.lat, hit.lon], { radius: 12, color: "#ff0", weight: 4, fill: false }).addTo(map);
      }
      var content = hit.kind === "unit_grid" ? gridCard("/api/v1/grids/" + hit.id + "/card", hit.id)
        : hit.kind === "component" ? componentCard(hit.id)
        : cg.fields(hit, [["kind", "kind"], ["label", "found"], ["confidence", "confidence"]]);
      L.popup({ autoPan: false, minWidth: 220 }).setLatLng([hit.lat, hit.lon]).setContent(content).openOn(map);
    }).catch(function (err) { summary.textContent = "error: " + err.message; });
  });

  // A click that no drawn feature took (points, roads): from zoom 15 the nearest component within 8 pixels,
  // else the unit grid under the point (found by the server's geocoder, the boundary rule of the cases).
  map.on("click", function (e) {
    if (!unitLayer) { return; }
    var at = "lon=" + e.latlng.lng.toFixed(7) + "&lat=" + e.latlng.lat.toFixed(7);
    var popup = L.popup({ autoPan: false, minWidth: 240, maxWidth: 320 }).setLatLng(e.latlng);
    function grid() {
      popup.setContent(gridCard("/api/v1/grids/at?" + at, e.latlng.lat.toFixed(5) + ", " + e.latlng.lng.toFixed(5)))
        .openOn(map);
    }
    if (map.getZoom() < 15 || !map.hasLayer(cg.layers.components)) { grid(); return; }
    var metresPerPixel = 40075016.7 * Math.cos(e.latlng.lat * Math.PI / 180) / Math.pow(2, map.getZoom() + 8);
    cg.getJSON("/api/v1/components/near?" + at + "&within_m=" + Math.max(1, 8 * metresPerPixel).toFixed(1))
      .then(function (near) { if (near.component) { popup.setContent(componentCard(near.component.obj_id)).openOn(map); } else { grid(); } })
      .catch(grid);
  });

  map.on("zoomend", function () { if (select.value) { refreshRoads(select.value); } });
  role.addEventListener("change", function () { addUnitGrids(select.value); });
  select.addEventListener("change", function () { show(select.value); });
  if (select.value) { show(select.value); } else { map.setView([39.92, 116.45], 10); cg.ready = true; }
})();

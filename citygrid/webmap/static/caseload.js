// Caseload: cases per unit grid, supervision grid, community or street for a month (slider) and class, as a
// choropleth (unit and supervision grids drawn from vector tiles and joined by code; communities and streets
// as GeoJSON), with the kernel-density raster as an overlay whose opacity is set by a slider, and the recurrence
// layers (chronic components, recurring places) as overlays with their own legend.
(function () {
  "use strict";
  var cg = window.citygrid, map = cg.map;
  var layers = L.control.layers(null, null, { collapsed: true }).addTo(map);
  var legend = cg.legend(map);
  var ui = {};
  ["district", "level", "class", "measure", "month", "opacity", "summary"].forEach(function (id) {
    ui[id] = document.getElementById(id);
  });
  var monthLabel = document.getElementById("month-label");
  var boundary = null, choropleth = null, density = null, months = [], request = 0, clickCard = null;
  var RAMP = ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026"];
  cg.layers = {};
  cg.basemap(map);

  function period() {
    var i = parseInt(ui.month.value, 10);
    if (!i || !months[i - 1]) { return { label: "all", query: "" }; }
    // Periods are inclusive local days of the deployment's zone: the month's first to its last day.
    var m = months[i - 1], y = parseInt(m.slice(0, 4), 10), n = parseInt(m.slice(5, 7), 10);
    var last = new Date(Date.UTC(y, n, 0)).getUTCDate();
    return { label: m, query: "&start=" + m + "-01&end=" + m + "-" + last };
  }

  function filters() {
    var cls = ui.class.value ? ui.class.value.split("/") : null;
    return period().query + (cls ? "&kind=" + cls[0] + "&class_code=" + cls[1] : "");
  }

  // Quantile breaks of the non-zero values (at most RAMP.length classes).
  function breaks(values) {
    var v = values.filter(function (x) { return x > 0; }).sort(function (a, b) { return a - b; });
    if (!v.length) { return []; }
    var out = [];
    for (var k = 1; k < RAMP.length; k++) {
      var b = v[Math.min(v.length - 1, Math.floor(k * v.length / RAMP.length))];
      if (b > v[0] && (!out.length || b > out[out.length - 1])) { out.push(b); }
    }
    out.smallest = v[0];
    return out;
  }
  function colour(value, cuts) {
    if (!(value > 0)) { return null; }
    var i = 0;
    while (i < cuts.length && value >= cuts[i]) { i++; }
    return RAMP[Math.min(i + 1, RAMP.length - 1)];
  }
  function legendFor(cuts, measure) {
    var entries = [["#fff", "0"]], bounds = cuts.smallest === undefined ? [] : [0].concat(cuts);
    bounds.forEach(function (lower, i) {
      var upper = cuts[i];
      entries.push([RAMP[Math.min(i + 1, RAMP.length - 1)],
                    upper === undefined ? "≥ " + (i ? lower : cuts.smallest) : (i ? lower : cuts.smallest) + " – < " + upper]);
    });
    legend.update(entries, measure + " (" + period().label + ")");
  }

  function draw() {
    var code = ui.district.value, level = ui.level.value, measure = ui.measure.value, mine = ++request;
    monthLabel.textContent = period().label;
    cg.ready = false;
    var withGeometry = level === "community" || level === "street";
    cg.getJSON("/api/v1/caseload?district=" + code + "&level=" + level + filters() +
               (withGeometry ? "&format=geojson" : "")).then(function (answer) {
      if (mine !== request) { return; }
      var rows = withGeometry ? answer.features.map(function (f) { return f.properties; }) : answer.rows;
      var byCode = {}, total = 0;
      rows.forEach(function (r) { byCode[r.code] = r; total += r.cases; });
      var cuts = breaks(rows.map(function (r) { return r[measure]; }));
      if (choropleth) { map.removeLayer(choropleth); layers.removeLayer(choropleth); }
      function style(p) {
        var row = byCode[p.code], fill = row ? colour(row[measure], cuts) : null;
        return { weight: 0.4, color: "#666", fill: true, fillColor: fill || "#fff", fillOpacity: fill ? 0.75 : 0.2 };
      }
      function card(codeValue) {
        var row = byCode[codeValue] || { code: codeValue };
        return cg.fields(row, [["code", "code"], ["name", "name"], ["cases", "cases"], ["cases_per_km2", "per km²"],
                               ["components", "components"], ["cases_per_100_components", "per 100 components"]]);
      }
      if (withGeometry) {
        choropleth = L.geoJSON(answer, {
          style: function (f) { return style(f.properties); },
          onEachFeature: function (f, l) { l.bindPopup(function () { return card(f.properties.code); }); }
        });
      } else {
        choropleth = cg.tileLayer(level === "unit" ? "unit_grids" : "supervision_grids", style, { minZoom: 8 });
      }
      clickCard = withGeometry ? null : function (found) {
        return card(level === "unit" ? found.code : found.card.supervision_code);
      };
      choropleth.once("load", function () { cg.ready = true; });
      if (withGeometry) { setTimeout(function () { cg.ready = true; }, 0); }
      choropleth.addTo(map);
      layers.addOverlay(choropleth, "Cases per " + level);
      cg.layers.choropleth = choropleth;
      legendFor(cuts, measure);
      var synthetic = cg.data.per_district[code].synthetic_history;
      ui.summary.textContent = total + " cases" + (synthetic ? " — the demo history is SYNTHETIC" : "");
      ui.summary.className = synthetic ? "cg-synthetic" : "";
      return cg.getJSON("/api/v1/density.json?district=" + code + filters());
    }).then(function (info) {
      if (!info || mine !== request) { return; }
      if (density) { map.removeLayer(density); layers.removeLayer(density); }
      density = L.imageOverlay("/api/v1/density.png?district=" + code + filters(), info.bounds_lonlat,
                               { opacity: ui.opacity.value / 100, interactive: false });
      density.addTo(map);
      layers.addOverlay(density, "Case density (" + info.bandwidth_m + " m " + info.kernel + " kernel)");
      cg.layers.density = density;
    }).catch(function (err) { ui.summary.textContent = "error: " + err.message; cg.ready = true; })
      .then(function () { if (mine === request) { recurrence(); } });  // after the heavy caseload and density
  }

  // Recurrence (#24): the chronic components (at least 3 cases at one component) and the recurring places
  // (space-time clusters of one class, /api/v1/recurrence/places) of the period shown — the whole history
  // when no month is chosen — as two overlays the layer control turns on and off, explained in their legend.
  var chronic = null, placeLayer = null, recurrenceRequest = 0, shown = { chronic: true, places: true };
  var recurrenceLegend = L.control({ position: "bottomleft" });
  var recurrenceBox = cg.element("div", "cg-recurrence-legend leaflet-bar");
  recurrenceLegend.onAdd = function () { L.DomEvent.disableClickPropagation(recurrenceBox); return recurrenceBox; };
  recurrenceLegend.addTo(map);
  var CHRONIC = "#6a1b9a", PLACE = "#e65100";

  function recurrencePeriod() {
    var p = period();
    if (p.label !== "all" || !months.length) { return p.query; }
    var m = months[months.length - 1], y = parseInt(m.slice(0, 4), 10), n = parseInt(m.slice(5, 7), 10);
    return "&start=" + months[0] + "-01&end=" + m + "-" + new Date(Date.UTC(y, n, 0)).getUTCDate();
  }

  function legendRow(colour, round, text) {
    var row = cg.element("div", "cg-legend-row");
    var swatch = cg.element("span", "cg-swatch" + (round ? " cg-swatch-round" : ""));
    swatch.style.background = colour;
    row.appendChild(swatch); row.appendChild(cg.element("span", null, text));
    return row;
  }

  function updateRecurrenceLegend(components, places, synthetic) {
    recurrenceBox.textContent = "";
    recurrenceBox.hidden = !shown.chronic && !shown.places;
    recurrenceBox.appendChild(cg.element("strong", null, "Recurrence 反复发生 (" + period().label + ")"));
    if (shown.chronic) {
      recurrenceBox.appendChild(legendRow(CHRONIC, true, components.features.length + " chronic components: 3 or more " +
        "cases at one component (the bigger the circle, the more cases)"));
    }
    if (shown.places) {
      recurrenceBox.appendChild(legendRow(PLACE, false, places.features.length + " recurring places: 3 or more cases " +
        "of one class within " + places.eps_m + " m and " + places.window_days + " days of each other"));
    }
    if (synthetic) { recurrenceBox.appendChild(cg.element("div", "cg-synthetic", "SYNTHETIC demo history")); }
  }

  function recurrence() {
    var code = ui.district.value, mine = ++recurrenceRequest;
    var query = "?district=" + code + recurrencePeriod() + (ui.class.value ? "&kind=" + ui.class.value.split("/")[0] +
                "&class_code=" + ui.class.value.split("/")[1] : "") + "&limit=500&format=geojson";
    cg.recurrenceReady = false;
    var components = null;  // one after the other: both are heavy requests, of which the server runs few at once
    cg.getJSON("/api/v1/recurrence/components" + query).then(function (answer) {
      components = answer;
      return cg.getJSON("/api/v1/recurrence/places" + query);
    }).then(function (places) {
      if (mine !== recurrenceRequest) { return; }
      [chronic, placeLayer].forEach(function (l) { if (l) { map.removeLayer(l); layers.removeLayer(l); } });
      chronic = L.geoJSON(components, {
        pointToLayer: function (f, latlng) {
          return L.circleMarker(latlng, { radius: Math.min(4 + 1.5 * f.properties.cases, 18), color: "#fff",
                                          weight: 1, fillColor: CHRONIC, fillOpacity: 0.85 });
        },
        onEachFeature: function (f, l) {
          l.bindPopup(function () {
            return cg.fields(f.properties, [["obj_id", "component 部件"], ["obj_name", "name"], ["class_name", "class"],
              ["cases", "cases"], ["median_interval_days", "median days between"], ["last_reported", "latest"],
              ["dept_name", "owner 权属单位"], ["unit_grid_code", "unit grid"]]);
          });
        }
      });
      placeLayer = L.geoJSON(places, {
        style: function () { return { color: PLACE, weight: 2, fillColor: PLACE, fillOpacity: 0.25 }; },
        onEachFeature: function (f, l) {
          l.bindPopup(function () {
            return cg.fields(f.properties, [["cluster_id", "place"], ["class_name", "class"], ["cases", "cases"],
              ["first_reported", "first"], ["last_reported", "latest"], ["span_days", "days"],
              ["unit_grids", "unit grids"]]);
          });
        }
      });
      layers.addOverlay(chronic, "Chronic components 部件反复");
      layers.addOverlay(placeLayer, "Recurring places 地点反复");
      if (shown.places) { placeLayer.addTo(map); }
      if (shown.chronic) { chronic.addTo(map); }
      cg.layers.chronic = chronic; cg.layers.places = placeLayer;
      cg.recurrence = { components: components, places: places };
      updateRecurrenceLegend(components, places, components.synthetic || places.synthetic);
      cg.recurrenceReady = true;
    }).catch(function (err) {
      recurrenceBox.textContent = "recurrence: " + err.message;
      cg.recurrenceReady = true;
    });
  }

  map.on("overlayadd overlayremove", function (e) {
    var on = e.type === "overlayadd";
    if (e.layer === chronic) { shown.chronic = on; } else if (e.layer === placeLayer) { shown.places = on; } else { return; }
    if (cg.recurrence) {
      updateRecurrenceLegend(cg.recurrence.components, cg.recurrence.places,
                             cg.recurrence.components.synthetic || cg.recurrence.places.synthetic);
    }
  });

  function district() {
    var code = ui.district.value;
    months = cg.data.per_district[code].months || [];
    ui.month.max = String(months.length);
    ui.month.value = "0";
    monthLabel.textContent = "all";
    if (boundary) { map.removeLayer(boundary); }
    cg.boundary(map, code).then(function (b) { boundary = b.layer; draw(); });
  }

  cg.onGridClick(map, function () { return clickCard; });

  ui.month.addEventListener("input", function () { monthLabel.textContent = period().label; });
  ui.month.addEventListener("change", draw);
  ["level", "class", "measure"].forEach(function (id) { ui[id].addEventListener("change", draw); });
  ui.opacity.addEventListener("input", function () { if (density) { density.setOpacity(ui.opacity.value / 100); } });
  ui.district.addEventListener("change", district);
  district();
})();

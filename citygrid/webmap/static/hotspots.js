// Hot spots: Gi* classes per unit grid, supervision grid, community or street for a month (slider) and class,
// or emerging hot-spot categories over months or weeks, with a slider stepping through each bin's Gi* classes.
// Unit and supervision grids are drawn from vector tiles and joined by code; communities and streets as GeoJSON.
// Every colour is explained in the legend in plain words.
(function () {
  "use strict";
  var cg = window.citygrid, map = cg.map;
  var layers = L.control.layers(null, null, { collapsed: true }).addTo(map);
  var legend = cg.legend(map);
  var ui = {};
  ["district", "mode", "level", "class", "bin", "slider", "summary"].forEach(function (id) {
    ui[id] = document.getElementById(id);
  });
  var sliderLabel = document.getElementById("slider-label"), sliderName = document.getElementById("slider-name");
  var boundary = null, drawn = null, answer = null, rows = {}, request = 0, clickCard = null;
  cg.layers = {};
  cg.basemap(map);

  // ArcGIS's Gi_Bin classes, in words a non-statistician reads.
  var GI = {
    "3": ["#b2182b", "hot spot: more cases than its surroundings, 99 % sure"],
    "2": ["#ef8a62", "hot spot: more cases than its surroundings, 95 % sure"],
    "1": ["#fddbc7", "hot spot: more cases than its surroundings, 90 % sure"],
    "0": ["#f7f7f7", "no clear difference from its surroundings"],
    "-1": ["#d1e5f0", "cold spot: fewer cases than its surroundings, 90 % sure"],
    "-2": ["#67a9cf", "cold spot: fewer cases than its surroundings, 95 % sure"],
    "-3": ["#2166ac", "cold spot: fewer cases than its surroundings, 99 % sure"]
  };
  // The 17 emerging categories (codes as the API answers them).
  function emergingWords(unit) {
    return {
      "1": ["#67001f", "new: a hot spot in the last " + unit + " for the first time"],
      "2": ["#b2182b", "consecutive: a hot spot for the last few " + unit + "s in a row, never before"],
      "3": ["#d6604d", "intensifying: nearly always a hot spot, and getting hotter"],
      "4": ["#f4a582", "persistent: nearly always a hot spot, steadily"],
      "5": ["#fddbc7", "diminishing: nearly always a hot spot, but cooling down"],
      "6": ["#e7298a", "sporadic: a hot spot now, and on and off before"],
      "7": ["#c51b7d", "oscillating: a hot spot now, a cold spot earlier"],
      "8": ["#fee0b6", "historical: was nearly always a hot spot, not any more"],
      "-1": ["#053061", "new cold spot: few cases in the last " + unit + " for the first time"],
      "-2": ["#2166ac", "consecutive cold spot: few cases for the last few " + unit + "s in a row"],
      "-3": ["#4393c3", "intensifying cold spot: nearly always few cases, ever fewer"],
      "-4": ["#92c5de", "persistent cold spot: nearly always few cases"],
      "-5": ["#d1e5f0", "diminishing cold spot: nearly always few cases, but rising"],
      "-6": ["#1b7837", "sporadic cold spot: few cases now, and on and off before"],
      "-7": ["#5aae61", "oscillating cold spot: few cases now, a hot spot earlier"],
      "-8": ["#d9f0d3", "historical cold spot: had few cases, not any more"],
      "0": ["#f7f7f7", "no pattern over time"]
    };
  }

  function monthPeriod() {
    var months = cg.data.per_district[ui.district.value].months || [];
    var i = parseInt(ui.slider.value, 10);
    if (!i || !months[i - 1]) { return { label: "all", query: "" }; }
    var m = months[i - 1], y = parseInt(m.slice(0, 4), 10), n = parseInt(m.slice(5, 7), 10);
    var last = new Date(Date.UTC(y, n, 0)).getUTCDate();  // periods are inclusive local days
    return { label: m, query: "&start=" + m + "-01&end=" + m + "-" + last };
  }

  function classFilter() {
    var cls = ui.class.value ? ui.class.value.split("/") : null;
    return cls ? "&kind=" + cls[0] + "&class_code=" + cls[1] : "";
  }

  // What each area's colour means now: its Gi* class, its emerging category, or (slider on a bin) that bin's class.
  function current() {
    var emerging = ui.mode.value === "emerging", i = parseInt(ui.slider.value, 10);
    if (!emerging) { return { words: GI, value: function (r) { return r.gi_bin; }, title: "Gi* " + monthPeriod().label }; }
    if (i && answer && answer.bins[i - 1]) {
      return { words: GI, value: function (r) { return r.gi_bin[i - 1]; }, title: "Gi* in the " + ui.bin.value +
               " from " + answer.bins[i - 1] };
    }
    return { words: emergingWords(ui.bin.value), value: function (r) { return r.category; },
             title: "trend over " + (answer ? answer.bins.length : 0) + " " + ui.bin.value + "s" };
  }

  function showLegend(view) {
    var seen = {};
    Object.keys(rows).forEach(function (code) { seen[String(view.value(rows[code]))] = true; });
    var entries = Object.keys(view.words).filter(function (k) { return seen[k] || k === "0"; })
      .map(function (k) { return view.words[k]; });
    legend.update(entries, view.title);
  }

  function card(code) {
    var row = rows[code] || { code: code };
    var view = current(), word = view.words[String(view.value(row))];
    var shown = { code: row.code, name: row.name, cases: row.cases, meaning: word ? word[1] : "—",
                  z: Array.isArray(row.z) ? null : row.z, p: row.p, trend: row.trend_z };
    return cg.fields(shown, [["code", "code"], ["name", "name"], ["cases", "cases"], ["meaning", "meaning"],
                             ["z", "Gi* z"], ["p", "p"], ["trend", "trend (Mann-Kendall z)"]]);
  }

  function paint() {
    var level = ui.level.value, view = current(), withGeometry = level === "community" || level === "street";
    if (drawn) { map.removeLayer(drawn); layers.removeLayer(drawn); }
    function style(p) {
      var row = rows[p.code], word = row ? view.words[String(view.value(row))] : null;
      return { weight: 0.4, color: "#666", fill: true, fillColor: word ? word[0] : "#fff", fillOpacity: row ? 0.8 : 0.1 };
    }
    if (withGeometry) {
      drawn = L.geoJSON(answer, {
        style: function (f) { return style(f.properties); },
        onEachFeature: function (f, l) { l.bindPopup(function () { return card(f.properties.code); }); }
      });
      clickCard = null;
      setTimeout(function () { cg.ready = true; }, 0);
    } else {
      drawn = cg.tileLayer(level === "unit" ? "unit_grids" : "supervision_grids", style, { minZoom: 8 });
      drawn.once("load", function () { cg.ready = true; });
      clickCard = function (found) { return card(level === "unit" ? found.code : found.card.supervision_code); };
    }
    drawn.addTo(map);
    layers.addOverlay(drawn, ui.mode.value === "emerging" ? "Emerging hot spots" : "Hot spots (Gi*)");
    cg.layers.hotspots = drawn;
    showLegend(view);
  }

  function summarise() {
    var text = answer.total_cases + " cases", counts = answer.classes || answer.categories || {};
    var hot = 0, cold = 0;
    Object.keys(counts).forEach(function (k) {
      if (k.indexOf("Hot Spot") >= 0) { hot += counts[k]; } else if (k.indexOf("Cold Spot") >= 0) { cold += counts[k]; }
    });
    text += " — " + hot + " hot spots, " + cold + " cold spots";
    if (answer.synthetic) { text += " — SYNTHETIC data (the demo history is made up)"; }
    ui.summary.textContent = text;
    ui.summary.className = answer.synthetic ? "cg-synthetic" : "";
  }

  function setSlider() {
    var emerging = ui.mode.value === "emerging";
    var count = emerging ? (answer ? answer.bins.length : 0) : (cg.data.per_district[ui.district.value].months || []).length;
    ui.slider.max = String(count);
    sliderName.textContent = emerging ? ui.bin.value : "month";
    ui.bin.disabled = !emerging;
  }

  function labelSlider() {
    var i = parseInt(ui.slider.value, 10);
    if (ui.mode.value === "emerging") {
      sliderLabel.textContent = i && answer && answer.bins[i - 1] ? answer.bins[i - 1] : "trend";
    } else {
      sliderLabel.textContent = monthPeriod().label;
    }
  }

  function load() {
    var code = ui.district.value, level = ui.level.value, emerging = ui.mode.value === "emerging", mine = ++request;
    var withGeometry = level === "community" || level === "street";
    cg.ready = false;
    ui.summary.textContent = "computing…";
    ui.summary.className = "";
    var url = emerging ? "/api/v1/hotspots/emerging?district=" + code + "&level=" + level + "&bin=" + ui.bin.value
                       : "/api/v1/hotspots?district=" + code + "&level=" + level + monthPeriod().query;
    cg.getJSON(url + classFilter() + (withGeometry ? "&format=geojson" : "")).then(function (body) {
      if (mine !== request) { return; }
      answer = body;
      rows = {};
      (withGeometry ? body.features.map(function (f) { return f.properties; }) : body.rows)
        .forEach(function (r) { rows[r.code] = r; });
      if (emerging) { setSlider(); }
      labelSlider();
      summarise();
      paint();
    }).catch(function (err) {
      if (mine !== request) { return; }
      ui.summary.textContent = "error: " + err.message;
      cg.ready = true;
    });
  }

  function district() {
    var code = ui.district.value;
    answer = null;
    ui.slider.value = "0";
    setSlider();
    labelSlider();
    if (boundary) { map.removeLayer(boundary); }
    cg.boundary(map, code).then(function (b) { boundary = b.layer; load(); });
  }

  cg.onGridClick(map, function () { return clickCard; });

  ui.slider.addEventListener("input", labelSlider);
  ui.slider.addEventListener("change", function () {
    if (ui.mode.value === "emerging") { cg.ready = false; paint(); } else { load(); }
  });
  ui.mode.addEventListener("change", function () { ui.slider.value = "0"; answer = null; setSlider(); labelSlider(); load(); });
  ui.bin.addEventListener("change", function () { ui.slider.value = "0"; load(); });
  ["level", "class"].forEach(function (id) { ui[id].addEventListener("change", load); });
  ui.district.addEventListener("change", district);
  district();
})();

// Cases: clustered markers of the filtered cases (open by default), popups with class, status, deadline,
// owners and grid; a supervisor's view scoped to one team's supervision grids (?team=…, kept in the URL);
// "Locate me" shows where the phone is and the unit grid it stands in. Text is inserted as text.
(function () {
  "use strict";
  var cg = window.citygrid, map = cg.map;
  var layers = L.control.layers(null, null, { collapsed: true }).addTo(map);
  var ui = {};
  ["district", "status", "class", "team", "locate", "summary"].forEach(function (id) { ui[id] = document.getElementById(id); });
  var clusters = null, scope = null, here = null, request = 0;
  var STATUS_COLOUR = { reported: "#e6194b", verified: "#f58231", accepted: "#ffe119", dispatched: "#4363d8",
                        fed_back: "#42d4f4", checked: "#3cb44b", closed: "#808080", evaluated: "#a9a9a9",
                        rejected: "#000000" };
  cg.layers = {};
  cg.basemap(map);
  var params = new URLSearchParams(window.location.search);

  function caseCard(props) {
    var box = cg.element("div", "cg-card");
    if (props.synthetic) { box.appendChild(cg.element("div", "cg-synthetic", "SYNTHETIC demo case")); }
    box.appendChild(cg.fields(props, [["case_id", "Case 案件"], ["class_name", "Class 类别"], ["class_code", "Class code 小类"],
      ["status", "Status 状态"], ["deadline_at", "Deadline 处置时限"], ["reported_at", "Reported 上报"], ["source", "Source 来源"],
      ["unit_grid_code", "Unit grid 单元网格"], ["supervision_code", "Supervision grid 监督网格"], ["description", "Description 描述"]]));
    var owners = cg.element("div", null, "owners …");
    box.appendChild(owners);
    cg.getJSON("/api/v1/cases/" + props.case_id).then(function (c) {
      var o = c.owners || {};
      function name(r) { return o[r] ? o[r].name : "—"; }
      owners.textContent = "";
      owners.appendChild(cg.fields({ m: name("management"), r: name("responsibility"), e: name("enforcement"),
                                     d: c.attrs && c.attrs.dispatched_to ? c.attrs.dispatched_to.name : "—" },
        [["m", "Management 管理主体"], ["r", "Responsibility 责任主体"], ["e", "Enforcement 执法主体"], ["d", "Dispatched to 派遣至"]]));
    }).catch(function (err) { owners.textContent = "error: " + err.message; });
    return box;
  }

  function query() {
    var q = "/api/v1/cases?format=geojson&limit=5000&district=" + ui.district.value;
    if (ui.status.value === "open") { q += "&open=true"; } else if (ui.status.value) { q += "&status=" + ui.status.value; }
    if (ui.class.value) { var c = ui.class.value.split("/"); q += "&kind=" + c[0] + "&class_code=" + c[1]; }
    if (ui.team.value) { q += "&team=" + encodeURIComponent(ui.team.value); }
    return q;
  }

  function load() {
    var mine = ++request;
    cg.ready = false;
    cg.getJSON(query()).then(function (found) {
      if (mine !== request) { return; }
      if (clusters) { map.removeLayer(clusters); layers.removeLayer(clusters); }
      clusters = L.markerClusterGroup({ chunkedLoading: true, maxClusterRadius: 50 });
      var synthetic = 0;
      found.features.forEach(function (f) {
        if (f.properties.synthetic) { synthetic += 1; }
        var marker = L.circleMarker([f.geometry.coordinates[1], f.geometry.coordinates[0]], {
          radius: 7, weight: 1, color: "#222", fillOpacity: 0.9, fillColor: STATUS_COLOUR[f.properties.status] || "#999"
        });
        marker.caseId = f.properties.case_id;
        marker.bindPopup(function () { return caseCard(f.properties); }, { autoPan: false, maxWidth: 300 });
        clusters.addLayer(marker);
      });
      clusters.addTo(map);
      layers.addOverlay(clusters, "Cases (clustered)");
      cg.layers.cases = clusters;
      ui.summary.textContent = found.count + " cases" + (found.count >= 5000 ? " (first 5000)" : "") +
                               (synthetic ? " — " + synthetic + " SYNTHETIC demo" : "");
      ui.summary.className = synthetic ? "cg-synthetic" : "";
      cg.ready = true;
    }).catch(function (err) { ui.summary.textContent = "error: " + (err && err.message || err); cg.ready = true; });
  }

  // A supervisor's own grids: outline the team's supervision grids and zoom to them.
  function showScope() {
    if (scope) { map.removeLayer(scope); layers.removeLayer(scope); scope = null; }
    var team = ui.team.value;
    var url = new URL(window.location.href);
    if (team) { url.searchParams.set("team", team); } else { url.searchParams.delete("team"); }
    window.history.replaceState(null, "", url.toString());
    if (!team) { return; }
    cg.getJSON("/api/v1/grids?kind=supervision&limit=5000&district=" + ui.district.value).then(function (page) {
      var own = page.features.filter(function (f) { return f.properties.team_code === team; });
      scope = L.geoJSON({ type: "FeatureCollection", features: own }, {
        style: { color: "#1f3b57", weight: 3, fill: true, fillOpacity: 0.05 }, interactive: false
      }).addTo(map);
      layers.addOverlay(scope, "My supervision grids (" + team + ")");
      if (own.length) { map.fitBounds(scope.getBounds()); }
    }).catch(function () {});
  }

  function fillTeams() {
    var teams = cg.data.per_district[ui.district.value].teams || [];
    while (ui.team.options.length > 1) { ui.team.remove(1); }
    teams.forEach(function (t) {
      var option = document.createElement("option");
      option.value = t.code; option.textContent = t.name + " (" + t.supervision_grids + ")";
      ui.team.appendChild(option);
    });
    var wanted = params.get("team");
    if (wanted && teams.some(function (t) { return t.code === wanted; })) { ui.team.value = wanted; }
  }

  ui.locate.addEventListener("click", function () {
    if (!navigator.geolocation) { ui.summary.textContent = "this browser cannot tell its location"; return; }
    navigator.geolocation.getCurrentPosition(function (pos) {
      var latlng = [pos.coords.latitude, pos.coords.longitude];  // WGS84 from the device
      if (here) { map.removeLayer(here); }
      here = L.layerGroup([L.circle(latlng, { radius: pos.coords.accuracy, weight: 1 }),
                           L.circleMarker(latlng, { radius: 6, color: "#fff", weight: 2, fillColor: "#2a7de1", fillOpacity: 1 })]).addTo(map);
      map.setView(latlng, Math.max(map.getZoom(), 16));
      cg.getJSON("/api/v1/grids/at?lon=" + latlng[1] + "&lat=" + latlng[0]).then(function (found) {
        if (!found.code) { ui.summary.textContent = found.message; return; }
        ui.summary.textContent = "you are in unit grid " + found.code + " (" + (found.card.community_name || found.card.street_name || "") + ")";
      }).catch(function (err) { ui.summary.textContent = err.message; });
    }, function (err) { ui.summary.textContent = "location unavailable: " + err.message; },
    { enableHighAccuracy: true, timeout: 10000 });
  });

  ["status", "class"].forEach(function (id) { ui[id].addEventListener("change", load); });
  ui.team.addEventListener("change", function () { showScope(); load(); });
  ui.district.addEventListener("change", function () {
    cg.boundary(map, ui.district.value).then(function () { fillTeams(); showScope(); load(); });
  });
  cg.boundary(map, ui.district.value).then(function () { fillTeams(); showScope(); load(); });
})();

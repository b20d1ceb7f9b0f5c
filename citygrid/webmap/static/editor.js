// The planners' grid editor (#23): a draft's unit grids loaded by viewport (GeoJSON pages of the grid API, never
// the whole district), coloured by supervision grid with their codes on hover; tools that send one edit each to the
// edit API with the draft's revision (split by a drawn line, merge a selection, reshape one grid's outline, move a
// shared vertex, reassign to a supervision grid, give a supervision grid to a team), undo, the edit log, the impact
// preview and publishing with a date. The server is the authority: after every edit the page redraws the grids the
// server answered with; a refused edit (422) shows the reason with its geometry in red; a stale revision (409)
// reloads the draft and names the edits made since. Drawing and vertex editing are Leaflet-Geoman's. Text is
// inserted as text only.
(function () {
  "use strict";
  var cg = window.citygrid, map = cg.map, el = cg.element;
  var MIN_ZOOM = 14;       // below this a viewport holds thousands of grids: the page asks the planner to zoom in
  var PAGE = 2000;         // grids per request (the API allows 5,000)
  var LOG_SHOWN = 50;      // edits shown in the log (the API pages it by 500 at most)
  var ui = {};
  ["district", "draft", "new-draft", "drop-draft", "draft-info", "tool-split", "tool-merge", "tool-reshape",
   "tool-move", "undo", "clear-selection", "tool-help", "reshape-form", "reshape-send", "tool-cancel", "supervision",
   "reassign", "team", "set-team", "status", "selection", "impact", "log", "effective-from", "publish"
  ].forEach(function (id) {
    ui[id] = document.getElementById(id);
  });
  var state = { district: null, version: null, revision: null, status: null, base: null, current: null,
                tool: null, selected: [], generation: 0, loadedBoxes: [] };
  var byCode = {};        // unit grid code -> its Leaflet layer (feature in layer.feature)
  var units = L.geoJSON(null, { style: unitStyle, onEachFeature: bindUnit, pmIgnore: false }).addTo(map);
  var supervision = L.geoJSON(null, { style: { color: "#1f3b57", weight: 2.5, fill: false, opacity: 0.9 },
                                      interactive: false, pmIgnore: true }).addTo(map);
  var highlight = L.geoJSON(null, { style: { color: "#d00000", weight: 4, fillColor: "#ff0000", fillOpacity: 0.35 },
                                    pointToLayer: function (f, latlng) {
                                      return L.circleMarker(latlng, { radius: 10, color: "#d00000", weight: 4 });
                                    }, interactive: false, pmIgnore: true }).addTo(map);
  var editing = null;     // {layer, kind: "reshape" | "move"} while a grid's outline is in Geoman's edit mode
  var pending = 0;
  cg.layers = { units: units, supervision: supervision, highlight: highlight };
  cg.editor = { state: state, byCode: byCode, send: send, undo: undo, reload: openDraft };
  cg.ready = false;
  cg.basemap(map);
  // A short snapping distance: the edge being pushed is also the neighbour's, and a handle dropped within the
  // distance of it snaps back onto it (Alt while dragging turns snapping off).
  map.pm.setGlobalOptions({ snappable: true, snapDistance: 8, allowSelfIntersection: false });

  // --- busy / status -------------------------------------------------------------------------------------
  function busy(promise) {
    pending += 1; cg.ready = false;
    return promise.then(function (v) { done(); return v; }, function (err) { done(); throw err; });
  }
  function done() { pending -= 1; if (pending <= 0) { pending = 0; cg.ready = true; } }
  function say(text, kind) {
    ui.status.textContent = text;
    ui.status.className = "cg-status" + (kind === "error" ? " cg-error" : kind === "ok" ? " cg-ok" : "");
    ui.status.setAttribute("role", kind === "error" ? "alert" : "status");
  }
  function query() { return "?district=" + encodeURIComponent(state.district); }
  function draftUrl(tail) { return "/api/v1/grids/versions/" + state.version + (tail || "") + query(); }

  // --- grids on the map ----------------------------------------------------------------------------------
  function unitStyle(feature) {
    var p = feature.properties || {}, chosen = state.selected.indexOf(p.code) >= 0;
    return { color: chosen ? "#111" : "#444", weight: chosen ? 3.5 : 0.8, fillColor: cg.colourFor(p.supervision_code),
             fillOpacity: chosen ? 0.6 : 0.35, dashArray: chosen ? "6 3" : null };
  }
  function bindUnit(feature, layer) {
    var p = feature.properties || {};
    byCode[p.code] = layer;
    layer.bindTooltip(document.createTextNode(p.code + " · " + (p.supervision_code || "no supervision grid") +
                                              (p.area_m2 != null ? " · " + Math.round(p.area_m2) + " m²" : "")),
                      { sticky: true });
    layer.on("click", function (e) {
      if (state.tool === "split" || editing) { return; }
      L.DomEvent.stopPropagation(e);
      toggle(p.code);
    });
  }
  function drop(code) {
    var layer = byCode[code];
    if (layer) { units.removeLayer(layer); delete byCode[code]; }
  }
  function addFeatures(features) {
    var fresh = (features || []).filter(function (f) { return f && f.properties && !byCode[f.properties.code]; });
    if (fresh.length) { units.addData({ type: "FeatureCollection", features: fresh }); }
    return fresh.length;
  }
  function clearGrids() {
    units.clearLayers(); supervision.clearLayers(); highlight.clearLayers();
    Object.keys(byCode).forEach(function (k) { delete byCode[k]; });
    state.selected = []; state.loadedBoxes = []; state.generation += 1;
    showSelection();
  }

  // The draft's unit grids in the viewport (padded), page by page; boxes already loaded are not asked again.
  function loadViewport() {
    if (!state.version) { return Promise.resolve(); }
    if (map.getZoom() < MIN_ZOOM) {
      ui["tool-help"].textContent = "Zoom in (level " + MIN_ZOOM + " or closer) to load the draft's grids. 请放大地图。";
      return Promise.resolve();
    }
    var bounds = map.getBounds().pad(0.25);
    if (state.loadedBoxes.some(function (b) { return b.contains(bounds); })) { return Promise.resolve(); }
    var bbox = [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()]
      .map(function (v) { return v.toFixed(6); }).join(",");
    var generation = state.generation;
    function page(offset) {
      var url = "/api/v1/grids" + query() + "&version=" + state.version + "&kind=unit&limit=" + PAGE +
                "&offset=" + offset + "&bbox=" + bbox;
      return cg.api(url).then(function (r) {
        if (generation !== state.generation) { return null; }
        addFeatures(r.body.features);
        var next = offset + r.body.features.length;
        return next < r.body.total && r.body.features.length ? page(next) : null;
      });
    }
    return busy(page(0).then(function () {
      if (generation === state.generation) { state.loadedBoxes.push(bounds); }
      ui["tool-help"].textContent = Object.keys(byCode).length + " grids loaded. Click grids to select them " +
        "(click again to drop one); pick a tool.";
    }).catch(function (err) { say(err.message, "error"); }));
  }

  // The draft's supervision grids: outlines on the map, the reassign list, and the teams they belong to.
  function loadSupervision() {
    var generation = state.generation;
    return busy(cg.api("/api/v1/grids" + query() + "&version=" + state.version + "&kind=supervision&limit=5000")
      .then(function (r) {
        if (generation !== state.generation) { return; }
        supervision.clearLayers();
        supervision.addData(r.body);
        var keep = ui.supervision.value, teams = {};
        ui.supervision.textContent = "";
        r.body.features.forEach(function (f) {
          var p = f.properties;
          ui.supervision.appendChild(new Option(p.code + (p.team_code ? " (" + p.team_code + ")" : ""), p.code));
          if (p.team_code) { teams[p.team_code] = true; }
        });
        if (keep) { ui.supervision.value = keep; }
        var per = (cg.data.per_district || {})[state.district] || {};
        (per.teams || []).forEach(function (t) { teams[t.code || t.team_code || t] = true; });
        var keepTeam = ui.team.value;
        ui.team.textContent = "";
        Object.keys(teams).sort().forEach(function (t) { ui.team.appendChild(new Option(t, t)); });
        if (keepTeam) { ui.team.value = keepTeam; }
      }).catch(function (err) { say(err.message, "error"); }));
  }

  // --- selection -----------------------------------------------------------------------------------------
  function toggle(code) {
    var at = state.selected.indexOf(code);
    if (at >= 0) { state.selected.splice(at, 1); } else { state.selected.push(code); }
    restyle(code);
    showSelection();
    var layer = byCode[code], p = layer && layer.feature.properties;
    if (p && p.supervision_code && at < 0) { ui.supervision.value = p.supervision_code; }
  }
  function restyle(code) { var layer = byCode[code]; if (layer) { layer.setStyle(unitStyle(layer.feature)); } }
  function clearSelection() {
    var was = state.selected; state.selected = [];
    was.forEach(restyle);
    showSelection();
  }
  function showSelection() {
    ui.selection.textContent = state.selected.length ? "selected 已选: " + state.selected.join(", ") : "nothing selected";
  }

  // --- sending edits -------------------------------------------------------------------------------------
  function send(op) {
    if (!state.version) { say("choose or create a draft first 请先选择草稿", "error"); return Promise.resolve(null); }
    var body = Object.assign({}, op, { expected_revision: state.revision });
    highlight.clearLayers();
    say("sending " + op.op + " …");
    return busy(cg.api(draftUrl("/edits"), { method: "POST", json: body }).then(function (r) {
      applied(r.body, op.op);
      return r.body;
    }, refused));
  }
  function undo() {
    if (!state.version) { return Promise.resolve(null); }
    highlight.clearLayers();
    return busy(cg.api(draftUrl("/undo"), { method: "POST", json: { expected_revision: state.revision } })
      .then(function (r) { applied(r.body, "undo"); return r.body; }, refused));
  }

  // What the server stored: drop the removed and changed grids, draw the answer's features in their place.
  function applied(answer, label) {
    var edit = answer.edit || {}, features = (answer.features && answer.features.features) || [];
    state.revision = answer.revision;
    (edit.removed || []).concat(edit.changed || [], edit.added || []).forEach(drop);
    features.forEach(function (f) { drop(f.properties.code); });
    clearSelection();
    addFeatures(features);
    say(label + " done 完成: " + summary(edit) + " — revision " + state.revision, "ok");
    showDraft();
    refreshAround();
  }
  function summary(edit) {
    var parts = [];
    if ((edit.added || []).length) { parts.push("added " + edit.added.join(", ")); }
    if ((edit.removed || []).length) { parts.push("removed " + edit.removed.join(", ")); }
    if ((edit.changed || []).length) { parts.push("changed " + edit.changed.join(", ")); }
    if (!parts.length && (edit.supervision || []).length) {  // a set-team: no unit grid, a supervision grid
      parts.push("supervision grid " + edit.supervision.join(", "));
    }
    return (edit.op ? edit.op + " " : "") + (parts.join("; ") || "no grid changed");
  }
  function refused(err) {
    var body = err.body || {};
    if (err.status === 409) {
      var since = (body.edits_since || []).map(function (e) {
        return "#" + e.seq + " " + e.op + " by " + e.author + " at " + cg.when(e.at);
      });
      var more = (body.edits_since_count || 0) - since.length;
      if (more > 0) { since.unshift(more + " earlier edits"); }
      say("This draft was edited since you loaded it 草稿已被他人修改: " + (since.join("; ") || err.message) +
          ". Reloaded at revision " + (body.revision != null ? body.revision : "?") + "; redo your edit if it still applies.",
          "error");
      return openDraft(state.version, { keepStatus: true, keepView: true });
    }
    if (err.status === 422) {
      say("Refused 不予接受 (" + (body.reason || "rejected") + "): " + err.message, "error");
      if (body.geometry) {
        highlight.addData(body.geometry.type === "Feature" || body.geometry.type === "FeatureCollection"
                          ? body.geometry : { type: "Feature", properties: {}, geometry: body.geometry });
        highlight.bringToFront();
      }
      return null;
    }
    say(err.message, "error");
    return null;
  }

  // --- tools ---------------------------------------------------------------------------------------------
  function setTool(tool) {
    stopTool();
    state.tool = tool;
    [["split", "tool-split"], ["reshape", "tool-reshape"], ["move", "tool-move"]].forEach(function (t) {
      ui[t[1]].setAttribute("aria-pressed", String(tool === t[0]));
    });
  }
  function stopTool() {
    if (map.pm.globalDrawModeEnabled()) { map.pm.disableDraw(); }
    if (editing) {
      var layer = editing.layer;
      layer.pm.disable();
      layer.off("pm:markerdragstart pm:markerdragend");
      var feature = layer.feature;
      drop(feature.properties.code);
      addFeatures([feature]);  // the stored shape again, not the one the handles left
      editing = null;
    }
    ui["reshape-form"].hidden = true;
    state.tool = null;
    ["tool-split", "tool-reshape", "tool-move"].forEach(function (id) { ui[id].setAttribute("aria-pressed", "false"); });
  }

  function startSplit() {
    if (!state.version) { say("choose or create a draft first 请先选择草稿", "error"); return; }
    setTool("split");
    map.pm.enableDraw("Line", { snappable: false, finishOn: "dblclick" });
    ui["tool-help"].textContent = "Split: click points of a line across the grid (it may overshoot); double-click " +
      "to finish. The largest part keeps the grid's code.";
  }
  map.on("pm:create", function (e) {
    var layer = e.layer;
    map.removeLayer(layer);
    if (state.tool !== "split") { return; }
    var line = layer.toGeoJSON(false).geometry;
    var code = state.selected.length === 1 ? state.selected[0] : gridUnderLine(line);
    setTool(null);
    if (!code) { say("Select the grid to split first (or draw the line across one). 请先选择要拆分的网格", "error"); return; }
    send({ op: "split", code: code, line: line });
  });

  // The loaded grid holding the middle of the drawn line (the grid a line drawn across one grid most likely meant).
  function gridUnderLine(line) {
    var c = line.coordinates, total = 0, lengths = [];
    for (var i = 1; i < c.length; i++) { var d = Math.hypot(c[i][0] - c[i - 1][0], c[i][1] - c[i - 1][1]); lengths.push(d); total += d; }
    var half = total / 2, point = c[0];
    for (var j = 0; j < lengths.length; j++) {
      if (half <= lengths[j]) { var t = lengths[j] ? half / lengths[j] : 0;
        point = [c[j][0] + t * (c[j + 1][0] - c[j][0]), c[j][1] + t * (c[j + 1][1] - c[j][1])]; break; }
      half -= lengths[j];
    }
    var found = null;
    Object.keys(byCode).some(function (code) {
      if (contains(byCode[code].feature.geometry, point)) { found = code; return true; }
      return false;
    });
    return found;
  }
  function contains(geometry, pt) {
    var polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.type === "MultiPolygon" ? geometry.coordinates : [];
    return polys.some(function (rings) {
      var inside = false;
      rings.forEach(function (ring) {
        for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
          var xi = ring[i][0], yi = ring[i][1], xj = ring[j][0], yj = ring[j][1];
          if (((yi > pt[1]) !== (yj > pt[1])) && (pt[0] < (xj - xi) * (pt[1] - yi) / (yj - yi) + xi)) { inside = !inside; }
        }
      });
      return inside;
    });
  }

  function oneSelected(what) {
    if (state.selected.length !== 1 || !byCode[state.selected[0]]) {
      say(what + ": select exactly one grid first 请只选择一个网格", "error");
      return null;
    }
    return byCode[state.selected[0]];
  }
  function startReshape() {
    var layer = oneSelected("Reshape");
    if (!layer) { return; }
    setTool("reshape");
    editing = { layer: layer, kind: "reshape" };
    layer.pm.enable({ snappable: true, allowSelfIntersection: false });
    ui["reshape-form"].hidden = false;
    ui["tool-help"].textContent = "Reshape: drag the grid's corners (or the middle handles to add one); the " +
      "neighbours give or take the difference. Then send the new shape.";
  }
  function sendReshape() {
    if (!editing || editing.kind !== "reshape") { return; }
    // full precision (Leaflet rounds to 6 decimals by default, ~5 cm): the corners not moved must stay the
    // stored ones exactly, or the edges no longer match the neighbours'
    var layer = editing.layer, code = layer.feature.properties.code, geometry = layer.toGeoJSON(false).geometry;
    stopTool();
    send({ op: "reshape", code: code, geometry: geometry });
  }
  function startMove() {
    var layer = oneSelected("Move vertex");
    if (!layer) { return; }
    setTool("move");
    editing = { layer: layer, kind: "move" };
    var original = layer.feature.geometry, from = null;
    layer.pm.enable({ snappable: true, hideMiddleMarkers: true, preventMarkerRemoval: true });
    layer.on("pm:markerdragstart", function (e) { from = vertexAt(original, e.indexPath) || lonlat(e.markerEvent.target.getLatLng()); });
    layer.on("pm:markerdragend", function (e) {
      var to = lonlat(e.markerEvent.target.getLatLng());
      if (!from) { return; }
      var moved = { op: "move-vertex", from: from, to: to };
      from = null;
      if (moved.from[0] === to[0] && moved.from[1] === to[1]) {  // snapped back onto itself: nothing to send
        setTimeout(function () { stopTool(); say("the corner did not move (it snapped back to where it was)"); }, 0);
        return;
      }
      // after Geoman has finished its own handling of the drag
      setTimeout(function () { stopTool(); send(moved); }, 0);
    });
    ui["tool-help"].textContent = "Move vertex: drag one corner of the grid; every grid sharing it moves with it.";
  }
  // The stored coordinate of a vertex (the server's own numbers, not the handle's rounding); indexPath [ring, i].
  function vertexAt(geometry, path) {
    if (!path || geometry.type !== "Polygon") { return null; }
    var ring = geometry.coordinates[path[0]];
    return ring && ring[path[1]] ? [ring[path[1]][0], ring[path[1]][1]] : null;
  }
  function lonlat(latlng) { return [Number(latlng.lng.toFixed(8)), Number(latlng.lat.toFixed(8))]; }

  function merge() {
    if (state.selected.length < 2) { say("Merge: select two or more adjacent grids 请选择两个以上相邻网格", "error"); return; }
    setTool(null);
    send({ op: "merge", codes: state.selected.slice() });
  }
  function reassign() {
    if (!state.selected.length) { say("Reassign: select grids first 请先选择网格", "error"); return; }
    if (!ui.supervision.value) { say("Reassign: pick a supervision grid 请选择监督网格", "error"); return; }
    setTool(null);
    send({ op: "reassign", codes: state.selected.slice(), supervision_code: ui.supervision.value });
  }
  function setTeam() {
    if (!ui.supervision.value || !ui.team.value) { say("Set team: pick a supervision grid and a team 请选择监督网格和分队", "error"); return; }
    setTool(null);
    send({ op: "set-team", supervision_code: ui.supervision.value, team_code: ui.team.value });
  }

  // --- the draft: summary, log, impact, publishing --------------------------------------------------------
  function showDraft() {
    ui["draft-info"].textContent = state.version
      ? "version " + state.version + " · " + state.status + (state.base ? " · from version " + state.base : "") +
        " · revision " + state.revision : "no draft open";
  }
  function refreshAround() {
    loadLog(); loadImpact(); loadSupervision();
  }
  function loadLog() {
    var generation = state.generation;
    // the newest LOG_SHOWN edits: a draft's seqs are 1…revision, so they are the page after revision - LOG_SHOWN
    var after = Math.max(0, (state.revision || 0) - LOG_SHOWN);
    return busy(cg.api(draftUrl("/edits") + "&after=" + after + "&limit=" + LOG_SHOWN).then(function (r) {
      if (generation !== state.generation) { return; }
      var edits = r.body.edits || [];
      ui.log.textContent = "";
      if (!edits.length) { ui.log.appendChild(el("li", "cg-meta", "no edits yet 暂无编辑")); }
      if (r.body.total > edits.length) {
        ui.log.appendChild(el("li", "cg-meta", "the newest " + edits.length + " of " + r.body.total + " edits"));
      }
      edits.slice().reverse().forEach(function (e) {
        var undone = e.undone_at || e.undone_by;
        var li = el("li", undone ? "cg-meta" : null);
        li.appendChild(el("strong", null, "#" + e.seq + " " + e.op));
        li.appendChild(el("span", "cg-meta", " " + (e.author || "") + " · " + cg.when(e.at) + (undone ? " · undone 已撤销" : "")));
        li.appendChild(el("div", null, summary({ added: e.added, removed: e.removed, changed: e.changed,
                                                 supervision: e.supervision })));
        ui.log.appendChild(li);
      });
    }).catch(function (err) { ui.log.textContent = err.message; }));
  }

  // The impact of publishing the draft now, against the current published version (gridding.impact): the grids
  // that change with their areas, the components and cases that would change grid, owner changes, the changed
  // supervision grids' workloads, the teams, and the imbalance before and after.
  function loadImpact() {
    var generation = state.generation;
    ui.impact.setAttribute("aria-busy", "true");
    return busy(cg.api(draftUrl("/impact")).then(function (r) {
      if (generation !== state.generation) { return; }
      ui.impact.textContent = "";
      impactView(r.body).forEach(function (node) { ui.impact.appendChild(node); });
      ui.impact.removeAttribute("aria-busy");
    }).catch(function (err) { ui.impact.textContent = "impact: " + err.message; ui.impact.removeAttribute("aria-busy"); }));
  }
  var LIST = 25;  // rows shown per list (the counts are complete)
  function impactView(impact) {
    var nodes = [], grids = impact.grids || [], points = impact.points || {}, owners = impact.owners || {};
    var sups = impact.supervision_grids || [], teams = impact.teams || [], imbalance = impact.imbalance || {};
    nodes.push(el("p", "cg-meta", "against published version " + impact.base_version + " 对比现行版本"));
    nodes.push(el("strong", "cg-impact-head", grids.length + " unit grid" + (grids.length === 1 ? "" : "s") +
                  " change 单元网格变化"));
    nodes.push(list(grids, function (g) {
      return g.code + " " + g.change + " · " + area(g.area_before_m2) + " → " + area(g.area_after_m2) +
        " (" + (g.area_delta_m2 > 0 ? "+" : "") + area(g.area_delta_m2) + ")" +
        (g.supervision_before !== g.supervision_after ? " · " + (g.supervision_before || "—") + " → " +
         (g.supervision_after || "—") : "");
    }, "impact-grids"));
    nodes.push(el("p", "cg-impact-points", "change grid 变更所属网格: components 部件 " + count(points.components) +
                  " · open cases 在办案件 " + count(points.open_cases) + " · cases of the last 12 months 近一年案件 " +
                  count(points.recent_cases)));
    var changes = owners.changes || [], fresh = owners.new_codes || [];
    nodes.push(el("strong", "cg-impact-head", changes.length + " owner change" + (changes.length === 1 ? "" : "s") +
                  " 责任主体变化"));
    nodes.push(list(changes, function (c) {
      return c.role + ": " + c.from_grid + " → " + c.to_grid + " (" + area(c.area_m2) + ") " +
        party(c.owner_before) + " → " + party(c.owner_after);
    }, "impact-owners"));
    if (fresh.length) { nodes.push(el("p", "cg-meta", "new codes without owners: " + fresh.join(", ") + " — " + (owners.note || ""))); }
    nodes.push(el("strong", "cg-impact-head", sups.length + " supervision grid" + (sups.length === 1 ? "" : "s") +
                  " change 监督网格变化"));
    nodes.push(list(sups, function (g) {
      return g.code + " · team " + (g.team_before || "—") + (g.team_before !== g.team_after ? " → " + (g.team_after || "—") : "") +
        " · unit grids " + g.unit_grids_before + " → " + g.unit_grids_after + " · workload " + num(g.workload_before) +
        " → " + num(g.workload_after) + ((g.supervisors || []).length ? " · " + g.supervisors.map(function (p) { return p.name; }).join(", ") : "");
    }, "impact-supervision"));
    if (teams.length) {
      nodes.push(list(teams, function (t) {
        return "team " + t.code + ": " + (t.supervision_grids_changed_before || []).join(", ") + " → " +
          (t.supervision_grids_changed_after || []).join(", ");
      }, "impact-teams"));
    }
    nodes.push(el("p", "cg-impact-imbalance", "imbalance 不均衡度: " + pct(imbalance.before) + " → " + pct(imbalance.after)));
    return nodes;
  }
  function list(items, text, id) {
    var ul = el("ul", "cg-impact-list");
    ul.id = id;
    items.slice(0, LIST).forEach(function (item) { ul.appendChild(el("li", null, text(item))); });
    if (items.length > LIST) { ul.appendChild(el("li", "cg-meta", "… " + (items.length - LIST) + " more")); }
    return ul;
  }
  function count(kind) { return kind ? kind.count + (kind.capped ? "+" : "") : "0"; }
  function area(m2) { return m2 == null ? "—" : Math.round(m2).toLocaleString("en") + " m²"; }
  function num(v) { return v == null ? "—" : (Math.round(v * 100) / 100).toString(); }
  function pct(v) { return v == null ? "—" : (Math.round(v * 1000) / 10) + " %"; }
  function party(p) { return p ? p.name + " (" + p.code + ")" : "none"; }

  function publish() {
    if (!state.version) { return; }
    var day = ui["effective-from"].value;
    if (!day) { say("Publish: pick the date it takes effect 请选择生效日期", "error"); return; }
    busy(cg.api(draftUrl("/publish"), { method: "POST", json: { effective_from: day } }).then(function () {
      say("version " + state.version + " published, effective " + day + " 已发布", "ok");
      return loadDrafts(null, true);
    }, function (err) { return refused(err); }));
  }

  function newDraft() {
    busy(cg.api("/api/v1/grids/versions", { method: "POST",
                                           json: { district: state.district, from: state.current } })
      .then(function (r) {
        say("draft " + r.body.version + " made from version " + (r.body.base_version || state.current) + " 已新建草稿", "ok");
        return loadDrafts(r.body.version, true);
      }, function (err) { say(err.message, "error"); }));
  }

  // Drop the open draft (asked first): its grids and edit log go; the codes it issued stay registered. A district
  // has a limited number of open drafts (the API's 409 on "New draft" names them), so this makes room.
  function dropDraft() {
    if (!state.version) { say("no draft open 未打开草稿", "error"); return; }
    var version = state.version;
    if (!window.confirm("Drop draft " + version + " with its edits? 删除草稿 " + version + "？")) { return; }
    busy(cg.api(draftUrl(""), { method: "DELETE" }).then(function () {
      say("draft " + version + " dropped 已删除", "ok");
      return loadDrafts(null, true);
    }, function (err) { say(err.message, "error"); }));
  }

  // The district's drafts in the list; opens `wanted` (or the newest draft); `keepStatus`: the status line stays.
  function loadDrafts(wanted, keepStatus) {
    return busy(cg.api("/api/v1/grids/versions" + query()).then(function (r) {
      var versions = r.body.versions || [], drafts = versions.filter(function (v) { return v.status === "draft"; });
      var published = versions.filter(function (v) { return v.status === "published"; });
      state.current = published.length ? published[published.length - 1].version_id : null;
      ui.draft.textContent = "";
      ui.draft.appendChild(new Option(drafts.length ? "— choose a draft —" : "— no draft yet —", ""));
      drafts.slice().reverse().forEach(function (v) {
        ui.draft.appendChild(new Option("version " + v.version_id + (v.parent_version ? " (from " + v.parent_version + ")" : "") +
                                        (v.author ? " · " + v.author : ""), String(v.version_id)));
      });
      var pick = wanted && drafts.some(function (v) { return v.version_id === Number(wanted); }) ? Number(wanted)
        : (drafts.length ? drafts[drafts.length - 1].version_id : null);
      ui.draft.value = pick ? String(pick) : "";
      return pick ? openDraft(pick, { keepStatus: keepStatus }) : closeDraft();
    }).catch(function (err) { say(err.message, "error"); }));
  }
  function closeDraft() {
    stopTool(); clearGrids();
    state.version = null; state.revision = null; state.status = null;
    ui.log.textContent = ""; ui.impact.textContent = "";
    showDraft(); remember();
  }
  function openDraft(version, options) {
    options = options || {};
    stopTool();
    return busy(cg.api("/api/v1/grids/versions/" + version + query()).then(function (r) {
      clearGrids();
      state.version = Number(version);
      state.revision = r.body.revision;
      state.status = r.body.status;
      state.base = r.body.base_version;
      showDraft(); remember();
      if (!options.keepStatus) { say(""); }
      refreshAround();
      return loadViewport();
    }).catch(function (err) { say(err.message, "error"); }));
  }
  function remember() {
    var q = new URLSearchParams(location.search);
    q.set("district", state.district);
    if (state.version) { q.set("version", state.version); } else { q.delete("version"); }
    history.replaceState(null, "", location.pathname + "?" + q.toString());
  }

  function showDistrict(wanted) {
    state.district = ui.district.value;
    closeDraft();
    busy(cg.boundary(map, state.district).catch(function (err) { say(err.message, "error"); }));
    return loadDrafts(wanted);
  }

  // Today in the deployment's zone (YYYY-MM-DD), the publish date offered.
  function today() {
    try { return new Intl.DateTimeFormat("sv-SE", { timeZone: cg.data.zone || undefined }).format(new Date()); }
    catch (e) { return new Date().toISOString().slice(0, 10); }
  }

  // --- wiring --------------------------------------------------------------------------------------------
  ui["tool-split"].addEventListener("click", startSplit);
  ui["tool-merge"].addEventListener("click", merge);
  ui["tool-reshape"].addEventListener("click", startReshape);
  ui["tool-move"].addEventListener("click", startMove);
  ui["reshape-send"].addEventListener("click", sendReshape);
  ui["tool-cancel"].addEventListener("click", function () { stopTool(); say("cancelled"); });
  ui.undo.addEventListener("click", function () { setTool(null); undo(); });
  ui["clear-selection"].addEventListener("click", clearSelection);
  ui.reassign.addEventListener("click", reassign);
  ui["set-team"].addEventListener("click", setTeam);
  ui.publish.addEventListener("click", publish);
  ui["new-draft"].addEventListener("click", newDraft);
  ui["drop-draft"].addEventListener("click", dropDraft);
  ui.draft.addEventListener("change", function () {
    if (ui.draft.value) { openDraft(Number(ui.draft.value)); } else { closeDraft(); }
  });
  ui.district.addEventListener("change", function () { showDistrict(null); });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") { stopTool(); } });
  map.on("moveend", function () { loadViewport(); });

  var asked = new URLSearchParams(location.search);
  if (asked.get("district") && Array.prototype.some.call(ui.district.options, function (o) { return o.value === asked.get("district"); })) {
    ui.district.value = asked.get("district");
  }
  ui["effective-from"].value = today();
  showSelection();
  if (ui.district.value) { showDistrict(asked.get("version")); } else { say("no district loaded yet"); cg.ready = true; }
})();

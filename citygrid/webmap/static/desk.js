// The desk: the signed-in account's work queues (GET /api/v1/desk), one tab each with its count and overdue
// count; the chosen queue's page of cases (GET /api/v1/desk/<queue> with the cases map's filters), refreshed by
// polling every 5 s with the list's ETag (If-None-Match: a 304 changes nothing). Each row links to its case page
// and carries the buttons of the case's my_actions (never an action the API would refuse). Cases on the map.
(function () {
  "use strict";
  var cg = window.citygrid, map = cg.map, el = cg.element;
  var POLL_MS = 5000, LIMIT = 20;
  var ui = {};
  ["district", "class", "start", "end", "unit_grid", "supervision_grid", "team", "near", "queues", "status", "rows",
   "prev", "next", "page"].forEach(function (id) { ui[id] = document.getElementById(id); });
  var params = new URLSearchParams(window.location.search);
  var state = { queue: params.get("queue") || "", offset: 0, etag: null, near: null, busy: false, queues: [] };
  var markers = L.layerGroup().addTo(map);
  cg.basemap(map);
  cg.ready = false;

  function filters() {
    var q = new URLSearchParams();
    if (ui.district && ui.district.value) { q.set("district", ui.district.value); }
    if (ui.class.value) { var c = ui.class.value.split("/"); q.set("kind", c[0]); q.set("class_code", c[1]); }
    ["start", "end", "unit_grid", "supervision_grid", "team"].forEach(function (name) {
      var v = ui[name].value.trim(); if (v) { q.set(name, v); }
    });
    if (state.near) { q.set("near", state.near[0].toFixed(6) + "," + state.near[1].toFixed(6)); }
    q.set("limit", String(LIMIT)); q.set("offset", String(state.offset));
    return q;
  }

  // A count the API stopped at its cap (named in at_least / counts_at_least) means "at least": "100+".
  function shown(n, atLeast) { return String(n || 0) + (atLeast ? "+" : ""); }

  function drawTabs() {
    ui.queues.textContent = "";
    state.queues.forEach(function (q) {
      var capped = q.at_least || [];
      var tab = el("button", null, q.label + " " + shown(q.total, capped.indexOf("total") >= 0));
      if (q.unavailable) { tab.title = q.unavailable; }
      tab.type = "button"; tab.setAttribute("role", "tab"); tab.dataset.queue = q.queue;
      tab.setAttribute("aria-selected", String(q.queue === state.queue));
      if (q.overdue) {
        tab.appendChild(el("span", "cg-overdue", " (" + shown(q.overdue, capped.indexOf("overdue") >= 0) + " overdue 超时)"));
      }
      tab.addEventListener("click", function () { choose(q.queue); });
      ui.queues.appendChild(tab);
    });
  }

  function loadQueues() {
    return cg.api("/api/v1/desk").then(function (r) {
      state.queues = (r.body && r.body.queues) || [];
      if (!state.queues.some(function (q) { return q.queue === state.queue; })) {
        state.queue = state.queues.length ? state.queues[0].queue : "";
      }
      drawTabs();
    });
  }

  function choose(queue) {
    state.queue = queue; state.offset = 0; state.etag = null;
    var url = new URL(window.location.href); url.searchParams.set("queue", queue);
    window.history.replaceState(null, "", url.toString());
    drawTabs();
    return loadList();
  }

  // The suggested party of a dispatch-queue row, whatever the row calls it.
  function preview(row) { return row.suggestion || row.dispatch_preview || null; }

  function due(row) {
    return state.queue === "verify" ? row.verify_due_at || row.due_at
         : state.queue === "check" ? row.check_due_at || row.due_at
         : row.due_at || row.deadline_at;
  }

  function drawRow(row) {
    var li = el("li"); li.dataset.caseId = row.case_id;
    var head = el("div", "cg-row-head");
    var link = el("a", null, "#" + row.case_id); link.href = "/cases/" + row.case_id;
    head.appendChild(link);
    head.appendChild(el("strong", null, (row.class_code || "—") + " " + (row.class_name || "unclassified 未分类")));
    head.appendChild(el("span", "cg-meta", [row.status, row.source, cg.when(row.reported_at)].filter(Boolean).join(" · ")));
    var left = cg.countdown(due(row));
    if (due(row)) {
      var clock = el("span", left.className + " cg-countdown", left.text);
      clock.dataset.due = due(row);
      head.appendChild(clock);
    }
    if (row.distance_m != null) { head.appendChild(el("span", "cg-meta", Math.round(row.distance_m) + " m")); }
    li.appendChild(head);
    if (row.description) { li.appendChild(el("p", "cg-row-text", String(row.description).slice(0, 200))); }
    var meta = [row.unit_grid_code && "grid " + row.unit_grid_code, row.level && "level " + row.level,
                row.dispatched_to && "→ " + (row.dispatched_to.name || row.dispatched_to.code)].filter(Boolean);
    var top = row.classification && row.classification.top;
    if (top && top.length) {
      meta.push("classifier: " + top.map(function (t) { return t.code + " " + Math.round((t.probability || 0) * 100) + "%"; }).join(", "));
    }
    var p = preview(row);
    if (p && p.party) {
      meta.push("suggested 建议 → " + p.party.name + " (" + (p.level || "") + " level, due " + cg.when(p.deadline_at) + ")");
    } else if (p) {
      meta.push("no suggested party 无建议单位: " + (p.reason || p.problem || ""));
    }
    var v = row.verification;
    if (v && v.required && !v.verified) {
      meta.push(v.pending ? "verification asked for 待核实" : "to be verified before filing 须先核实");
    }
    if (meta.length) { li.appendChild(el("div", "cg-meta", meta.join(" · "))); }
    if (row.thumb_url) {
      li.appendChild(cg.photoThumbs([{ url: row.thumb_url.replace(/\/thumb$/, ""), thumb_url: row.thumb_url,
                                       photo_id: row.photo_count + " photo(s)" }]));
    }
    var actions = el("div", "cg-actions", "…");
    li.appendChild(actions);
    cg.api("/api/v1/cases/" + row.case_id).then(function (r) {
      cg.actionButtons(actions, r.body, { suggested: p, onDone: refreshNow });
    }, function (err) { actions.textContent = err.message; });
    if (row.lon != null && row.lat != null) {
      var marker = L.circleMarker([row.lat, row.lon], { radius: 7, weight: 1, color: "#222", fillOpacity: 0.9,
        fillColor: left.className === "cg-overdue" ? "#b91c1c" : "#4363d8" });
      marker.bindTooltip(document.createTextNode("#" + row.case_id + " " + (row.class_name || "")));  // a string would be read as markup
      marker.on("click", function () { li.scrollIntoView({ block: "nearest" }); li.classList.add("cg-selected"); });
      markers.addLayer(marker);
    }
    return li;
  }

  function drawList(body) {
    ui.rows.textContent = ""; markers.clearLayers();
    var counts = body.counts || {}, capped = body.counts_at_least || [], rows = body.cases || [];
    function count(k) { return shown(counts[k], capped.indexOf(k) >= 0); }
    ui.status.textContent = count("total") + " cases 件" + (counts.overdue ? ", " + count("overdue") + " overdue 超时" : "") +
                            (counts.due_soon ? ", " + count("due_soon") + " due soon 即将到期" : "");
    rows.forEach(function (row) { ui.rows.appendChild(drawRow(row)); });
    if (!rows.length) { ui.rows.appendChild(el("li", "cg-meta", "no cases in this queue 暂无案件")); }
    var total = counts.total || 0, more = capped.indexOf("total") >= 0;
    // A capped total says only that there are more: the page's own rows tell where it ends.
    ui.page.textContent = rows.length ? (state.offset + 1) + "–" + (state.offset + rows.length) + " / " + count("total") : "";
    ui.prev.disabled = state.offset === 0;
    ui.next.disabled = more ? rows.length < LIMIT : state.offset + LIMIT >= total;
    fitToRows();
  }

  // The map shows the page's cases (the district when there are none).
  function fitToRows() {
    var points = markers.getLayers();
    map.invalidateSize(false);
    if (points.length) { map.fitBounds(L.featureGroup(points).getBounds().pad(0.2), { maxZoom: 16 }); }
  }

  // One poll: the list with If-None-Match (unchanged: nothing to do), then the tab counts.
  function loadList() {
    if (!state.queue) {
      ui.status.textContent = "no work queue for this account 当前账号没有工作队列";
      cg.ready = true;
      return Promise.resolve();
    }
    var headers = state.etag ? { "If-None-Match": state.etag } : {};
    var asked = state.queue + "?" + filters().toString();
    return cg.api("/api/v1/desk/" + asked, { headers: headers }).then(function (r) {
      if (asked !== state.queue + "?" + filters().toString()) { return; }  // the filters changed meanwhile
      var tag = r.headers.get("ETag");
      // Redraw only what changed (two loads crossing each other bring the same list), and never under the
      // user's hands: while an action's form is open the list waits (its tag is not kept, so the next poll
      // brings it again).
      if (r.status !== 304 && !(tag && tag === state.etag) && !ui.rows.querySelector(".cg-action-form")) {
        state.etag = tag;
        drawList(r.body || {});
      }
      cg.ready = true;
    }, function (err) { ui.status.textContent = err.message; ui.status.className = "cg-status cg-error"; cg.ready = true; });
  }

  // Countdowns move on between redraws (a 304 redraws nothing).
  function tick() {
    Array.prototype.forEach.call(ui.rows.querySelectorAll(".cg-countdown"), function (clock) {
      var left = cg.countdown(clock.dataset.due);
      clock.textContent = left.text; clock.className = left.className + " cg-countdown";
    });
  }

  function poll() {
    tick();
    if (state.busy || document.hidden) { return; }
    state.busy = true;
    Promise.all([loadQueues().catch(function () {}), loadList()]).then(function () { state.busy = false; },
                                                                       function () { state.busy = false; });
  }

  // After an action: forget the ETag and redraw at once.
  function refreshNow() {
    state.etag = null;
    return Promise.all([loadQueues().catch(function () {}), loadList()]);
  }

  function refilter() { state.offset = 0; state.etag = null; loadList(); }
  ["class", "start", "end", "team"].forEach(function (id) { ui[id].addEventListener("change", refilter); });
  ["unit_grid", "supervision_grid"].forEach(function (id) { ui[id].addEventListener("change", refilter); });
  if (ui.district) { ui.district.addEventListener("change", function () { fillTeams(); refilter(); }); }
  ui.near.addEventListener("change", function () {
    if (!ui.near.checked) { state.near = null; refilter(); return; }
    if (!navigator.geolocation) { ui.status.textContent = "this browser cannot tell its location"; ui.near.checked = false; return; }
    navigator.geolocation.getCurrentPosition(function (pos) {
      state.near = [pos.coords.longitude, pos.coords.latitude];  // WGS84 from the device
      refilter();
    }, function (err) { ui.near.checked = false; ui.status.textContent = "location unavailable: " + err.message; },
    { enableHighAccuracy: true, timeout: 10000 });
  });
  ui.prev.addEventListener("click", function () { state.offset = Math.max(0, state.offset - LIMIT); state.etag = null; loadList(); });
  ui.next.addEventListener("click", function () { state.offset += LIMIT; state.etag = null; loadList(); });

  function fillTeams() {
    var per = (cg.data.per_district || {})[ui.district ? ui.district.value : ""] || {};
    while (ui.team.options.length > 1) { ui.team.remove(1); }
    (per.teams || []).forEach(function (t) {
      var option = el("option", null, t.name); option.value = t.code; ui.team.appendChild(option);
    });
  }

  // Filters given in the page's address (a link to "my grid's cases in the check queue").
  ["start", "end", "unit_grid", "supervision_grid", "team"].forEach(function (name) {
    if (params.get(name)) { ui[name].value = params.get(name); }
  });
  if (params.get("class")) { ui.class.value = params.get("class"); }

  fillTeams();
  if (params.get("team")) { ui.team.value = params.get("team"); }
  if (ui.district) { cg.boundary(map, ui.district.value).then(fitToRows, function () {}); }
  loadQueues().then(function () { return loadList(); }, function (err) {
    ui.status.textContent = err.message; ui.status.className = "cg-status cg-error"; cg.ready = true;
  });
  setInterval(poll, POLL_MS);
})();

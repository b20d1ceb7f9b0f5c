// One case (GET /api/v1/cases/<id>): its point, unit grid outline and component on the map; class, text,
// photos (thumbnails opening the full photo), owners per role at report time, the responsible party and the
// deadline's countdown, the complainant (only when the API gave it: acceptors, dispatchers, call-takers), the
// timeline (who, role, when in the deployment's zone, note, photos) and the account's actions (my_actions),
// after which the case is read again. A refusal (403/404) is shown as its message.
(function () {
  "use strict";
  var cg = window.citygrid, map = cg.map, el = cg.element;
  var id = cg.data.case_id;
  var ui = {};
  ["status", "summary-box", "photos", "photos-box", "owners", "contact-box", "complainant", "actions", "timeline",
   "title"].forEach(function (name) { ui[name] = document.getElementById(name); });
  var drawn = L.featureGroup().addTo(map);
  var placed = false;
  cg.basemap(map);
  cg.ready = false;

  var ROLES = [["management", "Management 管理主体"], ["responsibility", "Responsibility 责任主体"],
               ["enforcement", "Enforcement 执法主体"], ["supervision", "Supervision 监督主体"]];

  function summary(c) {
    var attrs = c.attrs || {}, to = attrs.dispatched_to || {};
    var left = cg.countdown(c.deadline_at);
    var props = {
      status: c.status, cls: (c.class_code || "—") + " " + (c.class_name || "unclassified 未分类") + " (" + c.kind + ")",
      source: c.source, reported: cg.when(c.reported_at), description: c.description, address: attrs.address,
      grid: c.unit_grid_code, supervision: c.supervision_code, level: attrs.level || c.level,
      party: to.name ? to.name + " (" + (to.kind || "") + " " + (to.code || "") + ")" : null,
      deadline: c.deadline_at ? cg.when(c.deadline_at) + " — " + left.text : null,
      verify_due: c.verify_due_at ? cg.when(c.verify_due_at) : null,
      check_due: c.check_due_at ? cg.when(c.check_due_at) : null,
      component: c.component_obj_id
    };
    var box = cg.fields(props, [["status", "Status 状态"], ["cls", "Class 类别"], ["source", "Source 来源"],
      ["reported", "Reported 上报"], ["description", "Description 描述"], ["address", "Address 地址"],
      ["grid", "Unit grid 单元网格"], ["supervision", "Supervision grid 监督网格"], ["level", "Level 层级"],
      ["party", "Responsible party 责任单位"], ["deadline", "Deadline 处置时限"], ["verify_due", "Verify by 核实时限"],
      ["check_due", "Check by 核查时限"], ["component", "Component 部件"]]);
    if (c.synthetic) { ui["summary-box"].appendChild(el("p", "cg-synthetic", "SYNTHETIC demo case")); }
    if (left.className === "cg-overdue" && c.deadline_at) { box.classList.add("cg-is-overdue"); }
    ui["summary-box"].appendChild(box);
  }

  function owners(c) {
    var o = c.owners || {};
    var props = {};
    ROLES.forEach(function (r) { props[r[0]] = o[r[0]] ? o[r[0]].name : null; });
    ui.owners.textContent = "";
    ui.owners.appendChild(cg.fields(props, ROLES));
  }

  function complainant(c) {
    ui["contact-box"].hidden = !c.complainant;
    ui.complainant.textContent = "";
    if (c.complainant) {
      ui.complainant.appendChild(cg.fields(c.complainant, [["name", "Name 姓名"], ["phone", "Phone 电话"]]));
    }
  }

  function timeline(c) {
    var byId = {};
    (c.photos || []).forEach(function (p) { byId[p.photo_id] = p; });
    ui.timeline.textContent = "";
    (c.events || []).forEach(function (e) {
      var li = el("li");
      li.dataset.action = e.action;
      var who = (e.person_name ? e.person_name + " / " : "") + (e.actor || "—") + " (" + (e.role || "—") + ")";
      li.appendChild(el("strong", null, e.action + (e.from_status && e.to_status && e.from_status !== e.to_status
        ? " " + e.from_status + " → " + e.to_status : "")));
      li.appendChild(el("div", "cg-meta", cg.when(e.at) + " · " + who));
      if (e.note) { li.appendChild(el("div", "cg-row-text", e.note)); }
      var photos = (e.photo_ids || []).map(function (pid) { return byId[pid]; }).filter(Boolean);
      if (photos.length) { li.appendChild(cg.photoThumbs(photos)); }
      ui.timeline.appendChild(li);
    });
  }

  function drawMap(c) {
    drawn.clearLayers();
    if (c.lon == null) { return; }
    L.circleMarker([c.lat, c.lon], { radius: 9, weight: 2, color: "#fff", fillColor: "#b91c1c", fillOpacity: 1 })
      .bindTooltip(document.createTextNode("#" + c.case_id)).addTo(drawn);
    var waits = [];
    if (c.unit_grid_code) {
      waits.push(cg.api("/api/v1/grids/" + encodeURIComponent(c.unit_grid_code)).then(function (r) {
        L.geoJSON(r.body, { style: { color: "#1f3b57", weight: 2, fillOpacity: 0.05 }, interactive: false }).addTo(drawn);
      }).catch(function () {}));
    }
    if (c.component_obj_id) {
      waits.push(cg.api("/api/v1/components/" + encodeURIComponent(c.component_obj_id)).then(function (r) {
        var versions = (r.body && (r.body.versions || r.body.history)) || [r.body];
        var v = versions[0];
        if (v && v.lon != null) {
          L.circleMarker([v.lat, v.lon], { radius: 6, color: "#222", fillColor: "#f58231", fillOpacity: 1 })
            .bindTooltip(document.createTextNode("component " + c.component_obj_id)).addTo(drawn);  // text, not markup
        }
      }).catch(function () {}));
    }
    return Promise.all(waits).then(function () {
      if (!placed) { map.invalidateSize(false); map.fitBounds(drawn.getBounds().pad(0.3), { maxZoom: 17 }); placed = true; }
    });
  }

  function load() {
    cg.ready = false;
    return cg.api("/api/v1/cases/" + id).then(function (r) {
      var c = r.body;
      ui.status.textContent = ""; ui.status.className = "cg-status";
      ui["summary-box"].textContent = "";
      ui.title.textContent = "Case 案件 #" + c.case_id + " — " + c.status;
      summary(c); owners(c); complainant(c); timeline(c);
      ui.photos.textContent = "";
      ui.photos.appendChild(cg.photoThumbs(c.photos));
      if (!(c.photos || []).length) { ui.photos.appendChild(el("span", "cg-meta", "no photos 暂无照片")); }
      cg.actionButtons(ui.actions, c, { suggested: c.dispatch_preview || null, onDone: load });
      return drawMap(c);
    }).then(function () { cg.ready = true; }, function (err) {
      ui.status.textContent = err.message; ui.status.className = "cg-status cg-error";
      ui.status.setAttribute("role", "alert");
      cg.ready = true;
    });
  }

  load();
})();

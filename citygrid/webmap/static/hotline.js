// The call-taker's hotline form: the place through the gazetteer (GET /api/v1/search: addresses, grid codes) or
// a click on the map, the caller's name and phone (stored apart from the case, shown only to acceptors,
// dispatchers and call-takers), the description with the classifier's suggestion and the class; sent once as
// a hotline report with an idempotency key (intake.js).
(function () {
  "use strict";
  var cg = window.citygrid, map = cg.map, el = cg.element;
  var ui = {};
  ["hotline-form", "caller-name", "caller-phone", "address", "find", "places", "where", "description", "suggestion",
   "class-search", "class", "submit", "retry", "new-report", "result", "district"].forEach(function (id) {
    ui[id] = document.getElementById(id);
  });
  cg.basemap(map);
  var point = cg.pointPicker(ui.where);
  var classes = cg.classChooser(ui["class-search"], ui["class"], ui.description, ui.suggestion);
  var placeLabel = "";

  function find() {
    var q = ui.address.value.trim();
    ui.places.textContent = "";
    if (!q) { return; }
    cg.api("/api/v1/search?district=" + encodeURIComponent(ui.district.value) + "&q=" + encodeURIComponent(q)).then(function (r) {
      var results = ((r.body && r.body.results) || []).filter(function (p) { return p.lon != null && p.kind !== "case"; });
      if (!results.length) { ui.places.appendChild(el("li", "cg-meta", "nothing found 未找到: " + q)); return; }
      results.slice(0, 8).forEach(function (p) {
        var li = el("li", null, p.label + (p.kind ? " (" + p.kind + ")" : ""));
        li.tabIndex = 0;
        var pick = function () {
          placeLabel = p.label;
          map.setView([p.lat, p.lon], Math.max(map.getZoom(), 16));
          point.set(p.lon, p.lat, p.label);
          ui.places.textContent = "";
        };
        li.addEventListener("click", pick);
        li.addEventListener("keydown", function (e) { if (e.key === "Enter") { pick(); } });
        ui.places.appendChild(li);
      });
    }, function (err) { ui.places.appendChild(el("li", "cg-error", err.message)); });
  }
  ui.find.addEventListener("click", find);
  ui.address.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); find(); } });

  function build() {
    if (!point.lonlat) { return { error: "find the address or click the map 请查找地址或点击地图" }; }
    var description = ui.description.value.trim();
    if (!description) { return { error: "describe the problem 请填写描述" }; }
    var name = ui["caller-name"].value.trim(), phone = ui["caller-phone"].value.trim();
    var report = Object.assign({ lon: point.lonlat[0], lat: point.lonlat[1], description: description,
                                 source: "hotline" }, classes.value());
    if (placeLabel) { report.address = placeLabel; }
    if (name || phone) { report.complainant = { name: name, phone: phone }; }
    return { body: report };
  }

  cg.reportSender({ storageKey: "citygrid-hotline-key", build: build,
                    ui: { form: ui["hotline-form"], submit: ui.submit, retry: ui.retry, again: ui["new-report"], result: ui.result },
                    onReset: function () { point.clear(); classes.reset(); placeLabel = ""; ui.places.textContent = ""; } });

  cg.boundary(map, ui.district.value).then(function () { map.invalidateSize(false); cg.ready = true; }, function () { cg.ready = true; });
})();

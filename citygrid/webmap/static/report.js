// The supervisor's report form, phone first (390 px): the point by GPS or a tap on the map (the unit grid shown
// as it moves), the description with the classifier's suggestion, the class picker, photos from the camera with
// previews, and ONE multipart request (a `report` JSON part and `photo` parts) with an idempotency key kept in
// sessionStorage until the case is made (intake.js).
(function () {
  "use strict";
  var cg = window.citygrid, map = cg.map, el = cg.element;
  var ui = {};
  ["report-form", "locate", "where", "description", "suggestion", "class-search", "class", "photos", "previews",
   "submit", "retry", "new-report", "result"].forEach(function (id) { ui[id] = document.getElementById(id); });
  var MAX_PHOTOS = 10;
  cg.basemap(map);
  var point = cg.pointPicker(ui.where);
  var classes = cg.classChooser(ui["class-search"], ui["class"], ui.description, ui.suggestion);
  var previews = [];

  function showPreviews() {
    previews.forEach(function (url) { URL.revokeObjectURL(url); });
    previews = [];
    ui.previews.textContent = "";
    Array.prototype.slice.call(ui.photos.files || [], 0, MAX_PHOTOS).forEach(function (file) {
      var url = URL.createObjectURL(file);
      previews.push(url);
      var img = el("img"); img.src = url; img.alt = file.name;
      ui.previews.appendChild(img);
    });
    if ((ui.photos.files || []).length > MAX_PHOTOS) {
      ui.previews.appendChild(el("span", "cg-error", "at most " + MAX_PHOTOS + " photos 最多 10 张"));
    }
  }
  ui.photos.addEventListener("change", showPreviews);
  ui.locate.addEventListener("click", point.locate);

  function build() {
    if (!point.lonlat) { return { error: "place the report: locate or tap the map 请定位或点击地图" }; }
    var description = ui.description.value.trim();
    if (!description) { return { error: "describe the problem 请填写描述" }; }
    var files = Array.prototype.slice.call(ui.photos.files || []);
    if (files.length > MAX_PHOTOS) { return { error: "at most " + MAX_PHOTOS + " photos 最多 10 张" }; }
    var report = Object.assign({ lon: point.lonlat[0], lat: point.lonlat[1], description: description,
                                 source: "supervisor" }, classes.value());
    var form = new FormData();
    form.append("report", JSON.stringify(report));
    files.forEach(function (f) { form.append("photo", f, f.name); });
    return { body: form };
  }

  cg.reportSender({ storageKey: "citygrid-report-key", build: build,
                    ui: { form: ui["report-form"], submit: ui.submit, retry: ui.retry, again: ui["new-report"], result: ui.result },
                    onReset: function () { point.clear(); classes.reset(); showPreviews(); ui.where.textContent = "Tap the map or locate 点击地图或定位"; } });

  var district = document.getElementById("district");
  cg.boundary(map, district.value).then(function () { map.invalidateSize(false); cg.ready = true; }, function () { cg.ready = true; });
})();

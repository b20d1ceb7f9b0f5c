// The report forms' shared parts (report.js: supervisor, hotline.js: call-taker): the point on the map (a tap,
// GPS or a found address) with the unit grid under it (GET /api/v1/grids/at), the class picker with search
// and the classifier's suggestion, and sending the report ONCE: one request with an Idempotency-Key made once per
// form and kept in sessionStorage until the case is made, so a retry after a timeout or a lost answer (even
// after a reload) resends the same key and cannot make a second case; a visible "sending…", a retry button,
// no double submit.
(function () {
  "use strict";
  var cg = window.citygrid, map = cg.map, el = cg.element;

  // The point of the report (WGS84 lon/lat), drawn on the map, with the unit grid shown in `where`.
  cg.pointPicker = function (where) {
    var marker = null, asked = 0, picker = { lonlat: null, grid: null };
    picker.set = function (lon, lat, label) {
      picker.lonlat = [lon, lat];
      if (marker) { marker.setLatLng([lat, lon]); } else {
        marker = L.marker([lat, lon], { draggable: true, keyboard: false }).addTo(map);
        marker.on("dragend", function () { var p = marker.getLatLng(); picker.set(p.lng, p.lat); });
      }
      var mine = ++asked;
      where.textContent = (label ? label + " — " : "") + lon.toFixed(6) + ", " + lat.toFixed(6) + " …";
      where.className = "cg-where";
      cg.api("/api/v1/grids/at?lon=" + lon.toFixed(7) + "&lat=" + lat.toFixed(7)).then(function (r) {
        if (mine !== asked) { return; }
        var found = r.body || {};
        picker.grid = found.code || null;
        var card = found.card || {};
        where.textContent = found.code
          ? (label ? label + " — " : "") + "unit grid 单元网格 " + found.code + " (" + (card.community_name || card.street_name || "") + ")"
          : found.message || "no unit grid here 此处不在任何网格内";
        where.className = found.code ? "cg-where" : "cg-where cg-error";
      }, function (err) { if (mine === asked) { where.textContent = err.message; where.className = "cg-where cg-error"; } });
    };
    map.on("click", function (e) { picker.set(e.latlng.lng, e.latlng.lat); });
    picker.locate = function () {
      if (!navigator.geolocation) { where.textContent = "this browser cannot tell its location"; return; }
      where.textContent = "locating… 定位中";
      navigator.geolocation.getCurrentPosition(function (pos) {
        map.setView([pos.coords.latitude, pos.coords.longitude], Math.max(map.getZoom(), 17));
        picker.set(pos.coords.longitude, pos.coords.latitude, "GPS ±" + Math.round(pos.coords.accuracy) + " m");
      }, function (err) { where.textContent = "location unavailable 无法定位: " + err.message; where.className = "cg-where cg-error"; },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 30000 });
    };
    picker.clear = function () {
      if (marker) { map.removeLayer(marker); marker = null; }
      picker.lonlat = null; picker.grid = null;
    };
    return picker;
  };

  // The class picker: a search box over the taxonomy, a list, and the classifier's suggestion for the
  // description (taken unless the user chose a class themself).
  cg.classChooser = function (search, select, description, suggestion) {
    var chosenByUser = false;
    cg.fillClasses(select, "");
    select.value = "";
    search.addEventListener("input", function () { cg.fillClasses(select, search.value); });
    select.addEventListener("change", function () { chosenByUser = true; });
    cg.classifyAsYouType(description, function (verdict) {
      suggestion.textContent = "";
      if (!verdict) { return; }
      if (!verdict.classified || !verdict["class"]) {
        suggestion.textContent = "no class suggested 无建议类别" + (verdict.reason ? ": " + verdict.reason : "");
        return;
      }
      var c = verdict["class"], value = c.kind + "/" + c.code;
      suggestion.textContent = "suggested 建议: " + c.code + " " + c.name + " (" +
        Math.round((c.probability || 0) * 100) + "%)";
      if (!chosenByUser) { cg.fillClasses(select, search.value, value); select.value = value; }
    });
    return {
      value: function () {
        var parts = (select.value || "").split("/");
        return parts.length === 2 ? { kind: parts[0], class_code: parts[1] } : {};
      },
      reset: function () { chosenByUser = false; search.value = ""; cg.fillClasses(select, ""); select.value = ""; suggestion.textContent = ""; }
    };
  };

  // Sends a report once. options: storageKey (sessionStorage), build() -> {body: FormData|object, error}, ui:
  // {form, submit, retry, again, result}, onReset(). The key is made when the form first sends and dropped
  // only when a case came back.
  cg.reportSender = function (options) {
    var ui = options.ui, sending = false;
    var key = function () {
      var k = sessionStorage.getItem(options.storageKey);
      if (!k) { k = cg.newKey(); sessionStorage.setItem(options.storageKey, k); }
      return k;
    };
    function show(text, className) { ui.result.textContent = text; ui.result.className = "cg-result " + (className || ""); }

    function done(r) {
      var made = (r.body && r.body.case) || {};
      sessionStorage.removeItem(options.storageKey);
      ui.result.textContent = "";
      ui.result.className = "cg-result";
      ui.result.appendChild(document.createTextNode((r.body.outcome === "created" ? "Case created 已立案编号 " :
        "Recorded as 已记录为 ") + "#" + made.case_id + " (" + (made.status || "") + ") "));
      var link = el("a", null, "open case 查看案件"); link.href = "/cases/" + made.case_id; link.id = "case-link";
      ui.result.appendChild(link);
      ui.result.dataset.caseId = made.case_id;
      ui.submit.hidden = true; ui.retry.hidden = true; ui.again.hidden = false;
    }

    function send() {
      if (sending) { return; }
      var built = options.build();
      if (built.error) { show(built.error, "cg-error"); return; }
      sending = true;
      ui.submit.disabled = true; ui.retry.hidden = true;
      ui.form.setAttribute("aria-busy", "true");
      show("sending… 发送中", "cg-sending");
      var request = built.body instanceof FormData ? { form: built.body } : { json: built.body };
      cg.api("/api/v1/cases", Object.assign({ method: "POST", headers: { "Idempotency-Key": key() }, timeoutMs: 60000 },
                                            request)).then(done, function (err) {
        // No answer, or the server failed: the same key goes again with Retry. A refusal (4xx) says why; the
        // report is corrected and sent again (a 4xx stored nothing, so the key is still free).
        show(err.message, "cg-error");
        ui.retry.hidden = !(err.status === 0 || err.status >= 500 || err.status === 429);
        ui.submit.disabled = false;
      }).then(function () { sending = false; ui.form.removeAttribute("aria-busy"); });
    }

    ui.form.addEventListener("submit", function (event) { event.preventDefault(); send(); });
    ui.retry.addEventListener("click", send);
    ui.again.addEventListener("click", function () {
      sessionStorage.removeItem(options.storageKey);
      ui.form.reset(); show("");
      ui.submit.hidden = false; ui.submit.disabled = false; ui.again.hidden = true; ui.retry.hidden = true;
      options.onReset();
    });
    return { send: send };
  };
})();

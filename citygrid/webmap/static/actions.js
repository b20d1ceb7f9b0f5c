// Shared by the desk pages (desk, case, report, hotline): writes to the API with the session's CSRF token, the
// API's own message on failure, times in the deployment's zone, deadline countdowns, the class picker and the
// forms of a case's actions (GET /api/v1/cases/<id> → my_actions: only what the account may do now).
// Text is inserted with textContent only.
(function () {
  "use strict";
  var cg = window.citygrid;
  var el = cg.element;

  // The session's CSRF token (the sign-out form carries it): every unsafe request of a session needs it.
  cg.csrf = function () {
    var field = document.querySelector("#signout input[name=csrf_token]");
    return field ? field.value : "";
  };

  // The message of an API error body: its message, then each detail's field and reason.
  cg.errorText = function (body, status) {
    if (!body || typeof body !== "object") { return "the server answered " + status; }
    var text = body.message || body.error || ("the server answered " + status);
    (body.details || []).slice(0, 8).forEach(function (d) {
      if (d && d.reason && text.indexOf(d.reason) < 0) { text += " — " + (d.field ? d.field + ": " : "") + d.reason; }
    });
    return text;
  };

  // fetch() an API URL; resolves with {status, body, headers}; rejects with an Error whose message is the API's
  // (err.status set; 0 when the request never got an answer). options: method, json (a body to send as JSON),
  // form (a FormData), headers, timeoutMs.
  cg.api = function (url, options) {
    options = options || {};
    var headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    var init = { method: options.method || "GET", headers: headers, credentials: "same-origin" };
    if (init.method !== "GET") { headers["X-CSRF-Token"] = cg.csrf(); }
    if (options.json !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(options.json); }
    if (options.form) { init.body = options.form; }
    var timer = null;
    if (options.timeoutMs && window.AbortController) {
      var abort = new AbortController();
      init.signal = abort.signal;
      timer = setTimeout(function () { abort.abort(); }, options.timeoutMs);
    }
    return fetch(url, init).then(function (r) {
      if (timer) { clearTimeout(timer); }
      if (r.status === 304) { return { status: 304, body: null, headers: r.headers }; }
      return r.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        if (!r.ok) {
          var err = new Error(body ? cg.errorText(body, r.status) : (url + " → " + r.status));
          err.status = r.status; err.body = body;
          throw err;
        }
        return { status: r.status, body: body, headers: r.headers };
      });
    }, function (failure) {
      if (timer) { clearTimeout(timer); }
      var err = new Error(failure && failure.name === "AbortError" ? "no answer in time (slow connection?)"
                          : "the request did not reach the server: " + (failure && failure.message || failure));
      err.status = 0;
      throw err;
    });
  };

  // An instant as text in the deployment's zone (cg.data.zone), e.g. 2026-12-07 09:30 (Asia/Shanghai).
  var formatter = null;
  cg.when = function (iso) {
    if (!iso) { return "—"; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso); }
    if (!formatter) {
      try {
        formatter = new Intl.DateTimeFormat("sv-SE", { timeZone: cg.data.zone || undefined, year: "numeric",
          month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false });
      } catch (e) { formatter = new Intl.DateTimeFormat("sv-SE", { dateStyle: "short", timeStyle: "short" }); }
    }
    return formatter.format(d);
  };

  // "2 d 3 h left" / "overdue by 40 min" for a deadline; {text, className}.
  cg.countdown = function (iso) {
    if (!iso) { return { text: "no deadline", className: "" }; }
    var ms = new Date(iso).getTime() - Date.now();
    var minutes = Math.round(Math.abs(ms) / 60000), days = Math.floor(minutes / 1440),
        hours = Math.floor((minutes % 1440) / 60), mins = minutes % 60;
    var span = (days ? days + " d " : "") + (days || hours ? hours + " h" : mins + " min");
    if (ms < 0) { return { text: "overdue by " + span + " 已超时", className: "cg-overdue" }; }
    return { text: span + " left 剩余", className: ms < 4 * 3600000 ? "cg-due-soon" : "" };
  };

  // Fill a <select> with the classes (cg.data.classes) matching a search text; value "kind/code".
  cg.fillClasses = function (select, query, keep) {
    var q = String(query || "").trim().toLowerCase();
    var current = keep || select.value;
    select.textContent = "";
    (cg.data.classes || []).forEach(function (c) {
      var label = c.code + " " + c.name + " (" + c.kind + ")";
      if (q && label.toLowerCase().indexOf(q) < 0 && (c.kind + "/" + c.code) !== current) { return; }
      var option = el("option", null, label);
      option.value = c.kind + "/" + c.code;
      select.appendChild(option);
    });
    if (current) { select.value = current; }
  };

  // The classifier's suggestion for a description, debounced: onResult(verdict) with the API's answer
  // ({classified, class, top, reason}); stale answers are dropped.
  cg.classifyAsYouType = function (textarea, onResult) {
    var timer = null, asked = 0;
    textarea.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var text = textarea.value.trim(), mine = ++asked;
        if (text.length < 2) { onResult(null); return; }
        cg.api("/api/v1/classify", { method: "POST", json: { text: text.slice(0, 5000) } }).then(function (r) {
          if (mine === asked) { onResult(r.body); }
        }, function (err) { if (mine === asked) { onResult({ classified: false, reason: err.message }); } });
      }, 400);
    });
  };

  // A new idempotency key (kept by the caller in sessionStorage so a retry resends it).
  cg.newKey = function () {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  };

  // Photo thumbnails (photo JSON of the API) that open the full photo.
  cg.photoThumbs = function (photos) {
    var box = el("div", "cg-photos");
    (photos || []).forEach(function (p) {
      var link = el("a"); link.href = p.url; link.target = "_blank"; link.rel = "noopener";
      var img = el("img"); img.src = p.thumb_url; img.alt = "photo " + p.photo_id; img.loading = "lazy";
      link.appendChild(img);
      var figure = el("figure", "cg-photo"); figure.appendChild(link);
      if (p.warning) { figure.appendChild(el("figcaption", "cg-photo-warning", p.warning)); }
      box.appendChild(figure);
    });
    return box;
  };

  // ------------------------------------------------------------------ the forms of a case's actions
  // Actions that carry evidence: their form always opens (a note and photos), even when nothing is required.
  var EVIDENCE = { verify: true, feed_back: true, check_pass: true, check_fail: true, add_photos: true };
  // Required notes (the API refuses these without a reason).
  var NOTE_REQUIRED = { reject: true, hand_back: true };
  var SATISFACTION = [["satisfied", "satisfied 满意"], ["basic", "basically satisfied 基本满意"],
                      ["unsatisfied", "not satisfied 不满意"]];

  function field(labelText, input) {
    var label = el("label", null, labelText);
    label.appendChild(input);
    return label;
  }

  // Another party of the case's district: a search (name or code, GET /api/v1/parties?q=) and a list; the first
  // choice is the rule's suggestion (no party_code sent).
  function partyPicker(kase, suggested) {
    var box = el("div", "cg-party");
    var search = el("input"); search.type = "search"; search.maxLength = 100; search.name = "party_search";
    search.placeholder = "search parties 搜索单位"; search.setAttribute("aria-label", "search parties");
    var select = el("select"); select.name = "party_code";
    var first = el("option", null, suggested && suggested.party
      ? "suggested 建议: " + suggested.party.name + " (" + (suggested.level || "") + ")" : "the suggested party 建议单位");
    first.value = "";
    var asked = 0, timer = null;
    function load() {
      var mine = ++asked, q = search.value.trim();
      cg.api("/api/v1/parties?limit=50&district=" + encodeURIComponent(kase.district_code) +
             (q ? "&q=" + encodeURIComponent(q) : "")).then(function (r) {
        if (mine !== asked) { return; }
        var keep = select.value;
        select.textContent = ""; select.appendChild(first);
        var list = Array.isArray(r.body) ? r.body : (r.body && (r.body.parties || r.body.results)) || [];
        list.forEach(function (p) {
          var option = el("option", null, p.name + " — " + p.kind + " (" + p.code + ")");
          option.value = p.code; select.appendChild(option);
        });
        select.value = keep;
        if (select.value !== keep) { select.value = list.length && q ? list[0].code : ""; }
      }, function (err) { if (mine === asked) { first.textContent = "parties: " + err.message; } });
    }
    search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(load, 300); });
    select.appendChild(first);
    load();
    box.appendChild(search); box.appendChild(select);
    return box;
  }

  // The inputs of one action's form, by its `needs` (and notes/photos where they belong).
  function inputsFor(step, kase, suggested) {
    var needs = step.needs || [], inputs = [];
    if (needs.indexOf("satisfaction") >= 0) {
      var sat = el("select"); sat.name = "satisfaction"; sat.required = true;
      SATISFACTION.forEach(function (s) { var o = el("option", null, s[1]); o.value = s[0]; sat.appendChild(o); });
      inputs.push(field("Satisfaction 满意度", sat));
    }
    if (needs.indexOf("class_code") >= 0) {
      var search = el("input"); search.type = "search"; search.placeholder = "search classes 搜索类别"; search.maxLength = 50;
      var pick = el("select"); pick.name = "class_code"; pick.required = true;
      cg.fillClasses(pick, "", kase.class_code ? kase.kind + "/" + kase.class_code : "");
      search.addEventListener("input", function () { cg.fillClasses(pick, search.value); });
      inputs.push(field("Class 类别", search), pick);
    }
    if (needs.indexOf("duplicate_of") >= 0) {
      var dup = el("input"); dup.name = "duplicate_of"; dup.type = "number"; dup.min = "1"; dup.step = "1"; dup.required = true;
      inputs.push(field("Duplicate of case no. 重复案件号", dup));
    }
    if (needs.indexOf("party_code") >= 0 || step.action === "dispatch") {
      inputs.push(field("Party 责任单位", partyPicker(kase, suggested)));
    }
    var note = el("textarea"); note.name = "note"; note.rows = 2; note.maxLength = 2000;
    note.required = needs.indexOf("note") >= 0 || !!NOTE_REQUIRED[step.action];
    inputs.push(field(note.required ? "Reason / note 原因（必填）" : "Note 备注", note));
    if (EVIDENCE[step.action] || needs.indexOf("photos") >= 0) {
      var photos = el("input"); photos.name = "photo"; photos.type = "file"; photos.accept = "image/*"; photos.multiple = true;
      photos.setAttribute("capture", "environment");
      inputs.push(field("Photos 照片", photos));
    }
    return inputs;
  }

  // The transition's body from a form; an Error naming the missing field when a required one is empty.
  function bodyOf(step, form, kase) {
    var body = { action: step.action, note: "", expected_version: kase.row_version };
    var value = function (name) { var f = form.querySelector("[name=" + name + "]"); return f ? f.value.trim() : ""; };
    body.note = value("note");
    if (form.querySelector("[name=note]") && form.querySelector("[name=note]").required && !body.note) {
      throw new Error("a reason is required 请填写原因");
    }
    if (form.querySelector("[name=satisfaction]")) { body.satisfaction = value("satisfaction"); }
    if (form.querySelector("[name=class_code]")) {
      var picked = value("class_code").split("/");
      if (picked.length !== 2) { throw new Error("choose a class 请选择类别"); }
      body.kind = picked[0]; body.class_code = picked[1];
    }
    if (form.querySelector("[name=duplicate_of]")) {
      var dup = value("duplicate_of");
      if (!/^[0-9]{1,12}$/.test(dup)) { throw new Error("the case number of the original case 请填写原案件号"); }
      body.duplicate_of = parseInt(dup, 10);
    }
    if (value("party_code")) { body.party_code = value("party_code"); }
    return body;
  }

  // POST the transition: JSON, or multipart (a `data` part holding the JSON and `photo` parts) with photos.
  cg.transition = function (kase, body, files) {
    var url = "/api/v1/cases/" + kase.case_id + "/transitions";
    if (!files || !files.length) { return cg.api(url, { method: "POST", json: body }); }
    var form = new FormData();
    form.append("data", JSON.stringify(body));
    Array.prototype.forEach.call(files, function (f) { form.append("photo", f, f.name); });
    return cg.api(url, { method: "POST", form: form, timeoutMs: 120000 });
  };

  function openForm(box, step, kase, options) {
    var old = box.querySelector(".cg-action-form");
    if (old) { old.remove(); }
    var form = el("form", "cg-action-form");
    form.noValidate = true;  // the form's own check says what is missing (in both languages), not a tooltip
    form.dataset.action = step.action;
    form.appendChild(el("strong", null, step.label + " (" + step.action + ")"));
    inputsFor(step, kase, options.suggested).forEach(function (i) { form.appendChild(i); });
    var error = el("p", "cg-error"); error.setAttribute("role", "alert");
    var send = el("button", null, step.label); send.type = "submit";
    var cancel = el("button", null, "Cancel 取消"); cancel.type = "button";
    cancel.addEventListener("click", function () { form.remove(); });
    var row = el("div", "cg-row"); row.appendChild(send); row.appendChild(cancel);
    form.appendChild(row); form.appendChild(error);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var body;
      try { body = bodyOf(step, form, kase); } catch (invalid) { error.textContent = invalid.message; return; }
      var photos = form.querySelector("[name=photo]");
      send.disabled = true; error.textContent = ""; send.textContent = "sending… 提交中";
      cg.transition(kase, body, photos ? photos.files : null).then(function (r) {
        form.remove();
        options.onDone(r.body);
      }, function (err) {
        send.disabled = false; send.textContent = step.label;
        error.textContent = err.message;
      });
    });
    box.appendChild(form);
    var first = form.querySelector("select, input, textarea");
    if (first) { first.focus(); }
  }

  // Buttons for `kase.my_actions` in `box`: an action with nothing to fill in (accept, request_verify, a
  // dispatch to the suggested party, close) runs at one click; the others open their form. options: onDone(case),
  // onError(message), suggested (dispatch preview {party, level, deadline_at}).
  cg.actionButtons = function (box, kase, options) {
    box.textContent = "";
    var steps = kase.my_actions || [];
    if (!steps.length) { box.appendChild(el("span", "cg-meta", "nothing for you to do on this case now 当前无可执行操作")); }
    var error = el("p", "cg-error"); error.setAttribute("role", "alert");
    steps.forEach(function (step) {
      var oneClick = !(step.needs || []).length && !EVIDENCE[step.action] && !NOTE_REQUIRED[step.action];
      var label = step.label + (step.action === "dispatch" && options.suggested && options.suggested.party
        ? " → " + options.suggested.party.name : "");
      var button = el("button", null, label);
      button.type = "button"; button.dataset.action = step.action; button.title = step.action;
      button.addEventListener("click", function () {
        if (!oneClick) { openForm(box, step, kase, options); return; }
        button.disabled = true; error.textContent = "";
        cg.transition(kase, { action: step.action, note: "", expected_version: kase.row_version }).then(function (r) {
          options.onDone(r.body);
        }, function (err) { button.disabled = false; error.textContent = err.message; });
      });
      box.appendChild(button);
      if (step.action === "dispatch") {
        var other = el("button", null, "another party… 其他单位");
        other.type = "button"; other.dataset.action = "dispatch-other";
        other.addEventListener("click", function () { openForm(box, step, kase, options); });
        box.appendChild(other);
      }
    });
    box.appendChild(error);
  };
})();

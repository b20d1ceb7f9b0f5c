// The evaluation page (/evaluation: analysts, leads, admins) and the public ranking (/rankings, no sign-in), #24.
// Reads GET /api/v1/evaluation (one kind at a time) or GET /api/v1/public/rankings; every text is inserted with
// textContent, so names from imports cannot inject markup.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("cg-data").textContent || "{}");
  var cg = window.citygrid = window.citygrid || {};  // cg.ready: the browser tests wait for each answer drawn
  var $ = function (id) { return document.getElementById(id); };
  var state = { kind: data.kinds[0], answer: null };
  var KIND_LABELS = { supervisors: "监督员 Supervisors", teams: "分队 Teams", units: "单位 Units",
                      streets: "街道 Streets", communities: "社区 Communities" };

  function pct(value) { return value == null ? "—" : (value * 100).toFixed(1) + "%"; }
  function cell(row, text) {
    var td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td;
  }
  function params() {
    return "district=" + encodeURIComponent($("district").value) + "&month=" + encodeURIComponent($("month").value);
  }

  function tabs(kinds) {
    var nav = $("kinds"); nav.textContent = "";
    kinds.forEach(function (kind) {
      var b = document.createElement("button");
      b.type = "button"; b.setAttribute("role", "tab"); b.dataset.kind = kind;
      b.textContent = KIND_LABELS[kind] || kind;
      b.setAttribute("aria-selected", String(kind === state.kind));
      b.addEventListener("click", function () { state.kind = kind; load(); });
      nav.appendChild(b);
    });
  }

  function render(part, definitions, synthetic, scoring) {
    var names = Object.keys(definitions);
    var head = document.querySelector("#ranking thead"); head.textContent = "";
    var body = document.querySelector("#ranking tbody"); body.textContent = "";
    var tr = document.createElement("tr");
    ["名次 rank", "名称 name", "得分 score", "等级 grade"].concat(names.map(function (n) {
      return definitions[n].label;
    })).forEach(function (t) { var th = document.createElement("th"); th.textContent = t; tr.appendChild(th); });
    head.appendChild(tr);
    part.forEach(function (row) {
      var r = document.createElement("tr");
      cell(r, row.rank == null ? "—" : String(row.rank));
      cell(r, row.name || "—");
      cell(r, row.score == null ? "—" : row.score.toFixed(1));
      cell(r, row.grade || "—");
      names.forEach(function (n) { cell(r, pct(row[n])); });
      if (row.inputs) { r.addEventListener("click", function () { showInputs(r, row, definitions); }); }
      body.appendChild(r);
    });
    $("synthetic").hidden = !synthetic;
    $("status").textContent = part.length ? part.length + " ranked this month 本月参评 " + part.length
      : "no activity this month 本月无数据";
    var defs = $("definitions"); defs.textContent = "";
    names.forEach(function (n) {
      var dt = document.createElement("dt"); dt.textContent = definitions[n].label + " " + n;
      var dd = document.createElement("dd");
      dd.textContent = definitions[n].definition + (definitions[n].better === "lower" ? " (scored as 1 − rate)" : "");
      defs.appendChild(dt); defs.appendChild(dd);
    });
    $("scoring").textContent = scoring ? "weights 权重: " + Object.keys(scoring.weights).map(function (k) {
      return k + " " + scoring.weights[k];
    }).join(", ") + " · grades 等级: " + Object.keys(scoring.grades).map(function (g) {
      return g + " ≥ " + scoring.grades[g];
    }).join(", ") + ", else " + scoring.fallback_grade + " — " + scoring.note : "";
    $("inputs").hidden = true;
    cg.ready = true;
  }

  function showInputs(tr, row, definitions) {
    document.querySelectorAll("#ranking tbody tr").forEach(function (x) { x.removeAttribute("aria-selected"); });
    tr.setAttribute("aria-selected", "true");
    var box = $("inputs"); box.textContent = ""; box.hidden = false;
    var h = document.createElement("h2"); h.textContent = row.name + " — score " +
      (row.score == null ? "—" : row.score.toFixed(2)) + " " + (row.grade || ""); box.appendChild(h);
    var list = document.createElement("ul");
    Object.keys(row.inputs).forEach(function (n) {
      var i = row.inputs[n];
      var li = document.createElement("li");
      li.textContent = (definitions[n] ? definitions[n].label : n) + ": rate " + pct(i.rate) + ", weight " + i.weight +
        (i.points == null ? " — no data this month, left out" : " (used " + i.weight_used.toFixed(1) + ") → " +
         i.points.toFixed(2) + " points");
      list.appendChild(li);
    });
    box.appendChild(list);
  }

  function fail(error) {
    $("status").textContent = "could not load 加载失败: " + error.message;
    document.querySelector("#ranking tbody").textContent = "";
    cg.ready = true;
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) { throw new Error(body.message || r.status); }
        return body;
      });
    });
  }

  function load() {
    if (!$("month").value) { return; }
    cg.ready = false;
    $("status").textContent = "loading 加载中…";
    if (data.public) {
      getJSON("/api/v1/public/rankings?" + params()).then(function (answer) {
        var kinds = answer.kind_order || Object.keys(answer.kinds);
        if (kinds.indexOf(state.kind) < 0) { state.kind = kinds[0]; }
        tabs(kinds);
        var part = answer.kinds[state.kind];
        render(part.rows, part.definitions, answer.synthetic, part.scoring);
      }).catch(fail);
      return;
    }
    tabs(data.kinds);
    $("report").href = "/api/v1/evaluation/report?" + params();
    $("csv").href = "/api/v1/evaluation?" + params() + "&kind=" + state.kind + "&format=csv";
    getJSON("/api/v1/evaluation?" + params() + "&kind=" + state.kind).then(function (answer) {
      render(answer.rows, answer.definitions, answer.synthetic, answer.scoring);
    }).catch(fail);
  }

  $("month").value = data.month;
  $("month").max = data.month_max;
  if (data.district) { $("district").value = data.district; }
  $("district").addEventListener("change", load);
  $("month").addEventListener("change", load);
  load();
}());

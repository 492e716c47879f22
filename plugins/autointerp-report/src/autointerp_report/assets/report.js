/* autointerp report: the latent table (sort, filter, pages) and latent cards loaded on demand.
   Data files are scripts that call window.AUTOINTERP.push(kind, fileNumber, items[, strings]):
   pages opened from file:// cannot fetch() JSON, but they can add <script> elements. */
(function () {
  "use strict";
  var META = window.AUTOINTERP_META;
  var PER_PAGE = 100;
  // row layout: [position, source id, index, explanation, frequency, max, failures, card file,
  //   ...scores, ...explanations of the second and later explainers (META.explainers)]
  var R = { pos: 0, src: 1, idx: 2, expl: 3, freq: 4, max: 5, fails: 6, file: 7, scores: 8 };
  var rows = [], lower = [], view = [];
  var cardFiles = {}, waiting = {}, requested = {};
  var page = 0, sortCol = 0, sortDir = 1, openPos = -1;
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function pad(n) { return ("000" + n).slice(-4); }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (Number.isInteger(v) && a < 1e6) return String(v);
    if (a < 1e-3 || a >= 1e5) return v.toExponential(2);
    return String(Number(v.toPrecision(3)));
  }
  var EXPLAINERS = META.explainers || [];
  // the table columns holding explanations: the first explainer's, then the others' after scores
  var EXPL_KEYS = EXPLAINERS.map(function (_, j) {
    return j === 0 ? R.expl : R.scores + META.scorers.length + j - 1;
  });
  if (!EXPL_KEYS.length) EXPL_KEYS = [R.expl];
  function explTexts(row) {
    return EXPL_KEYS.map(function (k) { return String(row[k] || ""); });
  }
  function latentName(row) {
    var idx = String(row[R.idx]);
    return META.sources.length > 1 ? META.sources[row[R.src]] + ":" + idx : idx;
  }

  window.AUTOINTERP = {
    push: function (kind, n, items, strings) {
      if (kind === "rows") {
        for (var i = 0; i < items.length; i++) {
          rows.push(items[i]);
          lower.push(explTexts(items[i]).join("\n").toLowerCase());
        }
      } else if (kind === "latents") {
        var byKey = {};
        items.forEach(function (c) { byKey[c.s + ":" + c.i] = c; });
        cardFiles[n] = { byKey: byKey, strings: strings || [] };
        (waiting[n] || []).forEach(function (f) { f(); });
        delete waiting[n];
      }
    }
  };

  function loadScript(src, done) {
    var s = el("script", { src: src });
    s.onload = done;
    s.onerror = function () {
      $("status").textContent = "cannot load " + src + " (is the report folder complete?)";
    };
    document.head.appendChild(s);
  }

  // -- columns ------------------------------------------------------------------------------
  var columns = [{ label: "latent", key: R.idx, num: true, render: latentName }];
  EXPL_KEYS.forEach(function (key, j) {
    var label = EXPLAINERS.length > 1 ? "explanation (" + EXPLAINERS[j] + ")" : "explanation";
    columns.push({ label: label, key: key, num: false, cls: "expl", expl: true });
  });
  META.scorers.forEach(function (name, k) {
    columns.push({ label: name, key: R.scores + k, num: true });
  });
  columns.push({ label: "frequency", key: R.freq, num: true });
  columns.push({ label: "max act.", key: R.max, num: true });
  columns.push({ label: "failures", key: R.fails, num: true });

  function buildHead() {
    var head = $("head");
    columns.forEach(function (c, i) {
      var th = el("th", { "data-col": i, title: "sort by " + c.label }, c.label);
      th.addEventListener("click", function () {
        if (sortCol === i) sortDir = -sortDir; else { sortCol = i; sortDir = c.num ? -1 : 1; }
        refresh(true);
      });
      head.appendChild(th);
    });
    var sel = $("min-scorer");
    META.scorers.forEach(function (name, k) { sel.appendChild(el("option", { value: k }, name)); });
    if (!META.scorers.length) sel.parentNode.hidden = true;
  }

  function compare(a, b) {
    var key = columns[sortCol].key, x = a[key], y = b[key];
    var xn = x === null || x === undefined, yn = y === null || y === undefined;
    if (xn || yn) return xn === yn ? a[R.pos] - b[R.pos] : (xn ? 1 : -1); // blanks last
    if (x < y) return -sortDir;
    if (x > y) return sortDir;
    return a[R.pos] - b[R.pos];
  }

  function refresh(resetPage) {
    var q = $("filter").value.trim().toLowerCase();
    var asIndex = /^\d+$/.test(q) ? Number(q) : null;
    var onlyFail = $("only-failures").checked;
    var minText = $("min-score").value, min = minText === "" ? null : Number(minText);
    var minKey = R.scores + Number($("min-scorer").value || 0);
    view = [];
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (q && !(asIndex !== null && r[R.idx] === asIndex) && lower[i].indexOf(q) < 0) continue;
      if (onlyFail && !r[R.fails]) continue;
      if (min !== null && !(r[minKey] !== null && r[minKey] >= min)) continue;
      view.push(r);
    }
    view.sort(compare);
    if (resetPage) page = 0;
    renderPage();
  }

  function renderPage() {
    var pages = Math.max(1, Math.ceil(view.length / PER_PAGE));
    page = Math.min(Math.max(0, page), pages - 1);
    var body = $("rows"), frag = document.createDocumentFragment();
    view.slice(page * PER_PAGE, (page + 1) * PER_PAGE).forEach(function (r) {
      var tr = el("tr", { "data-pos": r[R.pos] });
      if (r[R.pos] === openPos) tr.className = "open";
      columns.forEach(function (c) {
        var v = r[c.key];
        var td = el("td", c.num ? { "class": "num" } : { "class": c.cls || "" },
          c.render ? c.render(r) : (c.num ? fmt(v) : v));
        if (c.key === R.fails && v) td.className += " fail";
        if (c.expl && !v) { td.textContent = "no explanation"; td.className += " more"; }
        tr.appendChild(td);
      });
      tr.addEventListener("click", function () { openLatent(r); });
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    $("page").textContent = "page " + (page + 1) + " of " + pages + " (" +
      view.length.toLocaleString("en") + " of " + rows.length.toLocaleString("en") + " latents)";
    document.querySelectorAll("#head th").forEach(function (th, i) {
      th.className = i === sortCol ? (sortDir > 0 ? "sorted-asc" : "sorted-desc") : "";
    });
  }

  // -- latent cards -------------------------------------------------------------------------
  function openLatent(row) {
    openPos = row[R.pos];
    document.querySelectorAll("#rows tr").forEach(function (tr) {
      tr.className = Number(tr.getAttribute("data-pos")) === openPos ? "open" : "";
    });
    history.replaceState(null, "", "#latent=" + META.sources[row[R.src]] + ":" + row[R.idx]);
    var n = row[R.file], card = $("card");
    card.hidden = false;
    if (!cardFiles[n]) {
      card.replaceChildren(el("p", null, "loading latent " + latentName(row) + "…"));
      (waiting[n] = waiting[n] || []).push(function () { if (openPos === row[R.pos]) openLatent(row); });
      if (!requested[n]) { requested[n] = true; loadScript("data/latents-" + pad(n) + ".js"); }
      return;
    }
    var file = cardFiles[n], c = file.byKey[row[R.src] + ":" + row[R.idx]];
    if (!c) { card.replaceChildren(el("p", null, "no card for latent " + latentName(row))); return; }
    renderCard(card, row, c, file.strings);
    card.scrollIntoView({ block: "start" });
  }

  function renderCard(card, row, c, strings) {
    var parts = [];
    var close = el("button", { "class": "close", type: "button" }, "close ×");
    close.addEventListener("click", function () {
      card.hidden = true; openPos = -1; renderPage();
      history.replaceState(null, "", "#");
    });
    parts.push(close, el("h2", null, "Latent " + row[R.idx] + " · " + META.sources[c.s]));
    var stats = "firing frequency " + fmt(c.f) + " · max activation " + fmt(c.m);
    for (var k in (c.x || {})) stats += " · " + k + " " + fmt(c.x[k]);
    parts.push(el("p", { "class": "metrics" }, stats));

    if (!c.e.length) parts.push(el("p", { "class": "fail" }, "no explanation"));
    c.e.forEach(function (e) {
      parts.push(el("div", { "class": "explainer" }, "explainer " + e[0]));
      parts.push(el("div", { "class": "explanation" }, e[1]));
      if (e[2]) {
        var chips = el("div", { "class": "chips" }, "promoted tokens: ");
        e[2].forEach(function (p) {
          var tok = typeof p === "string" ? p : p[0];
          chips.appendChild(el("span", typeof p === "string" || p[1] === null ? null :
            { title: "logit " + fmt(p[1]) }, JSON.stringify(tok).slice(1, -1)));
        });
        parts.push(chips);
      }
    });

    if (c.sc.length) {
      var t = el("table", { "class": "scores" });
      var h = el("tr");
      ["scorer", "score", "failed examples", "metrics"].forEach(function (x) { h.appendChild(el("th", null, x)); });
      t.appendChild(h);
      c.sc.forEach(function (s) {
        var tr = el("tr");
        tr.appendChild(el("td", null, META.scorers[s[0]]));
        tr.appendChild(el("td", { "class": "num" }, fmt(s[1])));
        tr.appendChild(el("td", { "class": "num" }, String(s[2])));
        var m = Object.keys(s[3]).map(function (k) { return k + " " + fmt(s[3][k]); }).join(" · ");
        tr.appendChild(el("td", { "class": "metrics" }, m));
        t.appendChild(tr);
      });
      parts.push(el("h3", null, "Scores"), t);
    }
    if (c.fl.length) {
      parts.push(el("h3", null, "Failures"));
      c.fl.forEach(function (f) { parts.push(el("p", { "class": "fail" }, f[0] + ": " + f[1])); });
    }
    var groups = [["top", "Top activating examples (shown to the explainer)"],
      ["test", "Held-out activating examples (scored)"], ["neg", "Non-activating examples (scored)"]];
    groups.forEach(function (g) {
      var list = c.ex[g[0]], total = c.n[g[0]];
      if (!total) return;
      parts.push(el("h3", null, g[1] + (list.length < total ? " — " + list.length + " of " + total : "")));
      var box = el("div", { "class": "examples" });
      list.forEach(function (ex) { box.appendChild(renderExample(ex, c.am, strings)); });
      parts.push(box);
    });
    card.replaceChildren.apply(card, parts);
  }

  function renderExample(ex, peak, strings) {
    var div = el("div", { "class": "example" });
    div.appendChild(el("span", { "class": "kind" }, ex.k));
    for (var i = 0; i < ex.t.length; i++) {
      var text = strings[ex.t[i]], a = ex.a[i];
      var span = el("span", { "class": "tok" }, text.replace(/\n/g, "↵\n"));
      if (/^\s*\n/.test(text)) span.className += " nl";
      if (a > 0) {
        span.className += " hot";
        span.style.backgroundColor = "rgba(255, 140, 0, " + (a / 1000).toFixed(3) + ")";
      }
      span.title = "activation " + fmt(a / 1000 * (peak || 0));
      div.appendChild(span);
    }
    (ex.p || []).forEach(function (p) {
      var pred = p[1], act = p[2], cls = "pred";
      var binary = (pred === 0 || pred === 1) && (act === 0 || act === 1);
      if (pred === null) cls += " none"; else if (binary) cls += pred === act ? " ok" : " bad";
      var label = META.scorers[p[0]] + ": " + (pred === null ? "unparsed" : fmt(pred)) + " / " + fmt(act);
      var title = "predicted " + (pred === null ? "nothing (answer not parsed)" : fmt(pred)) +
        ", actual " + fmt(act) + (p[3] === null ? "" : ", probability " + fmt(p[3]));
      div.appendChild(el("span", { "class": cls, title: title }, label));
    });
    (ex.sim || []).forEach(function (sim) {
      var line = el("div", { "class": "sim" });
      line.appendChild(el("span", { "class": "kind" }, META.scorers[sim[0]] + " predicted"));
      for (var j = 0; j < sim[1].length; j++) {
        var q = sim[2][j], text = strings[sim[1][j]];
        var span = el("span", { "class": "tok", title: "predicted " + fmt(q / 100) + " of 10" },
          text.replace(/\n/g, "↵\n"));
        if (q > 0) span.style.backgroundColor = "rgba(59, 110, 165, " + (q / 1000).toFixed(3) + ")";
        line.appendChild(span);
      }
      div.appendChild(line);
    });
    return div;
  }

  // -- summary ------------------------------------------------------------------------------
  function renderSummary() {
    var run = META.run, u = META.usage;
    var text = run.name + " · run " + run.id + " · " + run.status + " · " +
      META.n_latents.toLocaleString("en") + " latents · scorers: " + (META.scorers.join(", ") || "none") +
      " · LLM calls " + u.calls + " (" + u.cache_hits + " cached), " + u.tokens.toLocaleString("en") +
      " tokens, $" + u.cost_usd;
    if (run.started) text += " · started " + new Date(run.started * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
    $("summary").textContent = text;

    var ag = META.agreement;
    if (ag.names.length > 1) {
      var box = $("agreement");
      box.appendChild(el("h3", null, "Scorer agreement (Spearman ρ over latents both scored)"));
      var t = el("table", { id: "agreement-matrix" }), h = el("tr");
      h.appendChild(el("th", null, ""));
      ag.names.forEach(function (n) { h.appendChild(el("th", null, n)); });
      t.appendChild(h);
      ag.names.forEach(function (n, i) {
        var tr = el("tr");
        tr.appendChild(el("th", null, n));
        ag.rho[i].forEach(function (v, j) {
          var td = el("td", { title: ag.n[i][j] + " latents" }, v === null ? "–" : v.toFixed(2));
          if (v !== null) td.style.backgroundColor = v >= 0 ? "rgba(59,110,165," + (0.5 * v).toFixed(2) + ")"
            : "rgba(200,60,60," + (-0.5 * v).toFixed(2) + ")";
          tr.appendChild(td);
        });
        t.appendChild(tr);
      });
      box.appendChild(t);
    }
    renderCosts();
    var plots = $("plots");
    META.plots.forEach(function (p) {
      var f = el("figure"), a = el("a", { href: p.file });
      a.appendChild(el("img", { src: p.file, alt: p.title, loading: "lazy" }));
      f.appendChild(a);
      f.appendChild(el("figcaption", null, p.file));
      plots.appendChild(f);
    });
    if (!META.plots.length) plots.appendChild(el("p", { "class": "more" }, "no scores yet, so no plots"));
  }

  // LLM calls, tokens and dollars per component that asked (the ledger's stage and component)
  function renderCosts() {
    var costs = META.costs || [];
    if (!costs.length) return;
    var box = $("costs");
    box.appendChild(el("h3", null, "LLM cost per component"));
    var t = el("table", { id: "cost-table" }), h = el("tr");
    ["stage", "component", "calls", "cached", "tokens", "cost"].forEach(function (n) {
      h.appendChild(el("th", null, n));
    });
    t.appendChild(h);
    costs.forEach(function (c) {
      var tr = el("tr");
      [c.stage || "–", c.component || "(not recorded)", c.calls.toLocaleString("en"),
       c.cache_hits.toLocaleString("en"), c.tokens.toLocaleString("en"),
       "$" + c.cost_usd.toFixed(4)].forEach(function (v) { tr.appendChild(el("td", null, v)); });
      t.appendChild(tr);
    });
    box.appendChild(t);
  }

  function openFromHash() {
    var m = /latent=(.*)$/.exec(decodeURIComponent(location.hash));
    if (!m) return;
    var want = m[1], colon = want.lastIndexOf(":");
    var src = colon < 0 ? null : want.slice(0, colon), idx = Number(want.slice(colon + 1));
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (r[R.idx] === idx && (src === null || META.sources[r[R.src]] === src)) {
        var at = view.indexOf(r);
        if (at >= 0) { page = Math.floor(at / PER_PAGE); renderPage(); }
        openLatent(r);
        return;
      }
    }
  }

  function loadRows(n) {
    if (n > META.row_files) {
      $("status").textContent = rows.length.toLocaleString("en") + " latents";
      refresh(true);
      openFromHash();
      document.body.setAttribute("data-ready", "1");
      return;
    }
    $("status").textContent = "loading latents… " + rows.length.toLocaleString("en");
    loadScript("data/rows-" + pad(n) + ".js", function () { loadRows(n + 1); });
  }

  buildHead();
  renderSummary();
  ["filter", "min-score", "min-scorer", "only-failures"].forEach(function (id) {
    $(id).addEventListener("input", function () { refresh(true); });
  });
  $("first").addEventListener("click", function () { page = 0; renderPage(); });
  $("prev").addEventListener("click", function () { page -= 1; renderPage(); });
  $("next").addEventListener("click", function () { page += 1; renderPage(); });
  $("last").addEventListener("click", function () { page = 1e9; renderPage(); });
  window.addEventListener("hashchange", openFromHash);
  loadRows(1);
})();

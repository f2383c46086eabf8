/* Maestrale web UI: htmx error display and the declarative charts (uPlot, a canvas heatmap).
 *
 * A chart is <div class="chart" data-chart="ID"></div> plus <script type="application/json" id="ID">
 * holding its spec: {"type": "line"|"bars"|"heatmap", ...}. Page data never runs as script (CSP
 * script-src 'self'); this file draws every chart, then marks <main data-ready="true">.
 */
(function () {
  "use strict";
  var PALETTE = ["#0b5cad", "#d1495b", "#2a9d8f", "#e9a23b", "#6639ba", "#57606a", "#8c564b", "#17becf", "#bcbd22", "#1a7f37"];

  function flash(text) {
    var box = document.getElementById("flash");
    if (!box) return;
    var p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.textContent = text;
    box.replaceChildren(p);
    setTimeout(function () { if (box.firstChild === p) box.replaceChildren(); }, 8000);
  }

  function errorText(xhr) {
    var type = xhr.getResponseHeader("Content-Type") || "";
    if (type.indexOf("application/json") === 0) {
      try { return JSON.parse(xhr.responseText).error.message; } catch (e) { /* fall through */ }
    }
    var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
    var el = doc.querySelector(".error") || doc.body;
    return (el && el.textContent.trim()) || ("HTTP " + xhr.status);
  }

  document.addEventListener("htmx:responseError", function (e) { flash(errorText(e.detail.xhr)); });
  document.addEventListener("htmx:sendError", function () { flash("The server did not answer: is it running?"); });

  function spec(el) {
    var src = document.getElementById(el.getAttribute("data-chart"));
    return src ? JSON.parse(src.textContent) : null;
  }

  function width(el) { return Math.max(280, el.clientWidth || el.parentNode.clientWidth || 800); }

  function fmt(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    return Math.abs(v) >= 1000 ? v.toFixed(0) : Number(v.toPrecision(digits || 4)).toString();
  }

  function lineChart(el, s) {
    var series = [{ label: s.x_label || (s.time === false ? "x" : "time") }];
    var data = [s.x];
    s.series.forEach(function (one, i) {
      var color = one.color || PALETTE[i % PALETTE.length];
      series.push({
        label: one.label, stroke: color, width: one.width || 1.5, dash: one.dash || undefined,
        points: { show: one.points === true || s.x.length < 60 },
        value: function (u, v) { return fmt(v); },
        spanGaps: false,
      });
      data.push(one.values);
    });
    var opts = {
      width: width(el), height: s.height || 260,
      series: series,
      scales: { x: { time: s.time !== false } },
      axes: [{}, { label: s.y_label || "", size: 60 }],
      cursor: { sync: s.sync ? { key: s.sync } : undefined, drag: { x: true, y: false } },
    };
    if (s.time === false && s.x_ticks) {
      opts.axes[0] = { values: function (u, vals) { return vals.map(function (v) { return s.x_ticks[v] !== undefined ? s.x_ticks[v] : ""; }); } };
    }
    return new uPlot(opts, data, el);
  }

  function barsChart(el, s) {
    var bars = uPlot.paths.bars({ size: [0.9, 64], align: 1 });
    var series = [{ label: s.x_label || "bin" }];
    var data = [s.x];
    s.series.forEach(function (one, i) {
      var color = one.color || PALETTE[i % PALETTE.length];
      series.push({ label: one.label, stroke: color, fill: color + "66", width: 1, paths: bars, points: { show: false },
                    value: function (u, v) { return fmt(v); } });
      data.push(one.values);
    });
    return new uPlot({
      width: width(el), height: s.height || 200, series: series,
      // bars start at zero (a scale from the smallest bar exaggerates differences) and the x scale
      // reaches the last bar's right edge (bars are left-aligned on their bin's start)
      scales: {
        x: { time: false, range: function (u, min, max) { return [min, max + (s.x.length > 1 ? s.x[1] - s.x[0] : 1)]; } },
        y: { range: function (u, min, max) { var lo = Math.min(0, min), hi = Math.max(0, max); return [lo, hi + ((hi - lo) * 0.05 || 1)]; } },
      },
      axes: [{ label: s.x_label || "" }, { label: s.y_label || "share", size: 55 }],
    }, data, el);
  }

  function color(t) {  /* viridis-like ramp, readable by the colour-blind: t in [0, 1] */
    var stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
    t = Math.max(0, Math.min(1, t)) * (stops.length - 1);
    var i = Math.min(stops.length - 2, Math.floor(t)), f = t - i, a = stops[i], b = stops[i + 1];
    return "rgb(" + [0, 1, 2].map(function (k) { return Math.round(a[k] + (b[k] - a[k]) * f); }).join(",") + ")";
  }

  function heatmap(el, s) {
    var rows = s.rows.length, cols = s.x.length, labelW = 130, h = Math.max(120, rows * 22 + 30);
    var canvas = document.createElement("canvas");
    canvas.className = "heatmap";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", s.label || "heatmap");
    var w = width(el), ratio = window.devicePixelRatio || 1;
    canvas.width = w * ratio; canvas.height = h * ratio;
    canvas.style.height = h + "px";
    el.appendChild(canvas);
    var tip = document.createElement("div");
    tip.className = "tip"; tip.hidden = true; el.appendChild(tip);
    var ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    var max = s.max || 0;
    s.values.forEach(function (row) { row.forEach(function (v) { if (v !== null && v > max) max = v; }); });
    var cw = (w - labelW) / Math.max(1, cols), ch = (h - 30) / Math.max(1, rows);
    ctx.font = "12px system-ui, sans-serif"; ctx.textBaseline = "middle"; ctx.fillStyle = "#1b1f24";
    for (var r = 0; r < rows; r++) {
      ctx.fillStyle = "#1b1f24";
      ctx.fillText(s.rows[r].slice(0, 18), 4, 15 + r * ch + ch / 2);
      for (var c = 0; c < cols; c++) {
        var v = s.values[r][c];
        ctx.fillStyle = v === null ? "#eaeef2" : color(max > 0 ? v / max : 0);
        ctx.fillRect(labelW + c * cw, 15 + r * ch, Math.ceil(cw), Math.ceil(ch) - 1);
      }
    }
    ctx.fillStyle = "#57606a";
    [0, cols - 1].forEach(function (c) {
      if (c < 0) return;
      var d = new Date(s.x[c] * 1000).toISOString().slice(0, 10);
      ctx.fillText(d, Math.min(w - 80, labelW + c * cw), h - 8);
    });
    canvas.addEventListener("mousemove", function (e) {
      var box = canvas.getBoundingClientRect(), x = e.clientX - box.left, y = e.clientY - box.top;
      var c = Math.floor((x - labelW) / cw), r = Math.floor((y - 15) / ch);
      if (c < 0 || c >= cols || r < 0 || r >= rows) { tip.hidden = true; return; }
      var when = new Date(s.x[c] * 1000).toISOString().slice(0, 16).replace("T", " ");
      tip.textContent = s.rows[r] + " · " + when + "Z · " + (s.label || "value") + " " + fmt(s.values[r][c], 3);
      tip.style.left = Math.min(x + 12, w - 260) + "px"; tip.style.top = (y + 12) + "px"; tip.hidden = false;
      if (s.select) { el.dispatchEvent(new CustomEvent("cellselect", { detail: { row: r, col: c }, bubbles: true })); }
    });
    canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
    return { canvas: canvas };
  }

  var DRAW = { line: lineChart, bars: barsChart, heatmap: heatmap };

  function drawAll(root) {
    var charts = [];
    (root || document).querySelectorAll(".chart[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) return;
      var s = spec(el);
      if (!s || !DRAW[s.type]) return;
      if (s.type !== "heatmap" && typeof uPlot === "undefined") return;
      el.dataset.drawn = "1";
      try { charts.push({ el: el, chart: DRAW[s.type](el, s) }); }
      catch (err) { el.textContent = "chart failed: " + err; }
    });
    return charts;
  }

  function ready() {
    var charts = drawAll(document);
    window.addEventListener("resize", function () {
      charts.forEach(function (c) { if (c.chart.setSize) c.chart.setSize({ width: width(c.el), height: c.chart.height }); });
    });
    var main = document.getElementById("main");
    if (main) main.dataset.ready = "true";
  }

  document.addEventListener("htmx:afterSwap", function (e) { drawAll(e.target); });
  window.Maestrale = { drawAll: drawAll, flash: flash };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready); else ready();
})();

/* Charts whose spec travels in a data-spec attribute (a fragment htmx swaps in: it drops <script>
 * blocks, allowScriptTags: false). Each gets its <script type="application/json"> back (not run:
 * CSP executes no JSON), then is drawn. Used by the monitoring page's feature histogram. */
(function () {
  "use strict";
  function unpackSpecs(root) {
    (root || document).querySelectorAll(".chart[data-chart][data-spec]").forEach(function (el) {
      var id = el.getAttribute("data-chart");
      if (document.getElementById(id)) return;
      var script = document.createElement("script");
      script.type = "application/json";
      script.id = id;
      script.textContent = el.getAttribute("data-spec");
      el.after(script);
    });
  }
  unpackSpecs(document);  // this file loads at the end of <body>: the page's charts are parsed
  document.addEventListener("htmx:afterSwap", function (e) {
    unpackSpecs(e.target);
    if (window.Maestrale) window.Maestrale.drawAll(e.target);
  });
})();

// The session drill-down: charts from the page's embedded data (chart-data), kept live by
// the messages live.js dispatches as "ifns:event": session_health moves the equity line
// (the last step's book), order_filled adds a marker on its symbol's price chart. The event
// stream's rows come from the server (the same readable rows, no formatting here twice).
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const LC = window.LightweightCharts;
  const cur = data.currency;
  const money = (x) => x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const pts = (rows) => dedupe(rows.map(([t, v]) => ({ time: Math.floor(t), value: v })));
  function dedupe(points) {  // one point per second, the last; ascending (the chart's rule)
    const out = [];
    for (const p of points) {
      if (out.length && out[out.length - 1].time === p.time) out[out.length - 1] = p;
      else if (!out.length || out[out.length - 1].time < p.time) out.push(p);
    }
    return out;
  }
  const base = (el, height) => LC.createChart(el, {
    height, autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#374151", fontSize: 11 },
    grid: { vertLines: { color: "#f0efe9" }, horzLines: { color: "#f0efe9" } },
    timeScale: { timeVisible: true, secondsVisible: true },
    rightPriceScale: { borderColor: "#dedcd4" },
    localization: { timeFormatter: (t) => new Date(t * 1000).toISOString().slice(11, 19) + " UTC" },
  });
  const charts = {};
  window.IFNSCharts = charts;  // tests read the drawn data from here

  // equity, with the backtest drawn over it
  const eqEl = document.getElementById("chart-equity");
  if (eqEl && data.equity.length) {
    const chart = base(eqEl, 260);
    const line = chart.addSeries(LC.LineSeries, { color: "#1d4ed8", lineWidth: 2, title: "paper",
      priceFormat: { type: "custom", formatter: money } });
    line.setData(pts(data.equity));
    charts.equity = { chart, line, points: pts(data.equity) };
    if (data.backtest && data.backtest.equity.length) {
      const bt = chart.addSeries(LC.LineSeries, { color: "#b45309", lineWidth: 1, lineStyle: 2, title: "backtest",
        priceFormat: { type: "custom", formatter: money } });
      bt.setData(pts(data.backtest.equity));
      charts.backtest = bt;
    }
    const notes = data.annotations;
    if (notes.length) {
      LC.createSeriesMarkers(line, dedupeMarkers(notes.map((a) => ({
        time: nearest(charts.equity.points, a.t), position: "aboveBar", shape: "circle", size: 0.5,
        color: a.kind === "incident" || a.kind === "risk_breach" ? "#dc2626" : "#7c3aed", text: "", id: a.kind,
      }))));
    }
    chart.timeScale().fitContent();
  }

  function nearest(points, t) {  // a marker sits on a data point: the last one at or before t
    let lo = 0, hi = points.length - 1;
    if (!points.length) return Math.floor(t);
    if (t <= points[0].time) return points[0].time;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (points[mid].time <= t) lo = mid; else hi = mid - 1; }
    return points[lo].time;
  }
  function dedupeMarkers(markers) { return markers.sort((a, b) => a.time - b.time); }

  const ddEl = document.getElementById("chart-drawdown");
  if (ddEl && data.drawdown.length) {
    const chart = base(ddEl, 160);
    const area = chart.addSeries(LC.AreaSeries, { lineColor: "#dc2626", topColor: "rgba(220,38,38,0.05)",
      bottomColor: "rgba(220,38,38,0.3)", lineWidth: 1, invertFilledArea: true,
      priceFormat: { type: "custom", formatter: (x) => x.toFixed(3) + " %" } });
    area.setData(pts(data.drawdown));
    chart.timeScale().fitContent();
    charts.drawdown = area;
  }

  const exEl = document.getElementById("chart-exposure");
  if (exEl && data.gross.length) {
    const chart = base(exEl, 160);
    const fmt = { type: "custom", formatter: money };
    const gross = chart.addSeries(LC.LineSeries, { color: "#0f766e", lineWidth: 1, priceFormat: fmt });
    const net = chart.addSeries(LC.LineSeries, { color: "#9333ea", lineWidth: 1, priceFormat: fmt });
    gross.setData(pts(data.gross));
    net.setData(pts(data.net));
    chart.timeScale().fitContent();
    charts.exposure = { gross, net };
  }

  // price per symbol: the marks, with every fill drawn at its price, and the annotations
  charts.prices = {};
  document.querySelectorAll(".price-chart").forEach((el) => {
    const sym = el.dataset.symbol;
    const fills = data.fills.filter((f) => f.symbol === sym);
    const marks = (data.marks[sym] || []).concat(fills.map((f) => [f.t, f.price]));
    marks.sort((a, b) => a[0] - b[0]);
    if (!marks.length) { el.insertAdjacentHTML("afterend", '<p class="muted empty">No prices yet.</p>'); return; }
    const chart = base(el, 180);
    const line = chart.addSeries(LC.LineSeries, { color: "#334155", lineWidth: 1,
      priceFormat: { type: "price", precision: marks[0][1] < 10 ? 5 : 2, minMove: marks[0][1] < 10 ? 0.00001 : 0.01 } });
    const points = pts(marks);
    line.setData(points);
    const markers = LC.createSeriesMarkers(line, []);
    const state = { chart, line, markers, points, fills: fills.slice(), notes: data.annotations.filter((a) => !a.symbol || a.symbol === sym) };
    charts.prices[sym] = state;
    drawMarkers(state);
    chart.timeScale().fitContent();
  });

  function drawMarkers(state) {
    const list = state.fills.map((f) => ({
      time: Math.floor(f.t), position: f.side === "buy" ? "atPriceBottom" : "atPriceTop", price: f.price,
      shape: f.side === "buy" ? "arrowUp" : "arrowDown", color: f.side === "buy" ? "#15803d" : "#b91c1c",
      text: state.fills.length <= 12 ? f.label : "",
    })).concat(state.notes.map((a) => ({ time: nearest(state.points, a.t), position: "aboveBar", shape: "circle", size: 0.5,
      color: a.kind === "incident" || a.kind === "risk_breach" ? "#dc2626" : "#7c3aed", text: "" })));
    state.markers.setMarkers(list.sort((a, b) => a.time - b.time));
  }

  // slippage histograms per route (uPlot bars): the summary's buckets
  const byRoute = JSON.parse(document.getElementById("slippage-by-route").textContent || "null") || {};
  document.querySelectorAll(".slippage-chart").forEach((el) => {
    const hist = (byRoute[el.dataset.route] || {}).histogram;
    if (!hist || !hist.counts || !hist.counts.some((c) => c > 0)) return;
    const edges = hist.edges_bps;
    const xs = hist.counts.map((_, i) => i);
    const labels = hist.counts.map((_, i) => (i === 0 ? "<" + edges[0] : i > edges.length - 1 ? "≥" + edges[edges.length - 1]
      : edges[i - 1] + "…" + edges[i]));
    new uPlot({
      width: Math.max(280, el.clientWidth || 400), height: 170, legend: { show: false },
      scales: { x: { time: false, range: [-0.5, xs.length - 0.5] } },
      axes: [{ values: (u, splits) => splits.map((i) => (i % 2 === 0 ? labels[i] || "" : "")), space: 20, size: 34,
        font: "10px system-ui" },
        { label: "fills", size: 40, font: "10px system-ui" }],
      series: [{}, { label: "fills", fill: "rgba(29,78,216,0.35)", stroke: "#1d4ed8", paths: uPlot.paths.bars({ size: [0.8] }) }],
    }, [xs, hist.counts], el);
  });

  // when every chart was drawn (Performance API time since navigation; bench.pages_bench reads it)
  window.IFNSChartsReady = performance.now();
  // fill committed → marker drawn, ms (recorded_at is stamped in the step's transaction, just
  // before its commit: an upper bound of the lag); bench.pages_bench reads them
  window.IFNSLiveLags = [];

  // live: the book at each step moves the equity line; each fill lands on its price chart
  document.addEventListener("ifns:event", (e) => {
    const m = e.detail;
    if (m.type === "session_health" && charts.equity && m.equity !== null && m.equity !== undefined && m.data_ts_ns) {
      const t = Math.floor(m.data_ts_ns / 1e9);
      const last = charts.equity.points[charts.equity.points.length - 1];
      if (!last || t >= last.time) {
        const point = { time: t, value: m.equity };
        charts.equity.line.update(point);
        if (last && last.time === t) charts.equity.points[charts.equity.points.length - 1] = point;
        else charts.equity.points.push(point);
      }
    }
    if (m.type === "order_filled") {
      const p = m.payload, state = charts.prices[p.symbol];
      if (!state) return;
      const t = Math.floor(p.ts / 1e9);
      const last = state.points[state.points.length - 1];
      if (!last || t >= last.time) {
        state.line.update({ time: t, value: p.price });
        if (last && last.time === t) state.points[state.points.length - 1] = { time: t, value: p.price };
        else state.points.push({ time: t, value: p.price });
      }
      const lots = data.lots[p.symbol];
      const places = lots && lots < 1 ? Math.round(-Math.log10(lots)) : 0;
      state.fills.push({ t: p.ts / 1e9, symbol: p.symbol, side: p.side, qty: p.quantity, price: p.price,
        label: p.side.toUpperCase() + " " + p.quantity.toLocaleString("en-US", { minimumFractionDigits: places, maximumFractionDigits: places }) });
      drawMarkers(state);
      if (m.recorded_at) window.IFNSLiveLags.push(Date.now() - Date.parse(m.recorded_at));
    }
  });
})();

// The run page's charts, drawn from the page's one state (run_state.js): the timeline, one
// lane per worker, and the workers' balance. User text reaches plotly only through inert().
(function () {
  "use strict";
  const inert = window.ptd.inert; // plotly renders some HTML in labels (common.js)
  const LIVE_BARS = 600; // bars of the live timeline of a big run (see sliceBars)
  const MIN_BAR_PX = 4; // a 1 ms failure is still a bar you can see and hover
  const COLORS = {
    passed: "#16a34a", failed: "#dc2626", error: "#b91c1c", crashed: "#7f1d1d",
    skipped: "#9ca3af", xfailed: "#a3a3a3", xpassed: "#65a30d", rerun: "#f59e0b",
  };
  // Passed tests by duration (its key: .scale-bar in ptd.css), quick ones pale, slow ones
  // dark, so they stand out; failing outcomes keep their reds and are drawn last (on top).
  const DURATION_SCALE = [[0, "#bbf7d0"], [0.35, "#22c55e"], [0.7, "#15803d"], [1, "#1e3a8a"]];
  const ON_TOP = ["rerun", "failed", "error", "crashed"];
  const CONFIG = { displayModeBar: false, responsive: true };

  // Ticks at whole numbers, at most about five of them (no "0, 1, 1, 2" on a count axis).
  function integerStep(max) {
    const rough = Math.max(1, max / 5);
    const power = 10 ** Math.floor(Math.log10(rough));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
    return Math.max(1, Math.round(step));
  }

  function seconds(value) {
    return value >= 10 ? value.toFixed(1) : value >= 0.1 ? value.toFixed(2) : value.toFixed(3);
  }

  // One bar per attempt: the finished run's timeline, and a small run's live one.
  function testBars(results, t0) {
    const bars = [];
    for (const r of results) {
      if (r.start === null || r.start === undefined) continue;
      bars.push({ outcome: r.outcome, base: r.start - t0, duration: r.duration || 0, worker: r.worker,
                  text: `${r.nodeid}${r.group ? " @" + r.group : ""} · ${r.outcome} · ${seconds(r.duration || 0)} s` });
    }
    return bars;
  }

  // While a big run goes: the whole run so far in at most LIVE_BARS bars, each worker's time
  // cut into equal slices coloured by the worst outcome in them. The cost of a redraw stays
  // bounded whatever the number of tests; the per-test timeline comes when the run ends.
  const SEVERITY = ["passed", "xpassed", "skipped", "xfailed", "rerun", "failed", "error", "crashed"];
  function sliceBars(results, t0, span, failing) {
    const workers = new Set(results.map((r) => r.worker));
    const slices = Math.max(10, Math.floor(LIVE_BARS / Math.max(1, workers.size)));
    const width = Math.max(span / slices, 0.001);
    const cells = new Map();
    for (const r of results) {
      if (r.start === null || r.start === undefined) continue;
      const i = Math.min(slices - 1, Math.floor((r.start - t0) / width));
      const key = r.worker + "\u0000" + i;
      let cell = cells.get(key);
      if (!cell) cells.set(key, (cell = { worker: r.worker, i, tests: 0, failed: 0, worst: "passed", busy: 0 }));
      cell.tests += 1;
      cell.busy += r.duration || 0;
      if (failing.has(r.outcome)) cell.failed += 1;
      if (SEVERITY.indexOf(r.outcome) > SEVERITY.indexOf(cell.worst)) cell.worst = r.outcome;
    }
    return [...cells.values()].map((c) => ({
      outcome: c.worst, base: c.i * width, duration: c.busy / c.tests, width, worker: c.worker,
      text: `${c.tests} tests${c.failed ? `, ${c.failed} failing` : ""} (${(c.i * width).toFixed(1)}-${((c.i + 1) * width).toFixed(1)} s)`,
    }));
  }

  // Bars of one trace per outcome: x = width, base = start, y = worker, text = hover.
  function barTraces(bars, minWidth, slowest) {
    const byOutcome = new Map();
    for (const b of bars) {
      if (!byOutcome.has(b.outcome)) byOutcome.set(b.outcome, { x: [], base: [], y: [], text: [], d: [] });
      const t = byOutcome.get(b.outcome);
      t.base.push(b.base);
      t.x.push(Math.max(b.width || b.duration, minWidth));
      t.y.push(inert(b.worker));
      t.text.push(inert(b.text));
      t.d.push(b.duration);
    }
    const order = (o) => ON_TOP.indexOf(o);
    return [...byOutcome.entries()].sort((a, b) => order(a[0]) - order(b[0])).map(([outcome, t]) => {
      const marker = outcome === "passed"
        ? { color: t.d, colorscale: DURATION_SCALE, cmin: 0, cmax: Math.max(slowest, 0.001),
            showscale: false } // plotly's colorbar sets inline styles (CSP): the page has its key
        : { color: COLORS[outcome] || "#64748b" };
      return { type: "bar", orientation: "h", name: outcome, x: t.x, base: t.base, y: t.y,
               text: t.text, hoverinfo: "text", textposition: "none", marker, showlegend: true };
    });
  }

  function drawTimeline(box, state) {
    const results = [...state.results.values()];
    const t0 = state.t0 || 0;
    const span = Math.max((state.end || t0) - t0, 0.001);
    // The smallest width a bar may have, in seconds: MIN_BAR_PX of the plot's width.
    const plotPx = Math.max(100, box.clientWidth - 100);
    const minWidth = (span * MIN_BAR_PX) / plotPx;
    const sliced = state.running && results.length > LIVE_BARS;
    const bars = sliced ? sliceBars(results, t0, span, state.failing) : testBars(results, t0);
    let slowest = 0;
    for (const b of bars) if (b.outcome === "passed" && b.duration > slowest) slowest = b.duration;
    const key = document.getElementById("gantt-scale-max");
    if (key) key.textContent = `${seconds(slowest)} s`;
    const lanes = new Set(bars.map((b) => b.worker)).size;
    Plotly.react(box, barTraces(bars, minWidth, slowest), {
      barmode: "overlay", margin: { t: 20, l: 60, r: 20, b: 40 },
      xaxis: { title: { text: "seconds since the first test" }, range: [0, span * 1.02 + minWidth],
               hoverformat: ".2f" },
      yaxis: { categoryorder: "category descending", automargin: true },
      legend: { orientation: "h", y: -0.2 },
      height: Math.max(318, 140 + 30 * lanes), // fills its .chart box
    }, CONFIG);
  }

  function drawBalance(box, workers) {
    const ids = workers.map((w) => inert(w.id));
    const most = Math.max(1, ...workers.map((w) => w.tests));
    Plotly.react(box, [
      // Two y axes: offsetgroups put the bars side by side (barmode alone would overlay them).
      { type: "bar", name: "busy seconds", x: ids, y: workers.map((w) => w.busy), offsetgroup: "busy",
        hovertemplate: "%{x}: %{y:.2f} s busy<extra></extra>" },
      { type: "bar", name: "tests", x: ids, y: workers.map((w) => w.tests), yaxis: "y2",
        offsetgroup: "tests", hovertemplate: "%{x}: %{y:d} tests<extra></extra>" },
    ], { barmode: "group", margin: { t: 20, l: 50, r: 50, b: 40 },
         legend: { orientation: "h", y: 1.12 },
         yaxis: { title: { text: "busy seconds" }, rangemode: "tozero", automargin: true },
         yaxis2: { title: { text: "tests" }, overlaying: "y", side: "right", rangemode: "tozero",
                   automargin: true, showgrid: false, tick0: 0, dtick: integerStep(most),
                   tickformat: "d" } },
    CONFIG);
  }

  window.ptdRun = window.ptdRun || {};
  window.ptdRun.charts = { drawTimeline, drawBalance, integerStep, LIVE_BARS };
})();

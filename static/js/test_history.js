// A test's duration over its recent runs (points embedded with json_script); click opens the run.
(function () {
  "use strict";
  const data = document.getElementById("history-points");
  const box = document.getElementById("duration-chart");
  if (!data || !box || !window.Plotly) return;
  const points = JSON.parse(data.textContent).filter((p) => p.duration !== null);
  if (!points.length) {
    box.textContent = "No executed attempts yet.";
    return;
  }
  const inert = window.ptd.inert; // user text in plotly labels stays text (common.js)
  const COLORS = { passed: "#16a34a", failed: "#dc2626", flaky: "#f59e0b", skipped: "#9ca3af" };
  Plotly.newPlot(box, [{
    type: "scatter", mode: "lines+markers", name: "mean seconds per attempt",
    x: points.map((p) => p.time), y: points.map((p) => p.duration),
    marker: { color: points.map((p) => COLORS[p.outcome] || "#64748b"), size: 9 },
    line: { color: "#94a3b8" },
    customdata: points.map((p) => p.url),
    text: points.map((p) => `run #${p.run_id} · ${p.outcome} · ${p.workers} worker${p.workers === 1 ? "" : "s"} · ${inert(p.worker_ids.join(", "))}`),
    hovertemplate: "%{text}<br>%{y:.3f} s<extra></extra>",
  }], { margin: { t: 20, l: 50, r: 20, b: 40 }, yaxis: { title: { text: "seconds" }, rangemode: "tozero" } },
  { displayModeBar: false, responsive: true });
  box.on("plotly_click", (event) => {
    const url = event.points[0] && event.points[0].customdata;
    if (url) window.location.href = url;
  });
})();

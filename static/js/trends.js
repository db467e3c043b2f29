// Trend charts of a suite: fetched from the JSON URL in data-url; click a point to open its run.
(function () {
  "use strict";
  const box = document.getElementById("trends");
  if (!box || !window.Plotly) return;
  const config = { displayModeBar: false, responsive: true };
  const inert = window.ptd.inert; // user text in plotly labels stays text (common.js)

  function chart(id, title, traces, extra) {
    const layout = Object.assign({ title: { text: title }, margin: { t: 60, l: 60, r: 60, b: 40 },
      hovermode: "closest", legend: { orientation: "h", x: 0, y: 1.12 },
      yaxis: { rangemode: "tozero" } }, extra || {});
    Plotly.newPlot(id, traces, layout, config);
    document.getElementById(id).on("plotly_click", (event) => {
      const url = event.points[0] && event.points[0].customdata;
      if (url) window.location.href = url;
    });
  }

  function line(points, key, name, extra) {
    return Object.assign({
      type: "scatter", mode: "lines+markers", name,
      x: points.map((p) => p.time), y: points.map((p) => p[key]),
      customdata: points.map((p) => p.url),
      text: points.map((p) => `run #${p.run_id} · ${p.workers} worker${p.workers === 1 ? "" : "s"}${p.branch ? " · " + inert(p.branch) : ""}`),
      hovertemplate: "%{text}<br>%{y:.3~f}<extra>" + name + "</extra>",  // 2.883, not 2.88259
    }, extra || {});
  }

  fetch(box.dataset.url, { credentials: "same-origin" })
    .then((response) => response.json())
    .then((data) => {
      const points = data.points;
      if (!points.length) {
        document.getElementById("trends-empty").hidden = false;
        return;
      }
      const x = points.map((p) => p.time);
      chart("chart-speedup", "Speedup and efficiency", [
        line(points, "speedup", "speedup"),
        line(points, "efficiency", "efficiency", { yaxis: "y2" }),
        { type: "scatter", mode: "lines", name: "efficiency target 0.75", x: [x[0], x[x.length - 1]],
          y: [0.75, 0.75], yaxis: "y2", line: { dash: "dash", color: "#b45309" }, hoverinfo: "skip" },
      ], { yaxis: { title: { text: "speedup" }, rangemode: "tozero" }, yaxis2: { title: { text: "efficiency" }, overlaying: "y", side: "right", rangemode: "tozero", dtick: 0.25 } });
      chart("chart-balance", "Worker balance (max / mean busy; 1.0 is perfect)", [line(points, "balance", "balance")]);
      chart("chart-flakiness", "Flakiness rate", [line(points, "flakiness_rate", "flakiness rate")]);
      chart("chart-wall", "Wall time (s)", [line(points, "wall_seconds", "wall"), line(points, "serial_seconds", "serial work")]);
      chart("chart-pass", "Pass rate", [line(points, "pass_rate", "pass rate")], { yaxis: { range: [0, 1.05] } });
    });
})();

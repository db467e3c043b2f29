// Report charts from the points embedded with json_script; static (printable) plots.
(function () {
  "use strict";
  const data = document.getElementById("report-points");
  if (!data || !window.Plotly || !document.getElementById("report-speedup")) return;
  const points = JSON.parse(data.textContent);
  if (!points.length) return;
  const config = { displayModeBar: false, responsive: true, staticPlot: false };
  const x = points.map((p) => p.time);
  function line(key, name, extra) {
    return Object.assign({ type: "scatter", mode: "lines+markers", name, x,
      y: points.map((p) => p[key]),
      text: points.map((p) => `run #${p.run_id} · ${p.workers} worker${p.workers === 1 ? "" : "s"}`),
      hovertemplate: "%{text}<br>%{y:.3~f}<extra>" + name + "</extra>" }, extra || {});
  }
  function plot(id, title, traces, extra) {
    Plotly.newPlot(id, traces, Object.assign({ title: { text: title },
      margin: { t: 40, l: 50, r: 50, b: 70 }, legend: { orientation: "h", y: -0.3 } }, extra || {}), config);
  }
  // Two panels on one time axis, not two overlaid y axes: speedup and balance (x-fold figures)
  // above, efficiency (a fraction, with its 0.75 target) below.
  const ends = [x[0], x[x.length - 1]];
  plot("report-speedup", "Speedup and balance; efficiency", [
    line("speedup", "speedup"),
    line("balance", "balance"),
    line("efficiency", "efficiency", { yaxis: "y2" }),
    { type: "scatter", mode: "lines", name: "efficiency target", x: ends, y: [0.75, 0.75], yaxis: "y2",
      line: { dash: "dash", color: "#b45309" }, hoverinfo: "skip" },
  ], { height: 460, xaxis: { anchor: "y2" }, legend: { orientation: "h", y: -0.12 },
       yaxis: { domain: [0.45, 1], rangemode: "tozero", title: { text: "× (speedup, balance)" }, tickformat: ".1f" },
       yaxis2: { anchor: "x", domain: [0, 0.35], range: [0, 1.05], tickvals: [0, 0.5, 0.75, 1], title: { text: "efficiency" } } });
  plot("report-flakiness", "Flakiness rate (target < 0.001)", [
    line("flakiness_rate", "flakiness rate"),
    { type: "scatter", mode: "lines", name: "target", x: [x[0], x[x.length - 1]], y: [0.001, 0.001],
      line: { dash: "dash", color: "#b45309" }, hoverinfo: "skip" },
  ]);
  plot("report-pass", "Pass rate", [line("pass_rate", "pass rate")], { yaxis: { range: [0, 1.05] } });
  window.addEventListener("beforeprint", () => {
    for (const id of ["report-speedup", "report-flakiness", "report-pass"]) Plotly.Plots.resize(id);
  });
})();

// A suite's load trend: p95 and throughput of its finished load runs, one line per branch and
// user count (50 users and 500 users are different loads: one line would read as a trend).
// Click a point to open its run. Branch names reach plotly only through inert().
(function () {
  "use strict";
  const data = document.getElementById("trend-data");
  if (!data || !window.Plotly) return;
  const points = JSON.parse(data.textContent);
  if (!points.length) return;
  const inert = window.ptd.inert;
  const config = { displayModeBar: false, responsive: true };
  const lineOf = (p) => `${p.branch} · ${p.users} user${p.users === 1 ? "" : "s"}`;
  const lines = [...new Set(points.map(lineOf))];

  function chart(id, title, key) {
    const traces = lines.map((line) => {
      const mine = points.filter((p) => lineOf(p) === line);
      return {
        type: "scatter", mode: "lines+markers", name: inert(line),
        x: mine.map((p) => p.time), y: mine.map((p) => p[key]), customdata: mine.map((p) => p.url),
        text: mine.map((p) => `run #${p.run_id} · ${p.users} users · ${p.status}`),
        hovertemplate: "%{text}<br>%{y:.1f}<extra>" + inert(line) + "</extra>",
      };
    });
    Plotly.newPlot(id, traces, { title: { text: title }, margin: { t: 50, l: 60, r: 30, b: 40 },
      hovermode: "closest", yaxis: { rangemode: "tozero" }, legend: { orientation: "h", x: 0, y: 1.15 } }, config);
    document.getElementById(id).on("plotly_click", (event) => {
      const url = event.points[0] && event.points[0].customdata;
      if (url) window.location.href = url;
    });
  }
  chart("chart-trend-p95", "p95 of iterations (ms)", "p95_ms");
  chart("chart-trend-rps", "Iterations per second", "rps");
})();

// The Scaling view's chart: measured speedup against workers, with the ideal line, the
// 0.75·N efficiency line and the fitted Amdahl curve. Data from the API URL in data-url.
(function () {
  "use strict";
  const box = document.getElementById("scaling-chart");
  if (!box || !window.Plotly) return;

  fetch(box.dataset.url, { credentials: "same-origin" })
    .then((response) => response.json())
    .then((data) => {
      const measured = data.points.filter((p) => p.speedup !== null);
      if (!measured.length) return; // the page says why (no 1-worker run, or none at all)
      const top = Math.max(8, ...data.points.map((p) => p.workers));
      const ns = Array.from({ length: top }, (_, i) => i + 1);
      const traces = [
        { type: "scatter", mode: "lines", name: "ideal (N)", x: ns, y: ns,
          line: { dash: "dot", color: "#9ca3af" }, hoverinfo: "skip" },
        { type: "scatter", mode: "lines", name: "efficiency 0.75 (0.75·N)", x: ns,
          y: ns.map((n) => 0.75 * n), line: { dash: "dash", color: "#b45309" }, hoverinfo: "skip" },
      ];
      if (data.fit.length) {
        traces.push({ type: "scatter", mode: "lines",
          name: `Amdahl fit (serial fraction ${data.serial_fraction.toFixed(3)})`,
          x: data.fit.map((p) => p.workers), y: data.fit.map((p) => p.speedup),
          line: { color: "#7c3aed" }, hovertemplate: "%{x} workers: %{y:.2f}×<extra>Amdahl</extra>" });
      }
      traces.push({ type: "scatter", mode: "markers+lines", name: "measured speedup",
        x: measured.map((p) => p.workers), y: measured.map((p) => p.speedup),
        marker: { size: measured.map((p) => (p.workers === data.recommended_workers ? 16 : 10)), color: "#2563eb" },
        customdata: measured.map((p) => `/runs/${p.latest_run}/`),
        text: measured.map((p) => `wall ${p.wall_seconds.toFixed(2)} s · efficiency ${p.efficiency.toFixed(2)} · ${p.runs.length} run${p.runs.length === 1 ? "" : "s"}`),
        hovertemplate: "%{x} workers: %{y:.2f}×<br>%{text}<extra>measured</extra>" });
      const layout = {
        title: { text: "Measured speedup (wall at 1 worker / wall at N)" },
        margin: { t: 60, l: 60, r: 30, b: 90 }, hovermode: "closest",
        legend: { orientation: "h", x: 0, y: -0.3 },
        xaxis: { title: { text: "workers" }, tickvals: ns, range: [0.5, top + 0.5] },
        yaxis: { title: { text: "speedup" }, rangemode: "tozero", tickformat: ".1f" },
      };
      Plotly.newPlot(box, traces, layout, { displayModeBar: false, responsive: true });
      box.dataset.drawn = "1";
      box.on("plotly_click", (event) => {
        const url = event.points[0] && event.points[0].customdata;
        if (url) window.location.href = url;
      });
    });
})();

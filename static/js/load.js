// A load run's page (issue #16): users / throughput / failures and latency percentiles over
// time, sortable stats per test and per endpoint, the failures table and the thresholds.
// First paint from the data the page carries (#load-data); then, on the live page, a websocket
// snapshot and one "load" message per merged second. The HTML report is this page without
// the websocket. Text is only ever written with textContent or through plotly (inert).
(function () {
  "use strict";
  const app = document.getElementById("load-app");
  if (!app) return;
  const inert = window.ptd.inert;
  const config = { displayModeBar: false, responsive: true };
  const CHART_EVERY_MS = 1000;
  const state = { series: new Map(), stats: null, errors: [], thresholds: [], run: null, users: null };
  const sorting = { tests: { key: "iterations", desc: true }, endpoints: { key: "iterations", desc: true } };
  let drawTimer = null;
  let seq = null;
  // When each second arrived, for tests and the live-delay benchmark.
  const arrivals = (window.ptdLoadArrivals = window.ptdLoadArrivals || []);

  const active = (status) => ["queued", "running"].includes(status);

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "–";
    return Number(value).toFixed(digits === undefined ? 1 : digits);
  }

  function apply(load) {
    if (!load) return;
    for (const s of load.series || load.seconds || []) state.series.set(s.second, s);
    if (load.stats) state.stats = load.stats;
    if (load.errors) state.errors = load.errors;
    if (load.thresholds) state.thresholds = load.thresholds;
    if (load.users !== undefined && load.users !== null) state.users = load.users;
    if (load.duration_seconds) state.duration = load.duration_seconds;  // measured, once known
  }

  function setRun(run) {
    if (!run) return;
    state.run = run;
    const badge = document.getElementById("run-status");
    badge.textContent = run.status;
    badge.dataset.runStatus = run.status;
    badge.className = "status status-" + run.status;
    document.getElementById("run-message").textContent = run.message || "";
    if (!active(run.status)) {
      const cancel = document.getElementById("cancel-form");
      if (cancel) cancel.remove();
    }
  }

  function renderMetrics() {
    const total = (state.stats && state.stats.total) || {};
    const seconds = [...state.series.values()];
    // Before the socket's snapshot, the page's own badge says (the report has none: it is over).
    const status = state.run ? state.run.status : document.getElementById("run-status").dataset.runStatus;
    const running = active(status);
    const last = seconds.length ? seconds[seconds.length - 1] : null;
    const peak = seconds.reduce((most, s) => Math.max(most, s.users), 0);
    // Now while it goes; once over, the run's users (its last stored second may come after
    // the users stopped: 0), else the peak of the stored seconds.
    const over = state.users !== null ? state.users : peak;
    const values = {
      users: running ? (last ? last.users : null) : (last || state.users !== null ? over : null),
      rps: total.rps, iterations: total.iterations, failures: total.failures,
      p50_ms: total.p50_ms, p95_ms: total.p95_ms, p99_ms: total.p99_ms,
      // Once over, the load's measured length (start to stop); meanwhile its stored seconds
      // (a drawn point spans seconds), which also count the final flush's second.
      duration: !running && state.duration ? state.duration
        : (last ? last.second + (last.span || 1) : null),
    };
    for (const node of app.querySelectorAll("[data-load]")) {
      const key = node.dataset.load;
      const digits = ["users", "iterations", "failures", "duration"].includes(key) ? 0 : 1;
      node.textContent = fmt(values[key], digits);
    }
  }

  // A threshold's value in its metric's unit (runs.load.thresholds: ms, % or per second).
  function measured(t) {
    if (t.value === null || t.value === undefined) return "no samples";
    const metric = /(?:^|: )(\S+?)\s*(?:<|>)/.exec(t.expr);
    const name = metric ? metric[1] : "";
    const unit = name === "errors" ? " %" : name === "rps" ? "/s" : " ms";
    return fmt(t.value, 2) + unit;
  }

  function renderThresholds() {
    const list = document.getElementById("load-thresholds");
    if (!state.thresholds.length) return;
    list.replaceChildren(...state.thresholds.map((t) => {
      const item = el("li");
      item.dataset.expr = t.expr;
      item.dataset.passed = String(t.passed);
      const badge = el("span", t.passed ? "pass" : "fail", "status status-" + (t.passed ? "passed" : "failed"));
      item.append(badge, " ", el("code", t.expr), el("span", ` measured ${measured(t)}`, "muted"));
      return item;
    }));
  }

  function sortRows(rows, how) {
    const dir = how.desc ? -1 : 1;
    return rows.slice().sort((a, b) => {
      const x = a[how.key], y = b[how.key];
      if (typeof x === "string" || typeof y === "string") return dir * String(x).localeCompare(String(y));
      return dir * ((x === null ? -Infinity : x) - (y === null ? -Infinity : y));
    });
  }

  function renderTable(id) {
    const table = document.getElementById(id);
    const kind = table.dataset.kind;
    const rows = (state.stats && state.stats[kind]) || [];
    const keys = [...table.querySelectorAll("th")].map((th) => th.dataset.key);
    for (const th of table.querySelectorAll("th")) {
      th.dataset.sorted = th.dataset.key === sorting[kind].key ? (sorting[kind].desc ? "desc" : "asc") : "";
    }
    const body = table.tBodies[0];
    if (!rows.length) {
      const cell = el("td", "no samples yet", "muted");
      cell.colSpan = keys.length;
      const row = el("tr");
      row.append(cell);
      body.replaceChildren(row);
      return;
    }
    body.replaceChildren(...sortRows(rows, sorting[kind]).map((r) => {
      const row = el("tr");
      for (const key of keys) {
        const value = r[key];
        const text = typeof value === "number" && key.endsWith("_ms") || key === "rps" ? fmt(value, 1) : (value ?? "–");
        const cell = el("td", String(text), ["nodeid", "path"].includes(key) ? "mono" : "num");
        if (key === "failures" && value) cell.classList.add("bad");
        row.append(cell);
      }
      return row;
    }));
  }

  function renderErrors() {
    const body = document.getElementById("load-errors").tBodies[0];
    if (!state.errors.length) return;
    body.replaceChildren(...state.errors.map((e) => {
      const row = el("tr");
      const error = el("td");
      const details = el("details");
      details.append(el("summary", e.error), el("pre", e.traceback || ""));
      error.append(details);
      row.append(el("td", String(e.count), "num"), el("td", e.kind), el("td", e.name, "mono"), error);
      return row;
    }));
  }

  function renderCharts() {
    if (!window.Plotly) return;
    const rows = [...state.series.values()].sort((a, b) => a.second - b.second);
    const x = rows.map((r) => r.second);
    // One point is no line: markers too while the series is short (a short run's one second).
    const mode = rows.length < 30 ? "lines+markers" : "lines";
    const mostUsers = rows.reduce((most, r) => Math.max(most, r.users), 0);
    const layout = (title, extra) => Object.assign({
      title: { text: title }, margin: { t: 50, l: 60, r: 60, b: 40 }, hovermode: "x unified",
      legend: { orientation: "h", x: 0, y: 1.15 }, xaxis: { title: { text: "second of load" } },
      yaxis: { rangemode: "tozero" },
    }, extra || {});
    Plotly.react("chart-load-rps", [
      { type: "scatter", mode, name: "iterations/s", x, y: rows.map((r) => r.rps) },
      { type: "scatter", mode, name: "failures/s", x, y: rows.map((r) => r.failures), line: { color: "#dc2626" } },
      { type: "scatter", mode, name: "users", x, y: rows.map((r) => r.users), yaxis: "y2", line: { dash: "dot", color: "#6b7280" } },
    ], layout("Users, iterations/s and failures/s", {
      yaxis2: { title: { text: "users" }, overlaying: "y", side: "right", rangemode: "tozero",
                tickformat: "d", dtick: Math.max(1, Math.ceil(mostUsers / 5)) },  // whole users
    }), config);
    Plotly.react("chart-load-latency", ["p50_ms", "p95_ms", "p99_ms"].map((key) => ({
      type: "scatter", mode, name: inert(key.replace("_ms", "")), x, y: rows.map((r) => r[key]),
    })), layout("Latency percentiles of iterations (ms)"), config);
  }

  function renderText() {
    renderMetrics();
    renderThresholds();
    renderTable("stats-tests");
    renderTable("stats-endpoints");
    renderErrors();
  }

  function scheduleCharts() {
    if (drawTimer) return;
    drawTimer = setTimeout(() => { drawTimer = null; renderCharts(); }, CHART_EVERY_MS);
  }

  for (const table of app.querySelectorAll("table.sortable")) {
    table.tHead.addEventListener("click", (event) => {
      const th = event.target.closest("th");
      if (!th) return;
      const how = sorting[table.dataset.kind];
      how.desc = how.key === th.dataset.key ? !how.desc : !["nodeid", "method", "path"].includes(th.dataset.key);
      how.key = th.dataset.key;
      renderTable(table.id);
    });
  }

  const embedded = document.getElementById("load-data");
  if (embedded) apply(JSON.parse(embedded.textContent));
  renderText();
  renderCharts();

  const wsUrl = app.dataset.wsUrl;
  if (!wsUrl) return;  // the report: no websocket
  let retry = 0;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + wsUrl);
    socket.onopen = () => { retry = 0; };
    socket.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.seq !== undefined && msg.type !== "snapshot") {
        if (seq !== null && msg.seq <= seq) return;  // already in the snapshot
        if (seq !== null && msg.seq > seq + 1) socket.send(JSON.stringify({ type: "snapshot" }));
        seq = msg.seq;
      }
      if (msg.type === "snapshot") {
        seq = msg.seq;
        state.series.clear();
        apply(msg.load);
        setRun(msg.run);
      } else if (msg.type === "load") {
        apply(msg);
        arrivals.push({ at: Date.now(), ticked_at: msg.ticked_at, sent_at: msg.sent_at,
                        seconds: (msg.seconds || []).map((s) => s.second) });
      } else if (msg.type === "status") {
        if (state.run) setRun(Object.assign({}, state.run, { status: msg.status }));
        else document.getElementById("run-status").textContent = msg.status;
      } else if (msg.type === "message") {
        document.getElementById("run-message").textContent = msg.message;
      } else if (msg.type === "finished") {
        setRun(msg.run);
        socket.send(JSON.stringify({ type: "snapshot" }));  // the final figures, complete
      } else {
        return;
      }
      renderText();
      scheduleCharts();
    };
    socket.onclose = (event) => {
      if (event.code === 4401 || event.code === 4404) return;
      if (state.run && !active(state.run.status)) return;
      retry = Math.min(retry + 1, 5);
      setTimeout(connect, 500 * retry);
    };
  }
  connect();
})();

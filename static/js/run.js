// Live run page: a websocket snapshot, then batched increments (DESIGN.md section 6).
// Data is only ever written with textContent or through plotly: nodeids and errors stay inert.
(function () {
  "use strict";
  const app = document.getElementById("run-app");
  if (!app) return;
  const FAILING = new Set(["failed", "error", "crashed"]);
  // While a run goes, the page redraws at a fixed cadence, whatever the rate of batches: the
  // browser shares the run's cores, and every redraw is CPU the tests do not get.
  const LIVE_BARS = 1000;      // the live timeline shows the latest bars only
  const TEXT_EVERY_MS = 250;   // counters, lanes, failures
  const CHART_EVERY_MS = 2000; // the timeline and the balance chart
  const COLORS = {
    passed: "#16a34a", failed: "#dc2626", error: "#b91c1c", crashed: "#7f1d1d",
    skipped: "#9ca3af", xfailed: "#a3a3a3", xpassed: "#65a30d", rerun: "#f59e0b",
  };
  // Plotly renders a few HTML tags (<a>, <b>, <span style>) in labels: user text goes in inert.
  const inert = (text) => String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  let state;
  let socket;
  let retry = 0;
  let drawTimer = null;
  let textTimer = null;
  // Arrival times, for the latency benchmark: nodeid -> ms, and one entry per batch.
  const received = (window.ptdReceived = window.ptdReceived || {});
  const batches = (window.ptdBatches = window.ptdBatches || []);

  function reset() {
    state = { run: null, results: new Map(), workers: new Map(), collected: null, t0: null,
              estimate: null, startedAt: null, failures: [], busy: 0,
              counts: { done: 0, passed: 0, failed: 0, skipped: 0 } };
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function addResults(results) {
    const now = Date.now();
    for (const r of results || []) {
      const key = r.nodeid + "\u0000" + r.attempt + "\u0000" + r.worker;
      if (state.results.has(key)) continue;
      state.results.set(key, r);
      if (!(r.nodeid in received)) received[r.nodeid] = now;
      if (r.start && (state.t0 === null || r.start < state.t0)) state.t0 = r.start;
      count(r);
    }
  }

  // Kept up to date as results arrive: a batch costs its own size, not the run's.
  function count(r) {
    state.busy += r.duration || 0;
    if (r.outcome === "rerun") return;
    const c = state.counts;
    c.done += 1;
    if (FAILING.has(r.outcome)) {
      c.failed += 1;
      state.failures.push(r);
    } else if (r.outcome === "skipped" || r.outcome === "xfailed") c.skipped += 1;
    else c.passed += 1;
  }

  function setWorkers(workers) {
    for (const w of workers || []) state.workers.set(w.id, w);
  }

  function setRun(run) {
    if (!run) return;
    state.run = run;
    if (run.collected) state.collected = run.collected;
    if (run.started_at) state.startedAt = Date.parse(run.started_at);
    const badge = document.getElementById("run-status");
    badge.textContent = run.status;
    badge.dataset.runStatus = run.status;
    badge.className = "status status-" + run.status;
    document.getElementById("run-message").textContent = run.message || "";
    for (const node of document.querySelectorAll("[data-metric]")) {
      const value = run[node.dataset.metric];
      if (value !== null && value !== undefined) {
        node.textContent = Number(value).toFixed(node.dataset.metric === "flakiness_rate" ? 3 : 2);
      }
    }
    if (!["queued", "running"].includes(run.status)) {
      const cancel = document.getElementById("cancel-form");
      if (cancel) cancel.remove();
    }
  }

  // Remaining time: from the tests' past durations when history exists, else extrapolated.
  function eta(c, elapsed) {
    const workers = Math.max(1, (state.run && state.run.workers) || state.workers.size || 1);
    if (state.estimate && state.estimate.known_tests > 0) {
      return Math.max(0, state.estimate.seconds - state.busy) / workers;
    }
    if (!state.collected) return 0;
    return Math.max(0, ((state.collected - c.done) / c.done) * elapsed);
  }

  function renderProgress() {
    const c = state.counts;
    const total = state.collected || c.done || 1;
    const bar = document.getElementById("progress");
    bar.max = total;
    bar.value = Math.min(c.done, total);
    let text = `${c.done}/${state.collected ?? "?"} done · ${c.passed} passed · ${c.failed} failed · ${c.skipped} skipped`;
    const running = state.run && state.run.status === "running";
    if (state.startedAt) {
      const end = running ? Date.now() : Date.parse(state.run.finished_at || new Date().toISOString());
      const elapsed = (end - state.startedAt) / 1000;
      text += ` · elapsed ${elapsed.toFixed(1)} s`;
      if (running && c.done > 0) {
        text += ` · ETA ${eta(c, elapsed).toFixed(0)} s`;
      }
    }
    document.getElementById("progress-text").textContent = text;
  }

  function renderLanes() {
    const lanes = document.getElementById("lanes");
    const ids = [...state.workers.keys()].sort((a, b) =>
      a.localeCompare(b, undefined, { numeric: true }));
    if (lanes.children.length !== ids.length ||
        ids.some((id, i) => lanes.children[i].dataset.worker !== id)) {
      lanes.replaceChildren(...ids.map((id) => {
        const lane = el("div", null, "lane");
        lane.dataset.worker = id;
        lane.append(el("strong", id), el("span"), el("div", null, "current"));
        return lane;
      }));
    }
    ids.forEach((id, i) => {  // same lanes: only their text changes
      const w = state.workers.get(id);
      const [, summary, current] = lanes.children[i].children;
      const text = ` · ${w.tests} tests · ${Number(w.busy_seconds).toFixed(1)} s busy${w.crashed ? ` · ${w.crashed} crashed` : ""}`;
      if (summary.textContent !== text) summary.textContent = text;
      if (current.textContent !== (w.current_test || "")) current.textContent = w.current_test || "";
    });
  }

  // "Rerun K times" and the test's history page, for a failed test (issue #6).
  function baseNodeid(nodeid) {
    const m = /^(.*?)\[(?:(.*)-)?(\d+)-(\d+)\]$/.exec(nodeid);
    if (!m || Number(m[3]) < 1 || Number(m[3]) > Number(m[4])) return nodeid;
    return m[2] ? `${m[1]}[${m[2]}]` : m[1];
  }

  function rerunControls(nodeid) {
    const conf = document.getElementById("rerun-config");
    if (!conf) return null;
    const base = baseNodeid(nodeid);
    const box = el("div", null, "rerun");
    const link = el("a", "history");
    link.href = conf.dataset.testsUrl + encodeURIComponent(base).replace(/%2F/g, "/");
    const form = el("form", null, "inline");
    form.method = "post";
    form.action = conf.dataset.url;
    const hidden = (name, value) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    };
    hidden("csrfmiddlewaretoken", conf.dataset.csrf);
    hidden("nodeid", base);
    hidden("run", conf.dataset.runId);
    const times = document.createElement("input");
    times.type = "number";
    times.name = "times";
    times.min = "1";
    times.max = "200";
    times.value = "10";
    times.style.width = "4.5rem";
    times.setAttribute("aria-label", "times");
    const button = el("button", "Rerun ×K", "secondary small");
    button.type = "submit";
    form.append(" ", times, " ", button);
    box.append(link, form);
    return box;
  }

  let shownFailures = -1;

  function renderFailures() {
    const list = document.getElementById("failures");
    const failed = state.failures;
    if (failed.length === shownFailures) return;  // unchanged: leave the DOM alone
    shownFailures = failed.length;
    if (!failed.length) {
      list.replaceChildren(el("li", "none", "muted"));
      return;
    }
    list.replaceChildren(...failed.slice(0, 200).map((r) => {
      const item = el("li");
      item.append(el("strong", r.nodeid), el("span", ` (${r.outcome} on ${r.worker})`, "muted"));
      const rerun = rerunControls(r.nodeid);
      if (rerun) item.append(rerun);
      if (r.longrepr) item.append(el("pre", r.longrepr));
      return item;
    }));
  }

  function drawCharts() {
    drawTimer = null;
    if (!window.Plotly) return;
    const byOutcome = new Map();
    const t0 = state.t0 || 0;
    let shown = [...state.results.values()];
    if (state.run && state.run.status === "running" && shown.length > LIVE_BARS) {
      // While a big run goes, the timeline shows its latest bars only (results arrive in
      // finishing order): redrawing tens of thousands of bars would keep the page busy.
      shown = shown.slice(-LIVE_BARS);
    }
    for (const r of shown) {
      if (r.start === null || r.start === undefined) continue;
      if (!byOutcome.has(r.outcome)) byOutcome.set(r.outcome, { x: [], base: [], y: [], text: [] });
      const t = byOutcome.get(r.outcome);
      t.base.push(r.start - t0);
      t.x.push(Math.max(r.duration, 0.001));
      t.y.push(inert(r.worker));
      t.text.push(inert(`${r.nodeid} (${r.duration.toFixed(3)} s)`));
    }
    const traces = [...byOutcome.entries()].map(([outcome, t]) => ({
      type: "bar", orientation: "h", name: outcome, x: t.x, base: t.base, y: t.y,
      text: t.text, hoverinfo: "text", textposition: "none",
      marker: { color: COLORS[outcome] || "#64748b" },
    }));
    const layout = { barmode: "overlay", margin: { t: 20, l: 60, r: 20, b: 40 },
                     xaxis: { title: "seconds since the first test" },
                     yaxis: { categoryorder: "category descending" }, height: 120 + 30 * state.workers.size };
    Plotly.react("gantt", traces, layout, { displayModeBar: false, responsive: true });
    const ids = [...state.workers.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    const workers = ids.map((id) => state.workers.get(id));
    Plotly.react("balance", [
      { type: "bar", name: "busy seconds", x: ids.map(inert), y: workers.map((w) => w.busy_seconds) },
      { type: "bar", name: "tests", x: ids.map(inert), y: workers.map((w) => w.tests), yaxis: "y2" },
    ], { barmode: "group", margin: { t: 20, l: 50, r: 50, b: 40 },
         yaxis: { title: "busy seconds" }, yaxis2: { title: "tests", overlaying: "y", side: "right" } },
    { displayModeBar: false, responsive: true });
  }

  function renderText() {
    textTimer = null;
    renderProgress();
    renderLanes();
    renderFailures();
  }

  function render(immediate) {
    if (immediate) {
      clearTimeout(textTimer);
      clearTimeout(drawTimer);
      drawTimer = null;
      renderText();
      drawCharts();
      return;
    }
    if (textTimer === null) textTimer = setTimeout(renderText, TEXT_EVERY_MS);
    if (drawTimer === null) drawTimer = setTimeout(drawCharts, CHART_EVERY_MS);
  }

  function onMessage(msg) {
    switch (msg.type) {
      case "snapshot":
        reset();
        shownFailures = -1;
        setRun(msg.run);
        state.estimate = msg.estimate || null;
        setWorkers(msg.workers);
        addResults(msg.results);
        render(true);
        break;
      case "results":
        if (msg.sent_at) batches.push({ sent_at: msg.sent_at, received: Date.now(), n: msg.results.length });
        addResults(msg.results);
        setWorkers(msg.workers);
        if (msg.progress && msg.progress.collected) state.collected = msg.progress.collected;
        if (state.run && state.run.status === "queued") state.run.status = "running";
        render(false);
        break;
      case "status":
        if (state.run) {
          state.run.status = msg.status;
          if (!state.startedAt) state.startedAt = Date.now();
          setRun(state.run);
        }
        renderProgress();
        break;
      case "finished":
        setRun(msg.run);
        setWorkers(msg.run.per_worker);
        render(true);
        break;
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + app.dataset.wsUrl);
    socket.onopen = () => { retry = 0; };
    socket.onmessage = (event) => onMessage(JSON.parse(event.data));
    socket.onclose = () => {
      if (state.run && !["queued", "running"].includes(state.run.status)) return;
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 250 * 2 ** retry);  // reconnect; the snapshot rebuilds everything
    };
  }

  reset();
  setInterval(() => { if (state.run && state.run.status === "running") renderProgress(); }, 1000);
  connect();
})();

// Live run page: a websocket snapshot, then batched increments (README: Architecture).
// Data is only ever written with textContent or through plotly: nodeids and errors stay inert.
(function () {
  "use strict";
  const app = document.getElementById("run-app");
  if (!app) return;
  // The outcomes that fail a run: the server's set (TestResult.FAILING), not a copy of it.
  const FAILING = new Set(app.dataset.failing.split(" "));
  // While a run goes, the page redraws at a fixed cadence, whatever the rate of batches: the
  // browser shares the run's cores, and every redraw is CPU the tests do not get.
  const LIVE_BARS = 600;       // bars of the live timeline of a big run (see sliceBars)
  const TEXT_EVERY_MS = 250;   // counters, lanes, failures
  const CHART_EVERY_MS = 2000; // the timeline and the balance chart
  const COLORS = {
    passed: "#16a34a", failed: "#dc2626", error: "#b91c1c", crashed: "#7f1d1d",
    skipped: "#9ca3af", xfailed: "#a3a3a3", xpassed: "#65a30d", rerun: "#f59e0b",
  };
  const inert = window.ptd.inert; // user text in plotly labels stays text (common.js)
  let state;
  let socket;
  let retry = 0;
  // Messages of the run are numbered (seq); the snapshot says where it stands. A gap means a
  // message was lost: ask for a snapshot and ignore numbered messages until it comes.
  let seq = null;
  let resyncing = false;
  const resyncs = (window.ptdResyncs = window.ptdResyncs || []);
  let drawTimer = null;
  let textTimer = null;
  // Arrival times, for the latency benchmark: nodeid -> ms, and one entry per batch.
  const received = (window.ptdReceived = window.ptdReceived || {});
  const batches = (window.ptdBatches = window.ptdBatches || []);

  function reset() {
    state = { run: null, results: new Map(), workers: new Map(), collected: null, t0: null,
              estimate: null, startedAt: null, failures: [],
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

  // Kept up to date as results arrive: a batch costs its own size, not the run's. The page
  // counts what it has received (not the server's figures) to notice results it never got.
  function count(r) {
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
    const cut = document.getElementById("log-cut");
    if (cut && run.log_bytes_cut) {
      const mb = run.log_bytes_cut / 1048576;
      document.getElementById("log-cut-size").textContent =
        mb >= 1 ? `${mb.toFixed(1)} MB` : `${(run.log_bytes_cut / 1024).toFixed(1)} KB`;
      cut.hidden = false;
    }
    setMachines(run.machines);
    const warnings = document.getElementById("run-warnings");
    if (warnings && run.warnings) warnings.replaceChildren(...run.warnings.map((w) => el("li", w)));
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

  // A run over several machines: one row per machine (agent) and its shard's state.
  function setMachines(machines) {
    const section = document.getElementById("machines");
    if (!section || !machines || !machines.length) return;
    section.hidden = false;
    const rows = machines.map((m) => {
      const row = el("tr");
      row.dataset.agent = m.agent;
      const state = el("span", m.state, "status status-" + m.state);
      const cell = el("td");
      cell.append(state);
      row.append(el("td", m.agent, "mono"), cell, el("td", String(m.workers)), el("td", m.message || ""));
      return row;
    });
    section.querySelector("tbody").replaceChildren(...rows);
  }

  // Remaining time: from the tests' past durations when history exists, else extrapolated.
  function eta(c, elapsed) {
    const workers = Math.max(1, (state.run && state.run.workers) || state.workers.size || 1);
    if (state.estimate && state.estimate.known_tests > 0) {
      // Work done so far: the workers' busy seconds as the server sums them (not summed again).
      let busy = 0;
      for (const w of state.workers.values()) busy += w.busy_seconds || 0;
      return Math.max(0, state.estimate.seconds - busy) / workers;
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
      const lanesOf = new Set();
      lanes.replaceChildren(...ids.map((id) => {
        const lane = el("div", null, "lane");
        lane.dataset.worker = id;
        // Runs over several machines: workers are AGENT/gwN, their lanes grouped by machine.
        const machine = id.includes("/") ? id.split("/")[0] : "";
        if (machine && !lanesOf.has(machine)) {
          lanesOf.add(machine);
          lane.classList.add("machine-start");
          lane.dataset.machine = machine;
        }
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
    button.title = `just this test, ${conf.dataset.rerunOn}`;
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
      const group = r.group ? `, group ${r.group}` : "";
      item.append(el("strong", r.nodeid), el("span", ` (${r.outcome} on ${r.worker}${group})`, "muted"));
      const rerun = rerunControls(r.nodeid);
      if (rerun) item.append(rerun);
      if (r.longrepr) item.append(el("pre", r.longrepr));
      return item;
    }));
  }

  // Bars of one trace per outcome: x = width, base = start, y = worker, text = hover.
  function barTraces(bars) {
    const byOutcome = new Map();
    for (const b of bars) {
      if (!byOutcome.has(b.outcome)) byOutcome.set(b.outcome, { x: [], base: [], y: [], text: [] });
      const t = byOutcome.get(b.outcome);
      t.base.push(b.base);
      t.x.push(b.width);
      t.y.push(inert(b.worker));
      t.text.push(inert(b.text));
    }
    return [...byOutcome.entries()].map(([outcome, t]) => ({
      type: "bar", orientation: "h", name: outcome, x: t.x, base: t.base, y: t.y,
      text: t.text, hoverinfo: "text", textposition: "none",
      marker: { color: COLORS[outcome] || "#64748b" },
    }));
  }

  // One bar per test: the finished run's timeline, and a small run's live one.
  function testBars(results, t0) {
    const bars = [];
    for (const r of results) {
      if (r.start === null || r.start === undefined) continue;
      bars.push({ outcome: r.outcome, base: r.start - t0, width: Math.max(r.duration, 0.001),
                  worker: r.worker,
                  text: `${r.nodeid}${r.group ? " @" + r.group : ""} (${r.duration.toFixed(3)} s)` });
    }
    return bars;
  }

  // While a big run goes: the whole run so far in at most LIVE_BARS bars, each worker's time
  // cut into equal slices coloured by the worst outcome in them. The cost of a redraw stays
  // bounded whatever the number of tests; the per-test timeline comes when the run ends.
  const SEVERITY = ["passed", "xpassed", "skipped", "xfailed", "rerun", "failed", "error", "crashed"];
  function sliceBars(results, t0) {
    let end = t0;
    const workers = new Set();
    for (const r of results) {
      if (r.stop > end) end = r.stop;
      workers.add(r.worker);
    }
    const slices = Math.max(10, Math.floor(LIVE_BARS / Math.max(1, workers.size)));
    const width = Math.max((end - t0) / slices, 0.001);
    const cells = new Map();
    for (const r of results) {
      if (r.start === null || r.start === undefined) continue;
      const i = Math.min(slices - 1, Math.floor((r.start - t0) / width));
      const key = r.worker + "\u0000" + i;
      let cell = cells.get(key);
      if (!cell) cells.set(key, (cell = { worker: r.worker, i, tests: 0, failed: 0, worst: "passed" }));
      cell.tests += 1;
      if (FAILING.has(r.outcome)) cell.failed += 1;
      if (SEVERITY.indexOf(r.outcome) > SEVERITY.indexOf(cell.worst)) cell.worst = r.outcome;
    }
    return [...cells.values()].map((c) => ({
      outcome: c.worst, base: c.i * width, width, worker: c.worker,
      text: `${c.tests} tests${c.failed ? `, ${c.failed} failing` : ""} (${(c.i * width).toFixed(1)}-${((c.i + 1) * width).toFixed(1)} s)`,
    }));
  }

  function drawCharts() {
    drawTimer = null;
    if (!window.Plotly) return;
    const t0 = state.t0 || 0;
    const results = [...state.results.values()];
    // Nothing to chart yet (queued, or a run pytest refused): say so, not empty axes.
    for (const id of ["gantt", "balance"]) {
      const box = document.getElementById(id);
      const note = box.querySelector(":scope > .chart-empty");
      if (results.length && note) note.remove();
      if (!results.length) {
        Plotly.purge(box);
        if (!note) box.append(el("p", "No test has reported yet.", "muted chart-empty"));
      }
    }
    if (!results.length) return;
    const live = state.run && state.run.status === "running" && results.length > LIVE_BARS;
    const traces = barTraces(live ? sliceBars(results, t0) : testBars(results, t0));
    const layout = { barmode: "overlay", margin: { t: 20, l: 60, r: 20, b: 40 },
                     xaxis: { title: { text: "seconds since the first test" } },
                     yaxis: { categoryorder: "category descending" },
                     height: Math.max(318, 120 + 30 * state.workers.size) };  // fills its .chart box
    Plotly.react("gantt", traces, layout, { displayModeBar: false, responsive: true });
    const ids = [...state.workers.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    const workers = ids.map((id) => state.workers.get(id));
    Plotly.react("balance", [
      // Two y axes: offsetgroups put the bars side by side (barmode alone would overlay them).
      { type: "bar", name: "busy seconds", x: ids.map(inert), y: workers.map((w) => w.busy_seconds),
        offsetgroup: "busy" },
      { type: "bar", name: "tests", x: ids.map(inert), y: workers.map((w) => w.tests), yaxis: "y2",
        offsetgroup: "tests" },
    ], { barmode: "group", margin: { t: 20, l: 50, r: 50, b: 40 },
         legend: { orientation: "h", y: 1.12 },
         yaxis: { title: { text: "busy seconds" }, rangemode: "tozero", automargin: true },
         yaxis2: { title: { text: "tests" }, overlaying: "y", side: "right", rangemode: "tozero",
                   automargin: true, showgrid: false, tickformat: "d" } },
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

  function resync(why) {
    resyncs.push(why);
    resyncing = true;
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "snapshot" }));
    } else if (socket) {
      socket.close();  // reconnecting brings a snapshot too
    }
  }

  // Whether a numbered message is the next one; a gap asks for a snapshot.
  function inSequence(msg) {
    if (typeof msg.seq !== "number" || msg.type === "snapshot") return true;
    if (seq === null || resyncing || msg.seq <= seq) return false;  // the snapshot has it
    if (msg.seq > seq + 1) {
      resync(`gap: ${seq + 1} to ${msg.seq - 1} missing`);
      return false;
    }
    seq = msg.seq;
    return true;
  }

  function onMessage(msg) {
    if (!inSequence(msg)) return;
    switch (msg.type) {
      case "snapshot":
        seq = typeof msg.seq === "number" ? msg.seq : null;
        resyncing = false;
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
      case "machines":
        setMachines(msg.machines);
        if (state.run) state.run.machines = msg.machines;
        break;
      case "status":
        if (state.run) {
          state.run.status = msg.status;
          if (typeof msg.message === "string") state.run.message = msg.message;
          if (!state.startedAt) state.startedAt = Date.now();
          setRun(state.run);
        }
        renderProgress();
        break;
      case "finished":
        setRun(msg.run);
        setWorkers(msg.run.per_worker);
        render(true);
        // Every result stored should be here: if not, some never came; fetch them all.
        if (msg.run.tests && msg.run.tests.total !== state.counts.done) {
          resync(`finished with ${msg.run.tests.total} results, ${state.counts.done} shown`);
        }
        break;
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + app.dataset.wsUrl);
    seq = null;  // until this connection's snapshot
    socket.onopen = () => { retry = 0; };
    socket.onmessage = (event) => onMessage(JSON.parse(event.data));
    socket.onclose = () => {
      if (state.run && !["queued", "running"].includes(state.run.status) && !resyncing) return;
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 250 * 2 ** retry);  // reconnect; the snapshot rebuilds everything
    };
  }

  reset();
  setInterval(() => { if (state.run && state.run.status === "running") renderProgress(); }, 1000);
  connect();
})();

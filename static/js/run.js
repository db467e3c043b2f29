// Live run page: a websocket snapshot, then batched increments (README: Architecture), held
// in one state (run_state.js) and drawn in frames: progress, cards, lanes, failures and the
// charts (run_charts.js) of a frame all come from the same results.
// Data is only ever written with textContent or through plotly: nodeids and output stay inert.
(function () {
  "use strict";
  const app = document.getElementById("run-app");
  if (!app) return;
  const { RunState, charts } = window.ptdRun;
  // The outcomes that fail a run: the server's set (TestResult.FAILING), not a copy of it.
  const FAILING = new Set(app.dataset.failing.split(" "));
  // While a run goes, the page redraws at a fixed cadence, whatever the rate of batches: the
  // browser shares the run's cores, and every redraw is CPU the tests do not get.
  const FRAME_MS = 500; // a small run's frame
  const BIG_FRAME_MS = 2000; // a big run's (more than charts.LIVE_BARS results)
  const OUTPUT = [["stdout", "stdout"], ["stderr", "stderr"], ["log", "log records"]];
  let state;
  let socket;
  let retry = 0;
  // Messages of the run are numbered (seq); the snapshot says where it stands. A gap means a
  // message was lost: ask for a snapshot and ignore numbered messages until it comes.
  let seq = null;
  let resyncing = false;
  const resyncs = (window.ptdResyncs = window.ptdResyncs || []);
  let frameTimer = null;
  let shown = null; // the counts of the last frame: the progress line says what the charts show
  let shownFailures = -1;
  // Arrival times, for the latency benchmark: nodeid -> ms, and one entry per batch.
  const received = (window.ptdReceived = window.ptdReceived || {});
  const batches = (window.ptdBatches = window.ptdBatches || []);

  function reset() {
    state = new RunState(FAILING);
    shown = null;
    shownFailures = -1;
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function addResults(results) {
    const now = Date.now();
    for (const nodeid of state.add(results)) if (!(nodeid in received)) received[nodeid] = now;
  }

  function showRun(run) {
    if (!run) return;
    state.setRun(run);
    const badge = document.getElementById("run-status");
    badge.textContent = run.status.replace("_", " ");
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
        delete node.dataset.live;
      }
    }
    const note = document.getElementById("metrics-note"); // why there is no speedup
    if (note && run.metrics_note && state.over) {
      note.textContent = `No speedup, efficiency or measured speedup: ${run.metrics_note}.`;
      note.hidden = false;
    }
    if (state.over) {
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

  // The progress line and, while the run goes, the wall and work cards "so far".
  function renderProgress() {
    const c = shown || state.counts;
    // A module that failed to import is counted done (an error) but was never collected.
    const known = state.collected === null || state.collected === undefined
      ? null : state.collected + c.collectErrors;
    const total = known || c.done || 1;
    const bar = document.getElementById("progress");
    bar.max = total;
    bar.value = Math.min(c.done, total);
    let text = `${c.done}/${known ?? "?"} done · ${c.passed} passed · ${c.failed} failed`
      + `${c.errors ? ` · ${c.errors} error${c.errors === 1 ? "" : "s"}` : ""} · ${c.skipped} skipped`;
    const elapsed = state.elapsed();
    if (elapsed !== null) {
      text += ` · elapsed ${elapsed.toFixed(1)} s`;
      if (state.running && c.done > 0) text += ` · ETA ${state.eta(elapsed).toFixed(0)} s`;
    }
    document.getElementById("progress-text").textContent = text;
    if (state.running) {
      const cards = { wall_seconds: elapsed, serial_seconds: c.work };
      for (const [metric, value] of Object.entries(cards)) {
        const node = document.querySelector(`[data-metric="${metric}"]`);
        if (!node || value === null || value === undefined) continue;
        node.textContent = value.toFixed(1);
        node.dataset.live = "so far";
      }
    }
  }

  function renderLanes(workers) {
    const lanes = document.getElementById("lanes");
    if (lanes.children.length !== workers.length ||
        workers.some((w, i) => lanes.children[i].dataset.worker !== w.id)) {
      const lanesOf = new Set();
      lanes.replaceChildren(...workers.map((w) => {
        const lane = el("div", null, "lane");
        lane.dataset.worker = w.id;
        // Runs over several machines: workers are AGENT/gwN, their lanes grouped by machine.
        const machine = w.id.includes("/") ? w.id.split("/")[0] : "";
        if (machine && !lanesOf.has(machine)) {
          lanesOf.add(machine);
          lane.classList.add("machine-start");
          lane.dataset.machine = machine;
        }
        lane.append(el("strong", w.id), el("span"), el("div", null, "current"));
        return lane;
      }));
    }
    workers.forEach((w, i) => {  // same lanes: only their text changes
      const [, summary, current] = lanes.children[i].children;
      const text = ` · ${w.tests} test${w.tests === 1 ? "" : "s"} · ${w.busy.toFixed(1)} s busy${w.crashed ? ` · ${w.crashed} crashed` : ""}`;
      if (summary.textContent !== text) summary.textContent = text;
      // The test the worker finished last: results come as tests end (a fork worker sends an
      // item's reports once it is over), so the one it is in now is not known here.
      const now = state.running && w.current ? `last finished: ${w.current}` : "";
      if (current.textContent !== now) current.textContent = now;
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
    for (const [name, value] of [["csrfmiddlewaretoken", conf.dataset.csrf], ["nodeid", base], ["run", conf.dataset.runId]]) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    }
    const times = document.createElement("input");
    Object.assign(times, { type: "number", name: "times", min: "1", max: "200", value: "10" });
    times.className = "w-5";
    times.setAttribute("aria-label", "times");
    const button = el("button", "Rerun ×K", "secondary small");
    button.type = "submit";
    button.title = `just this test, ${conf.dataset.rerunOn}`;
    form.append(" ", times, " ", button);
    box.append(link, form);
    return box;
  }

  // What a failing attempt printed, under its traceback: one <details> per stream.
  function outputOf(r) {
    const parts = OUTPUT.filter(([key]) => r[key]).map(([key, label]) => {
      const box = el("details", null, "output");
      box.dataset.stream = key;
      box.append(el("summary", `captured ${label}`), el("pre", r[key]));
      return box;
    });
    return parts;
  }

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
      item.dataset.nodeid = r.nodeid;
      const group = r.group ? `, group ${r.group}` : "";
      item.append(el("strong", r.nodeid), el("span", ` (${r.outcome} on ${r.worker}${group})`, "muted"));
      // A module that failed to import is no test to rerun (a rerun names path.py::test).
      const rerun = r.nodeid.includes("::") ? rerunControls(r.nodeid) : null;
      if (rerun) item.append(rerun);
      if (r.longrepr) item.append(el("pre", r.longrepr));
      item.append(...outputOf(r));
      return item;
    }));
  }

  function drawCharts(workers) {
    if (!window.Plotly) return;
    // Nothing to chart yet (queued, or a run pytest refused): say so, not empty axes.
    const empty = state.results.size === 0;
    for (const id of ["gantt", "balance"]) {
      const box = document.getElementById(id);
      const note = box.querySelector(":scope > .chart-empty");
      if (!empty && note) note.remove();
      if (empty) {
        Plotly.purge(box);
        if (!note) box.append(el("p", "No test has reported yet.", "muted chart-empty"));
      }
    }
    if (empty) return;
    charts.drawTimeline(document.getElementById("gantt"), state);
    charts.drawBalance(document.getElementById("balance"), workers);
  }

  // One frame: everything drawn from the state as it is now.
  function frame() {
    frameTimer = null;
    shown = { ...state.counts, work: state.work };
    const workers = state.workers();
    renderProgress();
    renderLanes(workers);
    renderFailures();
    drawCharts(workers);
    app.dataset.frameDone = String(shown.done); // what this frame shows (tests wait on it)
  }

  function render(immediate) {
    if (immediate) {
      clearTimeout(frameTimer);
      frame();
    } else if (frameTimer === null) {
      frameTimer = setTimeout(frame, state.results.size > charts.LIVE_BARS ? BIG_FRAME_MS : FRAME_MS);
    }
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
        showRun(msg.run);
        state.estimate = msg.estimate || null;
        state.setWorkers(msg.workers);
        addResults(msg.results);
        render(true);
        // Over before the page connected: the panel was drawn while the run still went.
        if (state.over && !document.querySelector("#time-breakdown svg")) showBreakdown();
        break;
      case "results":
        if (msg.sent_at) batches.push({ sent_at: msg.sent_at, received: Date.now(), n: msg.results.length });
        addResults(msg.results);
        state.setWorkers(msg.workers);
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
          showRun(state.run);
        }
        renderProgress();
        break;
      case "finished":
        showRun(msg.run);
        state.setWorkers(msg.run.per_worker);
        render(true);
        showBreakdown();
        // Every result stored should be here: if not, some never came; fetch them all.
        if (msg.run.tests && msg.run.tests.total !== state.counts.done) {
          resync(`finished with ${msg.run.tests.total} results, ${state.counts.done} shown`);
        }
        break;
    }
  }

  // Where the time went is computed as the run finishes and drawn by the server (one
  // template): take that section from the page once, rather than asking for a reload.
  async function showBreakdown() {
    const box = document.getElementById("time-breakdown");
    try {
      const page = await fetch(location.pathname, { credentials: "same-origin" });
      const fresh = page.ok
        ? new DOMParser().parseFromString(await page.text(), "text/html").getElementById("time-breakdown")
        : null;
      if (box && fresh) box.replaceWith(document.importNode(fresh, true));
    } catch (e) {
      // offline or the server going away: the section says to reload, which still works
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + app.dataset.wsUrl);
    seq = null;  // until this connection's snapshot
    socket.onopen = () => { retry = 0; };
    socket.onmessage = (event) => onMessage(JSON.parse(event.data));
    socket.onclose = () => {
      if (state.over && !resyncing) return;
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 250 * 2 ** retry);  // reconnect; the snapshot rebuilds everything
    };
  }

  reset();
  setInterval(() => { if (state.running) renderProgress(); }, 1000);  // the clock, not the counts
  connect();
})();

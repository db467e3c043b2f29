// The live run page's one state (run.js feeds it, run.js and run_charts.js draw from it).
// Progress, lanes, the balance chart and the timeline are all computed from the results held
// here, so a frame that draws them together cannot have them disagree (issue #17, item 7).
(function () {
  "use strict";
  const COLLECT_WORKER = "-"; // a collection error belongs to no worker (runs/execution/sink.py)

  function byWorkerId(a, b) {
    return a.localeCompare(b, undefined, { numeric: true });
  }

  class RunState {
    constructor(failing) {
      this.failing = failing; // the outcomes that fail a run: TestResult.FAILING
      this.run = null;
      this.results = new Map();
      this.servers = new Map(); // the server's worker rows: current test, crashes, lanes to show
      this.perWorker = new Map(); // id -> { tests, busy }, from the results
      this.collected = null;
      this.t0 = null;
      this.end = null;
      this.estimate = null;
      this.startedAt = null;
      this.failures = [];
      this.counts = { done: 0, passed: 0, failed: 0, errors: 0, skipped: 0, collectErrors: 0 };
      this.work = 0; // seconds of setup + call + teardown received so far
    }

    get running() {
      return Boolean(this.run && this.run.status === "running");
    }

    get over() { // finished one way or another: no more results will come
      return Boolean(this.run && !["queued", "running"].includes(this.run.status));
    }

    // Results are keyed by attempt: one sent twice (a snapshot after a batch) counts once.
    // Returns the nodeids added, for the latency benchmark's bookkeeping.
    add(results) {
      const added = [];
      for (const r of results || []) {
        const key = r.nodeid + "\u0000" + r.attempt + "\u0000" + r.worker;
        if (this.results.has(key)) continue;
        this.results.set(key, r);
        added.push(r.nodeid);
        if (r.start && (this.t0 === null || r.start < this.t0)) this.t0 = r.start;
        if (r.stop && (this.end === null || r.stop > this.end)) this.end = r.stop;
        this.count(r);
      }
      return added;
    }

    // Kept up to date as results arrive: a batch costs its own size, not the run's.
    count(r) {
      if (r.worker === COLLECT_WORKER) this.counts.collectErrors += 1;
      else {
        // Every attempt counts on its worker, as the server's figures do (WorkerDelta).
        const w = this.perWorker.get(r.worker) || { tests: 0, busy: 0 };
        w.tests += 1;
        w.busy += r.duration || 0;
        this.perWorker.set(r.worker, w);
        this.work += r.duration || 0;
      }
      if (r.outcome === "rerun") return;
      const c = this.counts;
      c.done += 1;
      if (this.failing.has(r.outcome)) {
        if (r.outcome === "error") c.errors += 1; // as the server counts (metrics.count_outcomes)
        else c.failed += 1;
        this.failures.push(r);
      } else if (r.outcome === "skipped" || r.outcome === "xfailed") c.skipped += 1;
      else c.passed += 1;
    }

    setWorkers(workers) {
      for (const w of workers || []) {
        if (w.id !== COLLECT_WORKER) this.servers.set(w.id, w);
      }
    }

    setRun(run) {
      if (!run) return;
      this.run = run;
      if (run.collected) this.collected = run.collected;
      if (run.started_at) this.startedAt = Date.parse(run.started_at);
    }

    // Every worker's lane: those the server announced and those results came from.
    workers() {
      const ids = new Set([...this.servers.keys(), ...this.perWorker.keys()]);
      return [...ids].sort(byWorkerId).map((id) => {
        const mine = this.perWorker.get(id) || { tests: 0, busy: 0 };
        const server = this.servers.get(id) || {};
        return { id, tests: mine.tests, busy: mine.busy, crashed: server.crashed || 0,
                 current: server.current_test || "" };
      });
    }

    // Seconds since the run started: the wall so far (its final wall once it has ended).
    elapsed() {
      if (!this.startedAt) return null;
      if (this.run && this.run.wall_seconds && !this.running) return this.run.wall_seconds;
      const end = this.running ? Date.now()
        : Date.parse((this.run && this.run.finished_at) || new Date().toISOString());
      return Math.max(0, (end - this.startedAt) / 1000);
    }

    // Remaining time: from the tests' past durations when history exists, else extrapolated.
    eta(elapsed) {
      const c = this.counts;
      const workers = Math.max(1, (this.run && this.run.workers) || this.perWorker.size || 1);
      if (this.estimate && this.estimate.known_tests > 0) {
        return Math.max(0, this.estimate.seconds - this.work) / workers;
      }
      if (!this.collected || !c.done) return 0;
      return Math.max(0, ((this.collected - c.done) / c.done) * elapsed);
    }
  }

  window.ptdRun = window.ptdRun || {};
  window.ptdRun.RunState = RunState;
  window.ptdRun.byWorkerId = byWorkerId;
})();

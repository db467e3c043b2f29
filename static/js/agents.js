// The Agents page keeps itself current without a reload: every few seconds (never while the
// tab is hidden) it asks GET /api/agents (data-source, the session's login) and renders the
// table's rows again from the answer: each agent's state (idle / running run #N / lost), new
// agents as they say hello. Between answers the heartbeats' ages tick on, counted from the
// age the dashboard measured (its clock, not the browser's). Polled rather than pushed: "lost"
// is the absence of heartbeats, an event nobody sends. Text is set as text, never as HTML.
(function () {
  "use strict";
  const POLL_MS = 2000;
  const TICK_MS = 1000;
  const table = document.querySelector("table.agents[data-source]");
  if (!table) return;
  let answeredAt = 0; // performance.now() when the shown rows were answered
  let stopped = false;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function tone(state) {
    if (state === "lost") return "error";
    return state === "idle" ? "passed" : "running";
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "never";
    const now = seconds + (performance.now() - answeredAt) / 1000;
    return `${Math.round(Math.max(0, now))} s ago`;
  }

  function row(agent) {
    const tr = el("tr");
    tr.dataset.agent = agent.name;
    tr.appendChild(el("td", "mono", agent.name));
    tr.appendChild(el("td", "", agent.queue));
    const state = el("td", "state");
    const badge = el("span", `status status-${tone(agent.state)}`);
    if (agent.run) {
      const link = el("a", "", agent.state);
      link.href = table.dataset.runUrl.replace(/0\/$/, `${encodeURIComponent(agent.run)}/`);
      badge.appendChild(link);
    } else {
      badge.textContent = agent.state;
    }
    state.appendChild(badge);
    if (agent.refused) state.appendChild(el("div", "error", `No shards sent: ${agent.refused}`));
    tr.appendChild(state);
    const beat = el("td", "beat", age(agent.seconds_ago));
    if (agent.seconds_ago !== null) beat.dataset.secondsAgo = String(agent.seconds_ago);
    tr.appendChild(beat);
    for (const key of ["workers", "python", "pytest", "ptd", "runs_served"]) {
      tr.appendChild(el("td", "", String(agent[key])));
    }
    return tr;
  }

  function render(agents) {
    const body = el("tbody");
    if (!agents.length) {
      const empty = el("tr", "empty");
      const cell = el("td", "muted", "No agent has said hello yet.");
      cell.colSpan = 9;
      empty.appendChild(cell);
      body.appendChild(empty);
    }
    for (const agent of agents) body.appendChild(row(agent));
    table.querySelector("tbody").replaceWith(body);
  }

  function tick() {
    for (const cell of table.querySelectorAll("td.beat[data-seconds-ago]")) {
      cell.textContent = age(Number(cell.dataset.secondsAgo));
    }
  }

  let timer = null;

  async function poll() {
    window.clearTimeout(timer); // one request at a time: answers never arrive out of order
    if (stopped) return;
    if (!document.hidden) {
      try {
        const response = await fetch(table.dataset.source, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        if (response.status === 401 || response.status === 403) {
          stopped = true; // logged out: the page shows what it last knew until a reload
          return;
        }
        if (response.ok) {
          const agents = await response.json();
          answeredAt = performance.now();
          render(agents);
        }
      } catch (err) {
        // The server restarting or the network blinking: ask again at the next tick.
      }
    }
    timer = window.setTimeout(poll, POLL_MS);
  }

  answeredAt = performance.now(); // the server-rendered rows' ages are as of now
  table.querySelectorAll("td.beat").forEach((cell) => {
    const seconds = parseFloat(cell.textContent);
    if (!Number.isNaN(seconds)) cell.dataset.secondsAgo = String(seconds);
  });
  timer = window.setTimeout(poll, POLL_MS);
  window.setInterval(tick, TICK_MS);
})();

// A list of runs refreshes itself: every few seconds while one of its runs is queued or
// running, every half minute otherwise (runs launched elsewhere, by CI, appear), never while
// the tab is hidden. Only the table's rows are replaced, from the rows-only URL the table
// names (data-refresh).
(() => {
  if (window.ptdRunsRefresh) return;  // the list may be included once per page only, but be safe
  window.ptdRunsRefresh = true;
  const ACTIVE_MS = 3000;
  const IDLE_MS = 30000;

  function table() {
    return document.querySelector("table.runs[data-refresh]");
  }

  async function refresh() {
    const current = table();
    if (!current) return;
    if (!document.hidden) {
      try {
        const response = await fetch(current.dataset.refresh, { headers: { Accept: "text/html" } });
        if (response.redirected) return;  // logged out (the login page): stop until a reload
        if (response.ok) {
          const page = new DOMParser().parseFromString(await response.text(), "text/html");
          const fresh = page.querySelector("table.runs tbody");
          const body = current.querySelector("tbody");
          if (fresh && body && fresh.innerHTML !== body.innerHTML) body.replaceWith(fresh);
        }
      } catch (err) {
        // The server restarting or the network blinking: try again at the next tick.
      }
    }
    schedule();
  }

  function schedule() {
    const current = table();
    if (!current) return;
    const active = current.querySelector("tr[data-active]") !== null;
    window.setTimeout(refresh, active ? ACTIVE_MS : IDLE_MS);
  }

  document.addEventListener("DOMContentLoaded", schedule);
})();

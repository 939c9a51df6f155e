// The project page keeps its deployments table current: it polls the server-rendered table
// every few seconds while the page is visible.
(() => {
  "use strict";
  const table = document.getElementById("deployments");
  if (!table) return;
  const EVERY_MS = 3000;
  let last = null;

  async function refresh() {
    if (document.hidden) return;
    // Replacing the table under a focused button would throw keyboard users out of it.
    if (table.contains(document.activeElement)) return;
    try {
      const response = await fetch(table.dataset.poll, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const html = await response.text();
      if (html !== last) {
        table.innerHTML = html; // the server's own escaped template output
        last = html;
      }
    } catch {
      // Offline for a moment: the next poll will try again.
    }
  }
  setInterval(refresh, EVERY_MS);
  document.addEventListener("visibilitychange", refresh);
})();

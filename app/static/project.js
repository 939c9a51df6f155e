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

// Copy buttons next to the DNS records a domain needs: the exact text, one click.
(() => {
  "use strict";
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.copy[data-copy]");
    if (!button) return;
    const label = button.textContent;
    try {
      await navigator.clipboard.writeText(button.dataset.copy);
      button.textContent = "Copied";
    } catch {
      // No clipboard (an insecure origin): the text is selectable, select it for the reader.
      const code = button.previousElementSibling;
      if (code) window.getSelection().selectAllChildren(code);
      button.textContent = "Select and copy";
    }
    setTimeout(() => { button.textContent = label; }, 2000);
  });
})();

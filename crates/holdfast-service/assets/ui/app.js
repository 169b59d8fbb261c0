// holdfast's admin UI: the one script. Pages work without it; with it,
// a running backup's page follows the run and reloads when it ends.
"use strict";
(function () {
  const live = document.querySelector("[data-poll]");
  if (!live) return;
  const url = live.getAttribute("data-poll");
  let last = null;
  async function poll() {
    try {
      const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (r.ok) {
        const b = await r.json();
        if (last !== null && b.status !== last) { location.reload(); return; }
        last = b.status;
      }
    } catch (e) { /* the next poll tries again */ }
    setTimeout(poll, 2000);
  }
  poll();
})();

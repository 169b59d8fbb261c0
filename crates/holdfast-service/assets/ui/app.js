// holdfast's admin UI: the one script. Pages work without it; with it,
// a running job's page shows its progress (bytes, files, throughput) every
// two seconds and reloads when the job's state changes.
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
        if (typeof b.text === "string") live.textContent = b.text;
      }
    } catch (e) { /* the next poll tries again */ }
    setTimeout(poll, 2000);
  }
  poll();
})();

// a schedule field shows its next runs as it is typed
(function () {
  const input = document.querySelector("input[data-preview]");
  const out = document.getElementById("f-schedule-preview");
  if (!input || !out) return;
  let timer = null;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(async function () {
      try {
        const r = await fetch(input.getAttribute("data-preview") + "?cron=" + encodeURIComponent(input.value),
          { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (r.ok) out.textContent = (await r.json()).text;
      } catch (e) { /* keep the last preview */ }
    }, 300);
  });
})();

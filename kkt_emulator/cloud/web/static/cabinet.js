// The web cabinet's live updates (D100): one EventSource on /cabinet/events; on a change that
// concerns this page, the page is fetched again and every element marked data-live is replaced
// by its fresh copy (same id). No reload, no framework, no build step.
(function () {
  "use strict";
  const body = document.body;
  const base = body.dataset.base || "/cabinet";
  const keys = (body.dataset.keys || "").split(" ").filter(Boolean);
  const url = body.dataset.refreshUrl || location.pathname + location.search;
  const poll = Number(body.dataset.poll || 0);
  const live = document.getElementById("live");
  let running = false;
  let again = false;

  function concerns(changed) {
    if (!keys.length) return true;
    return changed.some((k) => k === "*" || keys.includes(k));
  }

  async function refresh() {
    if (running) { again = true; return; }
    running = true;
    try {
      do {
        again = false;
        const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (!answer.ok) break;
        const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
        document.querySelectorAll("[data-live]").forEach((el) => {
          const next = el.id && fresh.getElementById(el.id);
          if (next && next.outerHTML !== el.outerHTML) el.replaceWith(document.importNode(next, true));
        });
        body.dataset.refreshed = String(Number(body.dataset.refreshed || 0) + 1);
      } while (again);
    } catch (err) {
      console.warn("cabinet refresh failed", err);
    } finally {
      running = false;
    }
  }

  if (window.EventSource) {
    const events = new EventSource(base + "/events");
    events.onopen = () => { live && live.classList.replace("off", "on"); };
    events.onerror = () => { live && live.classList.replace("on", "off"); };
    events.addEventListener("change", (event) => {
      let changed = [];
      try { changed = JSON.parse(event.data).keys || []; } catch (err) { changed = ["*"]; }
      if (concerns(changed)) refresh();
    });
  }
  if (poll > 0) setInterval(refresh, poll * 1000);  // heartbeats announce nothing: the till page polls
})();

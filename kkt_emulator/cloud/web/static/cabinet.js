// The web cabinet's live updates (D100): one EventSource on /cabinet/events; on a change that
// concerns this page, the page is fetched again and every element marked data-live is replaced
// by its fresh copy (same id). Forms marked data-fetch post in the background and apply the page
// they answer the same way; without the script they post and redirect as plain HTML forms.
// No reload, no framework, no build step.
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

  function apply(html) {
    const fresh = new DOMParser().parseFromString(html, "text/html");
    document.querySelectorAll("[data-live]").forEach((el) => {
      const next = el.id && fresh.getElementById(el.id);
      if (next && next.outerHTML !== el.outerHTML) el.replaceWith(document.importNode(next, true));
    });
    const flash = fresh.getElementById("flash");
    const shown = document.getElementById("flash");
    if (shown) shown.remove();
    if (flash) document.querySelector("main").prepend(document.importNode(flash, true));
    body.dataset.refreshed = String(Number(body.dataset.refreshed || 0) + 1);
  }

  async function refresh() {
    if (running) { again = true; return; }
    running = true;
    try {
      do {
        again = false;
        const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (answer.ok) apply(await answer.text());
      } while (again);
    } catch (err) {
      console.warn("cabinet refresh failed", err);
    } finally {
      running = false;
    }
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-fetch")) return;
    event.preventDefault();
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const answer = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
      });
      apply(await answer.text());  // the page it redirected to, or the page with the refusal
    } catch (err) {
      console.warn("cabinet action failed", err);
      form.submit();
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });

  if (window.EventSource) {
    const events = new EventSource(base + "/events");
    events.onopen = () => { if (live) live.classList.replace("off", "on"); };
    events.onerror = () => { if (live) live.classList.replace("on", "off"); };
    events.addEventListener("change", (event) => {
      let changed = [];
      try { changed = JSON.parse(event.data).keys || []; } catch (err) { changed = ["*"]; }
      if (concerns(changed)) refresh();
    });
  }
  if (poll > 0) setInterval(refresh, poll * 1000);  // heartbeats announce nothing: the till page polls
})();

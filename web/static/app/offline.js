// Works when the network does not (离线): on every page, after shell.js. Registers the
// service worker (/sw.js, web/static/app/sw.js), shows the 离线 badge with the time of the
// data when the network is gone or the page came from the tablet's cache, and gives the
// pages GA.offline.keep(jobs): read, a few at a time, what a page needs offline.
// What is kept is this user's only: a different login on the same tablet drops it first.
(function () {
  "use strict";
  if (!window.GA) return;
  const t = GA.t;
  const sw = navigator.serviceWorker;
  const META = "ga-meta"; // sw.js keeps the pages and answers; this cache says whose they are
  const AT_ONCE = 2; // buildings read at the same time: polite to a shared server
  const FRESH_MS = 15 * 60 * 1000; // kept this recently: no need to read it all again
  const keptAt = document.querySelector('meta[name="ga-kept-at"]'); // sw.js: from the cache
  const fromCache = Boolean(keptAt);
  const dataTime = fromCache ? new Date(keptAt.content) : new Date();
  let stopped = false;

  // --- the badge -----------------------------------------------------------------------
  const badge = document.getElementById("ga-offline");
  if (badge) {
    const time = document.createElement("span");
    time.className = "ga-data-of";
    time.id = "ga-data-of";
    // day and minute: kept data older than a login (12 h) is never shown
    const when = dataTime.toLocaleString(GA.lang === "zh" ? "zh-CN" : "en-GB", {
      month: "numeric",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
    });
    time.textContent = " · " + t("app.data_of", { time: when });
    badge.append(time);
    badge.style.whiteSpace = "nowrap"; // one line, also on a portrait tablet
  }
  function showBadge() {
    // after shell.js's own listener, which knows only navigator.onLine
    if (badge) badge.hidden = navigator.onLine && !fromCache;
  }
  window.addEventListener("online", showBadge);
  window.addEventListener("offline", showBadge);
  showBadge();

  // --- the worker ----------------------------------------------------------------------
  function ask(message) {
    // a message to the worker that controls this page, and its answer
    return new Promise((resolve) => {
      if (!sw || !sw.controller) return resolve({ ok: false });
      const channel = new MessageChannel();
      channel.port1.onmessage = (e) => resolve(e.data || { ok: false });
      sw.controller.postMessage(message, [channel.port2]);
    });
  }

  function controlled() {
    return new Promise((resolve) => {
      if (sw.controller) return resolve(true);
      sw.addEventListener("controllerchange", () => resolve(true), { once: true });
    });
  }

  async function metaGet(name) {
    const r = await (await caches.open(META)).match("/__ga/" + name);
    return r ? r.text() : null;
  }

  async function metaPut(name, value) {
    await (await caches.open(META)).put("/__ga/" + name, new Response(String(value)));
  }

  async function dropAll() {
    for (const name of await caches.keys()) if (name.startsWith("ga-")) await caches.delete(name);
  }

  // Whose data is kept: another login on this tablet (the last one ended without logging
  // out) must never see it, even offline.
  async function checkOwner() {
    const me = await GA.api("GET", "/api/auth/me");
    if (!me.ok || !me.data) return false;
    const owner = String(me.data.id);
    const was = await metaGet("owner");
    if (was !== null && was !== owner) await dropAll();
    await metaPut("owner", owner);
    return was !== owner;
  }

  function pageAssets() {
    // what this page loaded of /static (scripts, styles, their fonts and images)
    const urls = performance.getEntriesByType("resource").map((e) => e.name);
    for (const n of document.querySelectorAll("script[src], link[rel=stylesheet][href]")) {
      urls.push(n.src || n.href);
    }
    return [...new Set(urls)].filter((u) => {
      const url = new URL(u, location.href);
      return url.origin === location.origin && url.pathname.startsWith("/static/");
    });
  }

  async function start() {
    if (!sw || !window.isSecureContext || !window.caches) return false;
    if (fromCache || !navigator.onLine) return Boolean(sw.controller); // nothing to ask for
    const wasControlled = Boolean(sw.controller);
    try {
      await sw.register("/sw.js", { scope: "/" });
    } catch (err) {
      return false;
    }
    const registration = await sw.ready;
    // a page opened without the worker (a hard reload) is taken over on request
    if (!sw.controller && registration.active) {
      registration.active.postMessage({ type: "ga-claim" });
    }
    await controlled();
    const changed = await checkOwner();
    // this page was loaded before the worker (first visit) or its copy was just dropped
    if (!wasControlled || changed) {
      await ask({ type: "ga-keep-page", url: location.href, assets: pageAssets() });
    }
    return true;
  }

  const ready = start().catch(() => false);

  // Run ``jobs()`` (a list of async functions, each reading what one thing needs offline:
  // the worker keeps the answers) a few at a time, unless it was all read a moment ago.
  let settle;
  const kept = new Promise((resolve) => (settle = resolve));
  async function keep(jobs) {
    let done = false;
    try {
      if ((await ready) && !fromCache && navigator.onLine) {
        const last = Number(await metaGet("kept-at"));
        if (last && Date.now() - last < FRESH_MS) {
          done = true;
        } else {
          const list = jobs();
          let next = 0;
          const worker = async () => {
            while (!stopped && next < list.length) {
              const job = list[next++];
              await job().catch(() => null);
            }
          };
          await Promise.all(Array.from({ length: Math.min(AT_ONCE, list.length) }, worker));
          done = !stopped;
          if (done) await metaPut("kept-at", Date.now());
        }
      }
    } catch (err) {
      done = false;
    }
    document.documentElement.dataset.gaOffline = done ? "kept" : "not-kept";
    settle(done);
    return done;
  }

  // Logging out: stop reading and tell the worker to keep nothing more, before shell.js's
  // own handler (this one is in the capture phase) deletes the caches.
  const logout = document.getElementById("ga-logout");
  if (logout) {
    logout.addEventListener(
      "click",
      () => {
        stopped = true;
        ask({ type: "ga-logout" });
      },
      true
    );
  }

  GA.offline = { ready: ready, kept: kept, keep: keep, fromCache: fromCache, dataTime: dataTime };
})();

// Works when the network does not (离线): on every page, after shell.js. Registers the
// service worker (/sw.js, web/static/app/sw.js), shows the 离线 badge with the time of the
// data when the network is gone or the page came from the tablet's cache (缓存副本 when the
// network is there: a kept copy shown at once), and gives the pages GA.offline.keep(jobs):
// read, a few at a time, what a page needs offline; GA.offline.markFresh(): the page has
// read its data again from the server, so it no longer shows a kept copy; and
// GA.offline.refreshPage(): the kept copy this page came from is read again for next time.
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
  let dataTime = fromCache ? new Date(keptAt.content) : new Date();
  let stale = fromCache; // what the page shows is the kept copy's
  let stopped = false;

  // --- the badge -----------------------------------------------------------------------
  const badge = document.getElementById("ga-offline");
  const label = document.createElement("span");
  const time = document.createElement("span");
  if (badge) {
    label.className = "ga-offline-label";
    label.id = "ga-offline-label";
    time.className = "ga-data-of";
    time.id = "ga-data-of";
    badge.replaceChildren(label, time);
    badge.style.whiteSpace = "nowrap"; // one line, also on a portrait tablet
  }
  function showBadge() {
    // after shell.js's own listener, which knows only navigator.onLine
    if (!badge) return;
    badge.hidden = navigator.onLine && !stale;
    badge.dataset.kept = String(stale);
    label.textContent = navigator.onLine ? t("app.kept_copy") : t("app.offline");
    // day and minute: kept data older than a login (12 h) is never shown
    const when = dataTime.toLocaleString(GA.lang === "zh" ? "zh-CN" : "en-GB", {
      month: "numeric",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
    });
    time.textContent = " · " + t("app.data_of", { time: when });
  }
  // The page read its data again from the server: what it shows is now current.
  function markFresh() {
    stale = false;
    dataTime = new Date();
    GA.offline.dataTime = dataTime;
    showBadge();
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

  // A kept copy in another language than the one chosen since (the shell's switch sets the
  // cookie and reloads): read the page again instead of showing the old language.
  function isOtherLanguage() {
    const chosen = /(?:^|;\s*)ga_lang=(zh|en)\b/.exec(document.cookie);
    const shown = (document.documentElement.lang || "zh").split("-")[0]; // "zh-CN" is zh
    return Boolean(chosen && chosen[1] !== shown);
  }

  async function start() {
    if (!sw || !window.isSecureContext || !window.caches) return false;
    if (fromCache && navigator.onLine && isOtherLanguage()) {
      await ask({ type: "ga-drop-page", url: location.href });
      location.reload();
      return false;
    }
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
    } else {
      checkAssetsLater();
    }
    return true;
  }

  // The kept assets this page was drawn with: still the server's? (once the page is done)
  function checkAssetsLater() {
    const run = () => ask({ type: "ga-check-assets", assets: pageAssets() });
    const idle = () =>
      window.requestIdleCallback ? requestIdleCallback(run, { timeout: 5000 }) : setTimeout(run, 1000);
    if (document.readyState === "complete") idle();
    else window.addEventListener("load", idle, { once: true });
  }

  const ready = start().catch(() => false);

  // Run ``jobs()`` (a list of async functions, each reading what one thing needs offline:
  // the worker keeps the answers) a few at a time, unless it was all read a moment ago.
  // ``part`` names what a page keeps (the grid's cards, the leaders page's levels).
  let settle;
  const kept = new Promise((resolve) => (settle = resolve));
  async function keep(jobs, part) {
    const stamp = part ? "kept-at-" + part : "kept-at";
    let done = false;
    try {
      if ((await ready) && !fromCache && navigator.onLine) {
        const last = Number(await metaGet(stamp));
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
          if (done) await metaPut(stamp, Date.now());
        }
      }
    } catch (err) {
      done = false;
    }
    document.documentElement.dataset.gaOffline = done ? "kept" : "not-kept";
    settle(done);
    return done;
  }

  // A page shown from its kept copy (sw.js: "kept" pages) has it read again once the page
  // is done with its own reading: the next visit starts from a newer copy.
  async function refreshPage() {
    if (!fromCache || !navigator.onLine || stopped) return false;
    const r = await ask({ type: "ga-keep-page", url: location.href, assets: pageAssets() });
    return Boolean(r && r.ok);
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

  GA.offline = {
    ready: ready,
    kept: kept,
    keep: keep,
    markFresh: markFresh,
    refreshPage: refreshPage,
    fromCache: fromCache,
    dataTime: dataTime,
  };
})();

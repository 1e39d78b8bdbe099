// The service worker (served as /sw.js by api/routes/offline.py): the grid page and its
// building cards work without network. What it keeps, in caches named ga-*:
//   ga-pages   the HTML of the pages in PAGES (the user's grid: buildings, no person),
//   ga-api     the API answers a building card reads (this user's, as the API scoped them),
//   ga-assets  our scripts, styles and the vendored libraries (no personal data),
//   ga-meta    written by offline.js (whose data this is, when the cards were kept).
// Pages and answers go to the network first and come from the cache only when it fails;
// nothing else is ever kept. Logout (GA.clearOfflineData) deletes every ga-* cache and
// unregisters this worker.
/* global workbox */
"use strict";

importScripts("/static/vendor/workbox-sw/build/workbox-sw.js");
workbox.setConfig({ debug: false, modulePathPrefix: "/static/vendor/workbox/" });

const { registerRoute } = workbox.routing;
const { NetworkFirst, StaleWhileRevalidate } = workbox.strategies;
const { CacheableResponsePlugin } = workbox.cacheableResponse;

const CACHES = { pages: "ga-pages", api: "ga-api", assets: "ga-assets", meta: "ga-meta" };
const PAGES = new Set(["/app/grid"]);
// the building card's answers (web/static/app/grid.js: cardAnswers, leadersOf)
const API_PATHS = [
  /^\/api\/buildings\/\d+\/(path|dwellings)$/,
  /^\/api\/leaders\/(building|unit|building_cluster|residents_group)\/\d+$/,
];
const RESIDENT_PARAMS = new Set(["level", "area_id", "limit"]);
const NETWORK_TIMEOUT_S = 6; // a stairwell's network: wait this long, then the kept copy
const MAX_AGE_MS = 12 * 3600 * 1000; // a login lasts 12 h; older personal data is not shown
const STAMP = "X-GA-Kept-At";
let closed = false; // logging out: keep nothing more

function isOurs(url, request) {
  return url.origin === self.location.origin && request.method === "GET";
}

function isCardAnswer(url) {
  if (API_PATHS.some((re) => re.test(url.pathname))) return true;
  if (url.pathname !== "/api/residents") return false;
  const names = [...url.searchParams.keys()];
  return (
    url.searchParams.get("level") === "building" &&
    /^\d+$/.test(url.searchParams.get("area_id") || "") &&
    names.every((n) => RESIDENT_PARAMS.has(n))
  );
}

// A copy worth keeping: a plain 200 of ours (no redirect to the login, no error), stamped
// with the time it was read; a page also says so in its <head>, for offline.js to tell.
function stamped(isPage) {
  return {
    cacheWillUpdate: async ({ response }) => {
      if (closed || !response || response.status !== 200 || response.redirected) return null;
      if (response.type !== "basic") return null;
      const type = response.headers.get("content-type") || "";
      if (isPage !== type.startsWith("text/html")) return null;
      const at = new Date().toISOString();
      const headers = new Headers(response.headers);
      headers.delete("content-length");
      headers.delete("content-encoding");
      headers.set(STAMP, at);
      let body = await response.text();
      if (isPage) {
        const meta = '<meta name="ga-kept-at" content="' + at + '">';
        body = body.replace(/<head[^>]*>/i, (head) => head + meta);
      }
      return new Response(body, { status: 200, statusText: response.statusText, headers: headers });
    },
    cachedResponseWillBeUsed: async ({ cachedResponse }) => {
      if (!cachedResponse || closed) return null;
      const at = Date.parse(cachedResponse.headers.get(STAMP) || "");
      return Date.now() - at < MAX_AGE_MS ? cachedResponse : null;
    },
  };
}

const pageStrategy = new NetworkFirst({
  cacheName: CACHES.pages,
  networkTimeoutSeconds: NETWORK_TIMEOUT_S,
  plugins: [stamped(true)],
});
const apiStrategy = new NetworkFirst({
  cacheName: CACHES.api,
  networkTimeoutSeconds: NETWORK_TIMEOUT_S,
  plugins: [stamped(false)],
});
const assetStrategy = new StaleWhileRevalidate({
  cacheName: CACHES.assets,
  plugins: [
    new CacheableResponsePlugin({ statuses: [200] }),
    { cacheWillUpdate: async ({ response }) => (closed ? null : response) },
  ],
});

const isPage = (url) => PAGES.has(url.pathname) && !url.search;
const isAsset = (url) => url.pathname.startsWith("/static/");
registerRoute(({ url, request }) => isOurs(url, request) && isPage(url), pageStrategy);
registerRoute(({ url, request }) => isOurs(url, request) && isCardAnswer(url), apiStrategy);
registerRoute(({ url, request }) => isOurs(url, request) && isAsset(url), assetStrategy);

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => {
  // a cache of an older version of this worker goes; offline.js's ga-meta stays
  const known = new Set(Object.values(CACHES));
  event.waitUntil(
    caches
      .keys()
      .then((names) => names.filter((n) => n.startsWith("ga-") && !known.has(n)))
      .then((old) => Promise.all(old.map((n) => caches.delete(n))))
      .then(() => self.clients.claim())
  );
});

// From offline.js: "take this page over" (opened without the worker), "keep this page and
// its assets" (it was loaded before the worker controlled it) and "logging out" (keep nothing
// more: the page is about to delete the caches).
self.addEventListener("message", (event) => {
  const data = event.data || {};
  const port = event.ports && event.ports[0];
  if (data.type === "ga-claim") {
    event.waitUntil(self.clients.claim());
  } else if (data.type === "ga-logout") {
    closed = true;
    if (port) port.postMessage({ ok: true });
  } else if (data.type === "ga-keep-page" && typeof data.url === "string") {
    const done = (ok) => port && port.postMessage({ ok: ok });
    const url = new URL(data.url, self.location.origin);
    const jobs = [];
    if (url.origin === self.location.origin && isPage(url)) {
      const request = new Request(url.href, { credentials: "same-origin", redirect: "manual" });
      jobs.push(pageStrategy.handle({ event: event, request: request }).then((r) => r.ok));
    }
    for (const asset of Array.isArray(data.assets) ? data.assets : []) {
      const a = new URL(String(asset), self.location.origin);
      if (a.origin !== self.location.origin || !isAsset(a)) continue;
      const request = new Request(a.href);
      jobs.push(assetStrategy.handle({ event: event, request: request }).then((r) => r.ok));
    }
    event.waitUntil(
      Promise.all(jobs.map((j) => j.catch(() => false))).then((oks) => done(oks.every(Boolean)))
    );
  }
});

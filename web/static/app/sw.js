// The service worker (served as /sw.js by api/routes/offline.py): the grid page and its
// building cards work without network, and the leaders page opens from the tablet's cache.
// What it keeps, in caches named ga-*:
//   ga-pages   the HTML of the pages in PAGES (as the server answered this user),
//   ga-api     the API answers a building card reads and the leaders page's levels and
//              streets (this user's, as the API scoped them),
//   ga-assets  our scripts, styles and the vendored libraries (no personal data),
//   ga-meta    written by offline.js (whose data this is, when the cards were kept).
// The grid page and the answers go to the network first and come from the cache only when it
// fails. The leaders page is shown from the cache at once (stamped with its time, so the
// page says it is a kept copy), but only once the server has said that the login is still
// the one the copy belongs to (OWNER_TIMEOUT_MS; with no network, the last login's copy, as
// offline); the page reads its data again itself and then asks for its copy to be read
// again (offline.js: GA.offline.refreshPage), so that the first moments of the page are
// not shared with a background read. Assets come from the cache, where the browser can
// serve them without waking this worker (the static routing API, where there is one); the
// pages ask for them to be checked against the server after they are done (offline.js:
// "ga-check-assets"), at most once per ASSET_RECHECK_MS, and a copy is replaced only when
// the server's ETag changed (a replaced script loses its compiled code). Nothing else is
// ever kept. Logout (GA.clearOfflineData) deletes every ga-* cache and unregisters this
// worker.
/* global workbox */
"use strict";

importScripts("/static/vendor/workbox-sw/build/workbox-sw.js");
workbox.setConfig({ debug: false, modulePathPrefix: "/static/vendor/workbox/" });

const { registerRoute } = workbox.routing;
const { CacheFirst, NetworkFirst } = workbox.strategies;
const { CacheableResponsePlugin } = workbox.cacheableResponse;

const CACHES = { pages: "ga-pages", api: "ga-api", assets: "ga-assets", meta: "ga-meta" };
// page -> how it is kept: "network" first, or the "kept" copy first (checked owner)
const PAGES = new Map([
  ["/app/grid", "network"],
  ["/app/leaders", "kept"],
]);
// the building card's answers (web/static/app/grid.js: cardAnswers, leadersOf)
const API_PATHS = [
  /^\/api\/buildings\/\d+\/(path|dwellings)$/,
  /^\/api\/leaders\/(building|unit|building_cluster|residents_group)\/\d+$/,
];
const RESIDENT_PARAMS = new Set(["level", "area_id", "limit"]);
// the leaders page's levels (web/static/app/leaders.js: levelUrl): one community's areas
const AREA_PATH = /^\/api\/areas\/(residents_groups|building_clusters|units|buildings)$/;
const AREA_PARAMS = new Set(["community_id", "limit", "offset"]);
// and the walk network around them (no person in it): /api/layers/walk_edges?bbox=…&limit=…
const BBOX = /^-?\d+(\.\d+)?(,-?\d+(\.\d+)?){3}$/;
const NETWORK_TIMEOUT_S = 6; // a stairwell's network: wait this long, then the kept copy
const OWNER_TIMEOUT_MS = 3000; // whose login this is: no answer by then, as offline
const ASSET_RECHECK_MS = 10 * 60 * 1000; // an asset read again at most this often
const MAX_AGE_MS = 12 * 3600 * 1000; // a login lasts 12 h; older personal data is not shown
const STAMP = "X-GA-Kept-At";
let closed = false; // logging out: keep nothing more

function isOurs(url, request) {
  return url.origin === self.location.origin && request.method === "GET";
}

function isAreaAnswer(url) {
  const names = [...url.searchParams.keys()];
  return (
    AREA_PATH.test(url.pathname) &&
    /^\d+$/.test(url.searchParams.get("community_id") || "") &&
    names.every((n) => AREA_PARAMS.has(n) && /^\d+$/.test(url.searchParams.get(n)))
  );
}

function isStreetsAnswer(url) {
  const p = url.searchParams;
  return (
    url.pathname === "/api/layers/walk_edges" &&
    BBOX.test(p.get("bbox") || "") &&
    /^\d+$/.test(p.get("limit") || "") &&
    [...p.keys()].every((n) => n === "bbox" || n === "limit")
  );
}

function isCardAnswer(url) {
  if (API_PATHS.some((re) => re.test(url.pathname))) return true;
  if (isAreaAnswer(url) || isStreetsAnswer(url)) return true;
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
const keptStrategy = new CacheFirst({ cacheName: CACHES.pages, plugins: [stamped(true)] });
const apiStrategy = new NetworkFirst({
  cacheName: CACHES.api,
  networkTimeoutSeconds: NETWORK_TIMEOUT_S,
  plugins: [stamped(false)],
});
const assetStrategy = new CacheFirst({
  cacheName: CACHES.assets,
  plugins: [
    new CacheableResponsePlugin({ statuses: [200] }),
    { cacheWillUpdate: async ({ response }) => (closed ? null : response) },
  ],
});
const assetChecked = new Map(); // url -> when this worker last checked it with the server

// An asset read from the server again; its copy replaced only if it changed (ETag).
async function checkAsset(url) {
  const at = assetChecked.get(url);
  if (at && Date.now() - at < ASSET_RECHECK_MS) return true;
  assetChecked.set(url, Date.now());
  const cache = await caches.open(CACHES.assets);
  const kept = await cache.match(url);
  const fresh = await fetch(url, { cache: "no-cache", credentials: "same-origin" });
  if (closed || !fresh.ok || fresh.type !== "basic") return fresh.ok;
  const tag = kept && kept.headers.get("etag");
  if (!tag || tag !== fresh.headers.get("etag")) await cache.put(url, fresh);
  return true;
}

async function dropKept() {
  for (const name of await caches.keys()) if (name.startsWith("ga-")) await caches.delete(name);
}

// Is the login of this request the one the kept copies belong to (ga-meta's owner, written
// by offline.js)? "same", "other" (another login, or none: the copies must go) or "unknown"
// (no network: the last login's copies are shown, as offline).
async function ownerOfLogin() {
  const said = await (await caches.open(CACHES.meta)).match("/__ga/owner");
  const owner = said ? await said.text() : null;
  if (owner === null) return "other";
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), OWNER_TIMEOUT_MS);
  try {
    const me = await fetch("/api/auth/me", {
      credentials: "same-origin",
      cache: "no-store",
      signal: abort.signal,
    });
    if (me.status === 401 || me.status === 403) return "other";
    if (!me.ok) return "unknown";
    const data = await me.json();
    return String(data.id) === owner ? "same" : "other";
  } catch (err) {
    return "unknown";
  } finally {
    clearTimeout(timer);
  }
}

// A page kept first: its copy at once (the page asks for it to be read again once it is
// done), unless the copy is another login's: then nothing kept is shown, and it all goes.
async function keptFirst({ event, request }) {
  if ((await ownerOfLogin()) === "other") {
    await dropKept();
    return fetch(request);
  }
  return keptStrategy.handle({ event: event, request: request });
}

const isPage = (url) => PAGES.has(url.pathname) && !url.search;
const isAsset = (url) => url.pathname.startsWith("/static/");
registerRoute(
  ({ url, request }) => isOurs(url, request) && isPage(url) && PAGES.get(url.pathname) === "kept",
  keptFirst
);
registerRoute(({ url, request }) => isOurs(url, request) && isPage(url), pageStrategy);
registerRoute(({ url, request }) => isOurs(url, request) && isCardAnswer(url), apiStrategy);
registerRoute(({ url, request }) => isOurs(url, request) && isAsset(url), assetStrategy);

self.addEventListener("install", (event) => {
  // assets straight from their cache, without this worker's script (the network when the
  // cache has no copy); where the browser has no static routing, the fetch handler above
  if (event.addRoutes) {
    const rule = {
      condition: { urlPattern: new URLPattern({ pathname: "/static/*" }), requestMethod: "get" },
      source: { cacheName: CACHES.assets },
    };
    event.waitUntil(event.addRoutes([rule]).catch(() => null));
  }
  self.skipWaiting();
});
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

// The assets a page named: ours, under /static/ only.
function assetsOf(data) {
  const out = [];
  for (const asset of Array.isArray(data.assets) ? data.assets : []) {
    const a = new URL(String(asset), self.location.origin);
    if (a.origin === self.location.origin && isAsset(a)) out.push(a.origin + a.pathname + a.search);
  }
  return out;
}

// From offline.js: "take this page over" (opened without the worker), "keep this page and
// its assets" (it was loaded before the worker controlled it), "check these assets" (the page
// is done: are the kept copies still the server's?), "drop this page's copy" (it is
// in another language than the one chosen) and "logging out" (keep nothing more: the page is
// about to delete the caches).
self.addEventListener("message", (event) => {
  const data = event.data || {};
  const port = event.ports && event.ports[0];
  if (data.type === "ga-claim") {
    event.waitUntil(self.clients.claim());
  } else if (data.type === "ga-logout") {
    closed = true;
    if (port) port.postMessage({ ok: true });
  } else if (data.type === "ga-check-assets") {
    const jobs = assetsOf(data).map((a) => checkAsset(a).catch(() => false));
    event.waitUntil(Promise.all(jobs).then((oks) => port && port.postMessage({ ok: oks.every(Boolean) })));
  } else if (data.type === "ga-drop-page" && typeof data.url === "string") {
    const url = new URL(data.url, self.location.origin);
    const drop = caches.open(CACHES.pages).then((c) => c.delete(url.origin + url.pathname));
    event.waitUntil(drop.then((ok) => port && port.postMessage({ ok: ok })));
  } else if (data.type === "ga-keep-page" && typeof data.url === "string") {
    const done = (ok) => port && port.postMessage({ ok: ok });
    const url = new URL(data.url, self.location.origin);
    const jobs = [];
    if (url.origin === self.location.origin && isPage(url)) {
      const request = new Request(url.href, { credentials: "same-origin", redirect: "manual" });
      // read from the network (a kept-first page: its copy refreshed once the page is done)
      jobs.push(pageStrategy.handle({ event: event, request: request }).then((r) => r.ok));
    }
    for (const a of assetsOf(data)) jobs.push(checkAsset(a));
    event.waitUntil(
      Promise.all(jobs.map((j) => j.catch(() => false))).then((oks) => done(oks.every(Boolean)))
    );
  }
});

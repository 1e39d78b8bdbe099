// The app shell on every page: menu, language switch, logout, the in-page notice, and the
// helpers the pages' own scripts use (GA.t for texts, GA.api for requests, GA.notice).
// Every text comes from the catalogue the server put into #ga-i18n, in the user's language.
(function () {
  "use strict";
  const dataNode = document.getElementById("ga-i18n");
  const texts = dataNode ? JSON.parse(dataNode.textContent || "{}") : {};
  const shell = document.getElementById("ga-shell");
  const lang = (shell && shell.dataset.lang) || "zh";

  function t(key, params) {
    let text = Object.prototype.hasOwnProperty.call(texts, key) ? texts[key] : null;
    if (text === null) return key;
    for (const [name, value] of Object.entries(params || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }

  const notice = document.getElementById("ga-notice");
  let noticeTimer = null;
  function showNotice(text, kind) {
    if (!notice) return;
    notice.textContent = text;
    notice.className = "ga-notice " + (kind || "error");
    notice.hidden = false;
    clearTimeout(noticeTimer);
    if (kind === "ok") noticeTimer = setTimeout(() => (notice.hidden = true), 4000);
  }
  if (notice) notice.addEventListener("click", () => (notice.hidden = true));

  // What a person sees of a refusal: the server's message in their language (never the
  // English detail, never raw JSON); for an answer without one, the kind's general text.
  function messageOf(status, data) {
    if (data && typeof data.message === "string" && data.message) return data.message;
    if (status === 401) return t("error.NotAuthenticated");
    if (status === 403) return t("error.Forbidden");
    if (status === 404) return t("error.NotFound");
    if (status === 409) return t("error.Conflict");
    if (status === 412) return t("error.StaleVersion");
    if (status === 413) return t("error.TooLarge");
    if (status === 422) return t("error.InvalidInput");
    if (status === 429) return t("error.TooManyRequests");
    if (status >= 500) return t("error.DatabaseUnavailable");
    return t("error.GridAtlasError");
  }

  // fetch with the login cookie and the CSRF header our API asks of cookie writes; resolves
  // to {ok, status, data, etag, message}, never throws for an HTTP error.
  async function api(method, url, body, options) {
    const headers = { "X-Requested-With": "gridatlas", Accept: "application/json" };
    const opts = options || {};
    if (body !== undefined && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
    }
    if (opts.etag) headers["If-Match"] = opts.etag;
    if (opts.idempotencyKey) headers["Idempotency-Key"] = opts.idempotencyKey;
    let r;
    try {
      r = await fetch(url, {
        method: method,
        headers: headers,
        body: body === undefined ? undefined : body instanceof FormData ? body : JSON.stringify(body),
        credentials: "same-origin",
      });
    } catch (err) {
      return { ok: false, status: 0, data: null, etag: null, message: t("app.connection_failed") };
    }
    let data = null;
    const type = r.headers.get("content-type") || "";
    if (type.includes("json")) data = await r.json().catch(() => null);
    const out = { ok: r.ok, status: r.status, data: data, etag: r.headers.get("etag") };
    if (!r.ok) {
      out.message = messageOf(r.status, data);
      if (r.status === 401) {
        const next = window.location.pathname + window.location.search;
        window.location.assign("/login?next=" + encodeURIComponent(next));
      }
    }
    return out;
  }

  const menuButton = document.getElementById("ga-menu-button");
  const nav = document.getElementById("ga-nav");
  if (menuButton && nav) {
    menuButton.addEventListener("click", () => {
      const open = nav.classList.toggle("open");
      menuButton.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  const langButton = document.getElementById("ga-lang");
  if (langButton) {
    langButton.addEventListener("click", () => {
      document.cookie = "ga_lang=" + langButton.dataset.to + "; path=/; max-age=31536000; SameSite=Strict";
      window.location.reload();
    });
  }

  async function clearOfflineData() {
    // what was kept for offline use belongs to this user only: gone with the login
    try {
      if (window.caches) {
        for (const name of await caches.keys()) if (name.startsWith("ga-")) await caches.delete(name);
      }
      if (navigator.serviceWorker) {
        for (const reg of await navigator.serviceWorker.getRegistrations()) await reg.unregister();
      }
      if (window.indexedDB && indexedDB.databases) {
        for (const db of await indexedDB.databases()) {
          if (db.name && db.name.startsWith("ga-")) indexedDB.deleteDatabase(db.name);
        }
      }
    } catch (err) {
      /* nothing kept */
    }
  }

  // Logout deletes what the tablet keeps: records not yet sent (the patrol page's outbox,
  // web/static/app/outbox.js) are never deleted unseen; the user sends, keeps or discards.
  const outboxModule = import("/static/app/outbox.js").catch(() => null); // now: offline later
  async function mayLogOut() {
    try {
      const outbox = (await outboxModule) || (await import("/static/app/outbox.js"));
      return await outbox.beforeLogout(window.GA);
    } catch (err) {
      return window.confirm(t("app.outbox_unknown"));
    }
  }

  const logout = document.getElementById("ga-logout");
  if (logout) {
    // asked before any other listener hears of the logout (offline.js stops keeping data):
    // a logout the user calls off changes nothing
    let isAsked = false;
    document.addEventListener(
      "click",
      async (ev) => {
        if (isAsked || !logout.contains(ev.target)) return;
        ev.stopPropagation();
        if (!(await mayLogOut())) return;
        isAsked = true;
        logout.click();
      },
      true
    );
    logout.addEventListener("click", async () => {
      await api("POST", "/api/auth/logout");
      await clearOfflineData();
      window.location.assign("/login");
    });
  }

  const offline = document.getElementById("ga-offline");
  function showOnline() {
    if (offline) offline.hidden = navigator.onLine;
  }
  window.addEventListener("online", showOnline);
  window.addEventListener("offline", showOnline);
  showOnline();

  window.GA = { t: t, api: api, notice: showNotice, lang: lang, clearOfflineData: clearOfflineData };
})();

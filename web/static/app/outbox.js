// The outbox: records made on the patrol page (check-ins, visits, problem reports with their
// photos) kept on the tablet in IndexedDB (npm idb; database "ga-patrol", store "queue")
// until the server has them. Each record carries the Idempotency-Key made when it was
// recorded, so sending it again creates nothing twice. An ES module, imported by patrol.js
// (which sends while the page is open) and by the shell's logout on every page: logging out
// deletes the ga-* databases, so it first says what is not sent yet and lets the user send
// it, stay logged in, or throw it away explicitly. Never silently.
import { openDB } from "/static/vendor/idb/build/index.js";

export const DB_NAME = "ga-patrol"; // "ga-": GA.clearOfflineData removes it at logout
const STORE = "queue";
const BATCH = 200; // check-ins per request of a sync
const KINDS = ["checkin", "visit", "problem"];

let dbPromise = null;
export function db() {
  if (!dbPromise) {
    dbPromise = openDB(DB_NAME, 1, {
      upgrade(d) {
        d.createObjectStore(STORE, { keyPath: "key" });
      },
      // logout deletes the database: let it go rather than block the deletion
      blocking() {
        dbPromise.then((d) => d.close());
        dbPromise = null;
      },
    });
  }
  return dbPromise;
}

/** The records waiting, oldest first; of one user, or (user undefined) all on the tablet. */
export async function waiting(user) {
  const all = await (await db()).getAll(STORE);
  return all.filter((i) => user === undefined || i.user === user).sort((a, b) => (a.seq < b.seq ? -1 : 1));
}

export async function put(item) {
  await (await db()).put(STORE, item);
}

export async function remove(key) {
  await (await db()).delete(STORE, key);
}

/** A network failure, a busy or unavailable server: keep the record and try again later. */
export function isTransient(status) {
  return status === 0 || status === 429 || status >= 500;
}

async function sendCheckins(GA, items, hooks) {
  let sent = 0;
  for (let k = 0; k < items.length; k += BATCH) {
    const chunk = items.slice(k, k + BATCH);
    const body = { items: chunk.map((i) => Object.assign({ key: i.key }, i.body)) };
    const r = await GA.api("POST", "/api/patrol/checkins/batch", body);
    if (!r.ok) {
      if (isTransient(r.status)) return { sent: sent, failed: true };
      for (const item of chunk) {
        await remove(item.key);
        hooks.refused(item, r.message);
      }
      continue;
    }
    const byKey = new Map(chunk.map((i) => [i.key, i]));
    for (const res of r.data.results) {
      const item = byKey.get(res.key);
      if (!item) continue;
      if (res.status >= 200 && res.status < 300) {
        await remove(item.key);
        hooks.sent(item, res.body);
        sent++;
      } else if (!isTransient(res.status)) {
        await remove(item.key);
        hooks.refused(item, res.message);
      }
    }
  }
  return { sent: sent, failed: false };
}

// A problem's photos go after the problem (they need its id). The problem is sent again with
// its key until every photo is in: the server answers a repeated key with the same problem,
// and the same photo twice is one photo.
async function sendPhotos(GA, item, problemId, hooks) {
  const left = [];
  for (const photo of item.photos || []) {
    const form = new FormData();
    form.append("file", photo.blob, photo.name || "photo");
    const r = await GA.api("POST", "/api/problems/" + problemId + "/photos", form);
    if (r.ok) continue;
    if (isTransient(r.status)) left.push(photo);
    else hooks.refused(item, r.message, photo);
  }
  return left;
}

async function sendOthers(GA, items, hooks) {
  let sent = 0;
  for (const item of items) {
    const r = await GA.api("POST", item.url, item.body, { idempotencyKey: item.key });
    if (!r.ok) {
      if (isTransient(r.status)) return { sent: sent, failed: true };
      await remove(item.key);
      hooks.refused(item, r.message);
      continue;
    }
    if (item.kind === "problem" && (item.photos || []).length) {
      const left = await sendPhotos(GA, item, r.data.id, hooks);
      if (left.length) {
        await put(Object.assign({}, item, { photos: left }));
        return { sent: sent, failed: true };
      }
    }
    await remove(item.key);
    hooks.sent(item, r.data);
    sent++;
  }
  return { sent: sent, failed: false };
}

/** Send what waits (of ``user``, or all); ``hooks.sent(item, answer)`` and
 * ``hooks.refused(item, message, photo?)`` tell the page. Returns {sent, failed}. */
export async function send(GA, user, hooks) {
  const h = Object.assign({ sent() {}, refused() {} }, hooks || {});
  if (!navigator.onLine) return { sent: 0, failed: true };
  const items = await waiting(user);
  if (!items.length) return { sent: 0, failed: false };
  const a = await sendCheckins(GA, items.filter((i) => i.kind === "checkin"), h);
  if (a.failed) return a;
  const b = await sendOthers(GA, items.filter((i) => i.kind !== "checkin"), h);
  return { sent: a.sent + b.sent, failed: b.failed };
}

/** How many records wait, by kind, and in all. */
export async function counts(user) {
  const out = { total: 0, checkin: 0, visit: 0, problem: 0 };
  // on a page that never kept anything, do not make the database only to count it
  if (!dbPromise && indexedDB.databases) {
    const names = (await indexedDB.databases()).map((d) => d.name);
    if (!names.includes(DB_NAME)) return out;
  }
  for (const i of await waiting(user)) {
    out.total++;
    if (KINDS.includes(i.kind)) out[i.kind]++;
  }
  return out;
}

export async function discardAll() {
  await (await db()).clear(STORE);
}

// --- logout ---------------------------------------------------------------------------

let dialogOpen = null;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// the dialog's style, fetched with the module (the shell imports it as the page loads): a
// logout made offline later still has it
function addStyle() {
  if (document.getElementById("ga-outbox-css")) return;
  const link = document.createElement("link");
  link.id = "ga-outbox-css";
  link.rel = "stylesheet";
  link.href = "/static/app/outbox.css";
  document.head.append(link);
}
addStyle();

/** Before logout: true to go on (nothing waits, or it was sent or discarded on purpose),
 * false to stay logged in with the records kept. */
export async function beforeLogout(GA) {
  if (dialogOpen) return false;
  const c = await counts();
  if (!c.total) return true;
  addStyle();
  const t = GA.t;
  return new Promise((resolve) => {
    const back = el("div", "ga-outbox-back");
    back.id = "ga-outbox";
    const box = el("div", "ga-outbox-box");
    box.setAttribute("role", "alertdialog");
    box.setAttribute("aria-modal", "true");
    box.setAttribute("aria-labelledby", "ga-outbox-title");
    const title = el("h2", null, t("app.outbox_title"));
    title.id = "ga-outbox-title";
    const text = el("p", "ga-outbox-text");
    text.id = "ga-outbox-text";
    const detail = el("p", "ga-outbox-detail");
    detail.id = "ga-outbox-detail";
    const result = el("ul", "ga-outbox-result");
    result.id = "ga-outbox-result";
    const actions = el("div", "ga-outbox-actions");
    box.append(title, text, detail, result, actions);
    back.append(box);
    document.body.append(back);
    dialogOpen = back;

    function close(answer) {
      back.remove();
      dialogOpen = null;
      resolve(answer);
    }

    function act(id, label, className, onClick) {
      const b = el("button", "ga-outbox-btn " + className, label);
      b.type = "button";
      b.id = id;
      b.addEventListener("click", onClick);
      return b;
    }

    let current = c;
    async function show(now) {
      current = now;
      text.textContent = t("app.outbox_waiting", { n: now.total });
      detail.textContent = t("app.outbox_kinds", { checkins: now.checkin, visits: now.visit, problems: now.problem });
      const buttons = [];
      if (navigator.onLine) {
        buttons.push(act("ga-outbox-send", t("app.outbox_send"), "ga-outbox-main", sendNow));
      } else {
        buttons.push(el("p", "ga-outbox-offline", t("app.outbox_offline")));
      }
      buttons.push(act("ga-outbox-cancel", t("app.outbox_cancel"), "ga-outbox-light", () => close(false)));
      buttons.push(act("ga-outbox-discard", t("app.outbox_discard", { n: now.total }), "ga-outbox-danger", discard));
      actions.replaceChildren(...buttons);
    }

    async function sendNow() {
      actions.querySelectorAll("button").forEach((b) => (b.disabled = true));
      text.textContent = t("app.outbox_sending");
      const refusals = [];
      await send(GA, undefined, {
        refused: (item, message) => refusals.push(t("app.outbox_refused", { what: item.label || "", message: message })),
      }).catch(() => null);
      const now = await counts();
      if (!now.total && !refusals.length) return close(true);
      result.replaceChildren(...refusals.map((r) => el("li", null, r)));
      if (!now.total) {
        // what the server refused is not kept: say so, and let the user log out themselves
        text.textContent = t("app.outbox_sent_refused", { n: refusals.length });
        detail.textContent = "";
        actions.replaceChildren(
          act("ga-outbox-logout", t("app.outbox_logout"), "ga-outbox-main", () => close(true)),
          act("ga-outbox-cancel", t("app.outbox_cancel"), "ga-outbox-light", () => close(false))
        );
        return;
      }
      await show(now);
      text.textContent = t("app.outbox_still", { n: now.total });
    }

    function discard() {
      // a second, explicit step: the records are gone for good
      text.textContent = t("app.outbox_discard_sure", { n: current.total });
      actions.replaceChildren(
        act("ga-outbox-discard-yes", t("app.outbox_discard_yes"), "ga-outbox-danger", async () => {
          await discardAll();
          close(true);
        }),
        act("ga-outbox-cancel", t("app.outbox_cancel"), "ga-outbox-light", () => close(false))
      );
    }

    show(c);
  });
}

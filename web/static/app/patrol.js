// 巡查: check in at buildings (a tap or the GPS position), log visits and report problems —
// kept in IndexedDB (npm idb, database "ga-patrol", cleared at logout) with an
// Idempotency-Key made when recorded, and sent when the network returns; the tour drawn from
// the API with its stop numbers; staff assign a worker to an area. Every text comes from the
// catalogue (GA.t); every value from the server goes in with textContent, never as markup.
(function () {
  "use strict";
  if (!window.GA) return;
  const t = GA.t;

  // The printable route page has only a print button.
  const printButton = document.getElementById("pp-print");
  if (printButton) printButton.addEventListener("click", () => window.print());

  const panel = document.getElementById("pp-panel");
  const map = window.L ? Object.values(window).find((v) => v instanceof L.Map) : null;
  if (!panel || !map || !window.idb) return;

  const USER = Number(panel.dataset.user);
  const IS_STAFF = panel.dataset.mode === "staff";
  const PALETTE = JSON.parse(panel.dataset.palette || "{}");
  const routeLayer = window[panel.dataset.routeLayer];
  const myAreas = (panel.dataset.areas || "").split(",").filter(Boolean).map(Number);
  const card = document.getElementById("ga-card");
  const routeBox = document.getElementById("pp-route");
  const DB_NAME = "ga-patrol"; // "ga-": GA.clearOfflineData removes it at logout
  const BATCH = 200; // check-ins per request of a sync
  const RETRY_MS = [5000, 15000, 30000, 60000];
  const KIND_LABEL = {
    checkin: "patrol_page.kind_checkin",
    visit: "patrol_page.kind_visit",
    problem: "patrol_page.kind_problem",
  };
  const buildings = new Map(); // building id -> layer
  const areas = new Map(); // area id -> layer
  let workers = null; // the community's grid workers (staff), fetched once

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function button(text, onClick, className) {
    const b = el("button", "pp-btn" + (className ? " " + className : ""), text);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function workerColour(id) {
    if (id === null || id === undefined) return PALETTE.vacant;
    return PALETTE.workers[id % PALETTE.workers.length];
  }

  // --- the offline queue --------------------------------------------------------------

  let dbPromise = null;
  function db() {
    if (!dbPromise) {
      dbPromise = idb.openDB(DB_NAME, 1, {
        upgrade(d) {
          d.createObjectStore("queue", { keyPath: "key" });
        },
      });
    }
    return dbPromise;
  }

  async function waiting() {
    const all = await (await db()).getAll("queue");
    return all.filter((i) => i.user === USER).sort((a, b) => (a.seq < b.seq ? -1 : 1));
  }

  let seq = 0;
  async function enqueue(kind, url, body, label, buildingId) {
    const item = {
      key: newKey(), // made once, when recorded: every retry of this record sends it
      user: USER,
      seq: Date.now() * 1000 + (seq++ % 1000),
      kind: kind,
      url: url,
      body: body,
      label: label,
      building_id: buildingId || null,
      recorded_at: new Date().toISOString(),
    };
    await (await db()).put("queue", item);
    if (kind === "checkin") markBuilding(buildingId, true);
    await showQueue();
    if (!navigator.onLine) GA.notice(t("patrol_page.queued", { what: t(KIND_LABEL[kind]) }), "ok");
    sync();
    return item.key;
  }

  async function forget(item) {
    await (await db()).delete("queue", item.key);
  }

  function refused(item, message) {
    if (item.kind === "checkin") markBuilding(item.building_id, false);
    GA.notice(t("patrol_page.refused", { what: t(KIND_LABEL[item.kind]), message: message }), "error");
  }

  // A network failure, a busy or unavailable server: keep the record and try again later.
  function isTransient(status) {
    return status === 0 || status === 429 || status >= 500;
  }

  async function syncCheckins(items) {
    let sent = 0;
    for (let k = 0; k < items.length; k += BATCH) {
      const chunk = items.slice(k, k + BATCH);
      const body = { items: chunk.map((i) => Object.assign({ key: i.key }, i.body)) };
      const r = await GA.api("POST", "/api/patrol/checkins/batch", body);
      if (!r.ok) {
        if (isTransient(r.status)) return { sent: sent, failed: true };
        for (const item of chunk) {
          await forget(item);
          refused(item, r.message);
        }
        continue;
      }
      const byKey = new Map(chunk.map((i) => [i.key, i]));
      for (const res of r.data.results) {
        const item = byKey.get(res.key);
        if (!item) continue;
        if (res.status >= 200 && res.status < 300) {
          await forget(item);
          markBuilding(item.building_id, false, true);
          sent++;
        } else if (!isTransient(res.status)) {
          await forget(item);
          refused(item, res.message);
        }
      }
    }
    return { sent: sent, failed: false };
  }

  async function syncOthers(items) {
    let sent = 0;
    for (const item of items) {
      const r = await GA.api("POST", item.url, item.body, { idempotencyKey: item.key });
      if (r.ok) {
        await forget(item);
        sent++;
      } else if (isTransient(r.status)) {
        return { sent: sent, failed: true };
      } else {
        await forget(item);
        refused(item, r.message);
      }
    }
    return { sent: sent, failed: false };
  }

  let running = null;
  let again = false;
  let retries = 0;
  let retryTimer = null;

  async function runSync() {
    if (!navigator.onLine) return 0;
    const items = await waiting();
    if (!items.length) return 0;
    const a = await syncCheckins(items.filter((i) => i.kind === "checkin"));
    const b = a.failed ? { sent: 0, failed: true } : await syncOthers(items.filter((i) => i.kind !== "checkin"));
    const sent = a.sent + b.sent;
    if (sent) GA.notice(t("patrol_page.synced", { n: sent }), "ok");
    if (a.failed || b.failed) {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(sync, RETRY_MS[Math.min(retries++, RETRY_MS.length - 1)]);
    } else {
      retries = 0;
    }
    return sent;
  }

  // One sync at a time; a record made during a sync is sent right after it.
  function sync() {
    if (running) {
      again = true;
      return running;
    }
    running = runSync()
      .catch(() => 0)
      .then(async (n) => {
        await showQueue();
        running = null;
        if (again) {
          again = false;
          return n + (await sync());
        }
        return n;
      });
    return running;
  }

  async function showQueue() {
    const items = await waiting();
    const count = document.getElementById("pp-count");
    count.textContent = String(items.length);
    count.classList.toggle("pp-has", items.length > 0);
    document.getElementById("pp-queue-state").textContent = items.length
      ? t("patrol_page.waiting_count", { n: items.length })
      : t("patrol_page.waiting_none");
    const list = document.getElementById("pp-waiting");
    list.replaceChildren(
      ...items.map((i) => {
        const li = el("li", null, t(KIND_LABEL[i.kind]) + " · " + (i.label || "") + " · " +
          new Date(i.recorded_at).toLocaleTimeString(GA.lang === "zh" ? "zh-CN" : "en-GB",
            { hour: "2-digit", minute: "2-digit" }));
        li.dataset.key = i.key;
        return li;
      })
    );
    document.getElementById("pp-sync").hidden = items.length === 0;
  }

  // --- buildings: the colour of the days since the last check-in -----------------------

  function markBuilding(id, isPending, isDone) {
    const layer = buildings.get(id);
    if (!layer) return;
    const p = layer.feature.properties;
    if (isPending) {
      layer.setStyle({ fillColor: PALETTE.today, dashArray: "4 3", weight: 3, color: "#1a5e20" });
      return;
    }
    if (isDone) {
      p.days = 0;
      p.band = "today";
      layer.ppFill = PALETTE.today;
      if (card.dataset.buildingId === String(id)) {
        const last = card.querySelector(".pp-last");
        if (last) last.textContent = lastText(p);
      }
    }
    layer.setStyle({ fillColor: layer.ppFill, dashArray: null, weight: 1, color: "#444" });
  }

  function buildingName(p) {
    return p.label || p.code || String(p.building_id);
  }

  function lastText(p) {
    if (p.days === null || p.days === undefined) return t("patrol_page.last_never");
    if (p.days === 0) return t("patrol_page.last_today");
    return t("patrol_page.last_days", { n: p.days });
  }

  function position() {
    return new Promise((resolve, reject) => {
      if (!navigator.geolocation) return reject(new Error("no geolocation"));
      navigator.geolocation.getCurrentPosition(resolve, reject, {
        enableHighAccuracy: true,
        timeout: 15000,
        maximumAge: 10000,
      });
    });
  }

  function checkInTap(p) {
    const body = { building_id: p.building_id, method: "tap", at: new Date().toISOString() };
    return enqueue("checkin", "/api/patrol/checkins", body, buildingName(p), p.building_id);
  }

  async function checkInGps(p) {
    GA.notice(t("patrol_page.gps_locating"), "ok");
    let pos;
    try {
      pos = await position();
    } catch (err) {
      GA.notice(t("patrol_page.gps_failed"), "error");
      return null;
    }
    const body = {
      building_id: p.building_id,
      method: "gps",
      lon: pos.coords.longitude,
      lat: pos.coords.latitude,
      accuracy_m: Math.round(pos.coords.accuracy * 10) / 10,
      at: new Date(pos.timestamp || Date.now()).toISOString(),
    };
    return enqueue("checkin", "/api/patrol/checkins", body, buildingName(p), p.building_id);
  }

  // "Check in by position": the building of the area nearest to the tablet.
  async function checkInNearest() {
    GA.notice(t("patrol_page.gps_locating"), "ok");
    let pos;
    try {
      pos = await position();
    } catch (err) {
      GA.notice(t("patrol_page.gps_failed"), "error");
      return;
    }
    const here = L.latLng(pos.coords.latitude, pos.coords.longitude);
    let best = null;
    for (const layer of buildings.values()) {
      const d = here.distanceTo(layer.getBounds().getCenter());
      if (!best || d < best.d) best = { d: d, layer: layer };
    }
    if (!best || best.d > 1000) {
      GA.notice(t("patrol_page.gps_none_near"), "error");
      return;
    }
    const p = best.layer.feature.properties;
    openBuilding(p.building_id);
    const body = {
      building_id: p.building_id,
      method: "gps",
      lon: here.lng,
      lat: here.lat,
      accuracy_m: Math.round(pos.coords.accuracy * 10) / 10,
      at: new Date(pos.timestamp || Date.now()).toISOString(),
    };
    await enqueue("checkin", "/api/patrol/checkins", body, buildingName(p), p.building_id);
  }

  // --- the one card -------------------------------------------------------------------

  function closeCard() {
    card.hidden = true;
    card.replaceChildren();
    delete card.dataset.buildingId;
    delete card.dataset.areaId;
    delete card.dataset.problemId;
  }

  function showCard(title, children) {
    const head = el("div", "pp-card-head");
    head.append(el("h2", null, title));
    const close = el("button", "pp-close", "×");
    close.type = "button";
    close.id = "pp-card-close";
    close.setAttribute("aria-label", t("patrol_page.card_close"));
    close.addEventListener("click", closeCard);
    head.append(close);
    card.replaceChildren(head, ...children);
    card.hidden = false;
    card.scrollIntoView({ block: "nearest" });
  }

  function problemForm(p) {
    const form = el("form", "pp-report");
    form.hidden = true;
    const select = el("select");
    select.name = "category";
    select.setAttribute("aria-label", t("patrol_page.report_category"));
    for (const c of ["parking", "ebike_charging", "lift", "illegal_construction", "public_safety",
      "environment", "facilities", "other"]) {
      const o = el("option", null, t("patrol_page.category." + c));
      o.value = c;
      select.append(o);
    }
    const text = el("textarea");
    text.name = "description";
    text.maxLength = 2000;
    text.placeholder = t("patrol_page.report_description");
    text.setAttribute("aria-label", t("patrol_page.report_description"));
    const send = el("button", "pp-btn", t("patrol_page.report_send"));
    send.type = "submit";
    form.append(select, text, send);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const description = text.value.trim();
      if (!description) {
        GA.notice(t("patrol_page.report_need_text"), "error");
        return;
      }
      const body = {
        category: select.value,
        description: description,
        handling: "immediate",
        building_id: p.building_id,
        at: new Date().toISOString(),
      };
      await enqueue("problem", "/api/problems", body, buildingName(p), null);
      text.value = "";
      form.hidden = true;
    });
    return form;
  }

  function openBuilding(id) {
    const layer = buildings.get(id);
    if (!layer) return;
    const p = layer.feature.properties;
    const form = problemForm(p);
    const actions = el("div", "pp-actions");
    const tap = button(t("patrol_page.checkin"), () => checkInTap(p));
    tap.id = "pp-checkin";
    const gps = button(t("patrol_page.checkin_gps"), () => checkInGps(p), "pp-light");
    gps.id = "pp-checkin-gps";
    const report = button(t("patrol_page.report"), () => (form.hidden = !form.hidden), "pp-light");
    report.id = "pp-report";
    actions.append(tap, gps, report);
    showCard(buildingName(p), [
      el("p", null, t("patrol_page.card_households", { n: p.households })),
      el("p", "pp-last", lastText(p)),
      actions,
      form,
    ]);
    card.dataset.buildingId = String(id);
  }

  async function openProblem(props) {
    showCard(t("patrol_page.problem", { id: props.problem_id }), [
      el("p", null, t("patrol_page.category." + props.category) + " · " +
        t("patrol_page.status." + props.status)),
    ]);
    card.dataset.problemId = String(props.problem_id);
    const r = await GA.api("GET", "/api/problems/" + props.problem_id);
    if (card.dataset.problemId !== String(props.problem_id)) return;
    if (!r.ok) {
      GA.notice(r.message, "error");
      return;
    }
    card.append(el("p", "pp-description", r.data.description));
    if (r.data.deadline) {
      card.append(el("p", null, t("patrol_page.problem_deadline", { date: r.data.deadline.slice(0, 10) })));
    }
  }

  // --- areas: the worker of each (staff) ------------------------------------------------

  async function loadWorkers() {
    if (workers) return workers;
    const r = await GA.api("GET", "/api/patrol/workers");
    if (!r.ok) {
      GA.notice(r.message, "error");
      return [];
    }
    workers = r.data;
    return workers;
  }

  function areaWho(p) {
    return p.worker_id ? t("patrol_page.area_worker", { name: p.worker_name }) : t("patrol_page.area_vacant");
  }

  async function openArea(id) {
    const layer = areas.get(id);
    if (!layer) return;
    const p = layer.feature.properties;
    const who = el("p", "pp-who", areaWho(p));
    const select = el("select");
    select.id = "pp-worker";
    select.setAttribute("aria-label", t("patrol_page.area_pick"));
    const first = el("option", null, t("patrol_page.area_pick"));
    first.value = "";
    select.append(first);
    const save = button(t("patrol_page.area_save"), async () => {
      if (!select.value) return;
      save.disabled = true;
      const r = await GA.api("PUT", "/api/patrol/areas/" + id + "/worker", { user_id: Number(select.value) });
      save.disabled = false;
      if (!r.ok) {
        GA.notice(r.message, "error");
        return;
      }
      const w = (workers || []).find((x) => x.id === r.data.user_id);
      p.worker_id = r.data.user_id;
      p.worker_name = w ? w.name : String(r.data.user_id);
      const colour = workerColour(p.worker_id);
      layer.setStyle({ color: colour, fillColor: colour, dashArray: null });
      who.textContent = areaWho(p);
      GA.notice(t("patrol_page.area_saved", { code: p.code, name: p.worker_name }), "ok");
    });
    save.id = "pp-save-worker";
    const actions = el("div", "pp-actions");
    const show = button(t("patrol_page.route_show"), () => drawTour(id), "pp-light");
    show.id = "pp-route-show";
    actions.append(save, show, printLink(id));
    showCard(t("patrol_page.area", { code: p.code }), [
      el("p", null, t("patrol_page.area_size", { households: p.households, buildings: p.buildings })),
      who,
      select,
      actions,
    ]);
    card.dataset.areaId = String(id);
    const list = await loadWorkers();
    if (card.dataset.areaId !== String(id)) return;
    if (!list.length) card.append(el("p", "pp-muted", t("patrol_page.area_no_workers")));
    // the area's own grid's workers first
    const sorted = list.slice().sort((a, b) => (b.grid_id === p.grid_id) - (a.grid_id === p.grid_id));
    for (const w of sorted) {
      const o = el("option", null, w.name + "（" + w.grid_code + "）");
      o.value = String(w.id);
      if (w.id === p.worker_id) o.selected = true;
      select.append(o);
    }
  }

  // --- the tour -----------------------------------------------------------------------

  function printLink(areaId) {
    const a = el("a", "pp-btn pp-link", t("patrol_page.route_print"));
    a.href = "/app/patrol/route?area=" + encodeURIComponent(areaId);
    a.className = "pp-btn pp-link pp-print-link";
    return a;
  }

  function seqMarker(latlng, text, extra) {
    const node = el("span", null, text);
    return L.marker(latlng, {
      icon: L.divIcon({ className: "pp-seq" + (extra ? " " + extra : ""), html: node, iconSize: [24, 24] }),
      interactive: false,
      keyboard: false,
    });
  }

  async function drawTour(areaId) {
    routeBox.hidden = false;
    routeBox.replaceChildren(el("p", "pp-muted", t("patrol_page.route_loading")));
    const r = await GA.api("GET", "/api/patrol/areas/" + areaId + "/tour");
    if (!r.ok) {
      routeBox.replaceChildren(el("p", "pp-note", r.message));
      return;
    }
    const tour = r.data;
    if (routeLayer) {
      routeLayer.clearLayers();
      L.geoJSON(tour.line, { interactive: false, style: { color: PALETTE.route, weight: 4, opacity: 0.85 } })
        .addTo(routeLayer);
      seqMarker([tour.start.lat, tour.start.lon], "0", "pp-start").addTo(routeLayer);
      for (const s of tour.stops) {
        const layer = buildings.get(s.building_id);
        if (layer) seqMarker(layer.getBounds().getCenter(), String(s.seq)).addTo(routeLayer);
      }
    }
    const summary = t("patrol_page.route_summary", {
      length: Math.round(tour.length_m),
      minutes: Math.round(tour.walk_min),
      stops: tour.stops.length,
    });
    const children = [el("h2", null, t("patrol_page.layer_route")), el("p", "pp-route-summary", summary)];
    if (tour.unreachable.length) {
      children.push(el("p", "pp-muted", t("patrol_page.route_unreachable", { n: tour.unreachable.length })));
    }
    const actions = el("div", "pp-actions");
    actions.append(printLink(areaId));
    children.push(actions);
    routeBox.replaceChildren(...children);
    routeBox.dataset.areaId = String(areaId);
  }

  // --- today's reminders ----------------------------------------------------------------

  function categoryLabel(category) {
    const code = String(category).split(":")[1] || category;
    const key = "grid.category." + code;
    const label = t(key);
    return label === key ? code : label;
  }

  function visitRow(v) {
    const li = el("li");
    li.dataset.residentId = String(v.resident_id);
    li.append(el("span", "pp-grow", v.name + (v.room ? " · " + t("patrol_page.visit_room", { room: v.room }) : "") +
      " · " + categoryLabel(v.category)));
    let when;
    if (v.overdue_days === null || v.overdue_days === undefined) when = el("span", "pp-late", t("patrol_page.visit_never"));
    else if (v.overdue_days > 0) when = el("span", "pp-late", t("patrol_page.visit_overdue", { n: v.overdue_days }));
    else when = el("span", null, t("patrol_page.visit_due_today"));
    const done = button(t("patrol_page.visit_record"), async () => {
      done.disabled = true;
      const body = { resident_id: v.resident_id, category: v.category, at: new Date().toISOString() };
      await enqueue("visit", "/api/visits", body, v.name, null);
    }, "pp-light");
    li.append(when, done);
    return li;
  }

  function unseenRow(u) {
    const li = el("li");
    li.dataset.buildingId = String(u.building_id);
    const label = u.name || String(u.building_id);
    const days = u.days_unseen === null ? t("patrol_page.unseen_never") : t("patrol_page.unseen_days", { n: u.days_unseen });
    const go = button(label + " · " + days, () => {
      const layer = buildings.get(u.building_id);
      if (!layer) return;
      map.fitBounds(layer.getBounds(), { maxZoom: 18 });
      if (!IS_STAFF) openBuilding(u.building_id);
    }, "pp-light");
    li.append(go);
    return li;
  }

  function problemRow(p) {
    const li = el("li");
    li.append(el("span", "pp-grow", t("patrol_page.problem", { id: p.problem_id }) + " · " +
      t("patrol_page.category." + p.category)));
    li.append(el("span", p.is_overdue ? "pp-late" : null, p.is_overdue ? t("patrol_page.problem_overdue")
      : t("patrol_page.problem_deadline", { date: String(p.deadline).slice(0, 10) })));
    return li;
  }

  function section(title, rows, id) {
    const box = el("div");
    box.id = id;
    box.append(el("h3", null, title));
    const list = el("ul", "pp-list");
    list.append(...rows.slice(0, 20));
    box.append(list);
    return box;
  }

  async function showReminders() {
    const box = document.getElementById("pp-reminders");
    const r = await GA.api("GET", "/api/me/reminders");
    const head = el("h2", null, t("patrol_page.reminders_title"));
    if (!r.ok) {
      box.replaceChildren(head, el("p", "pp-muted", t("patrol_page.reminders_failed")));
      return;
    }
    const d = r.data;
    const parts = [head];
    if (d.visits_due.length) {
      parts.push(section(t("patrol_page.visits_due", { n: d.visits_due.length }), d.visits_due.map(visitRow), "pp-visits"));
    }
    const unseen = d.buildings_unseen.filter((u) => buildings.has(u.building_id));
    if (unseen.length) {
      parts.push(section(t("patrol_page.unseen", { days: d.unseen_days, n: unseen.length }), unseen.map(unseenRow), "pp-unseen"));
    }
    if (d.problems_due.length) {
      parts.push(section(t("patrol_page.problems_due", { n: d.problems_due.length }), d.problems_due.map(problemRow), "pp-due"));
    }
    if (parts.length === 1) parts.push(el("p", "pp-muted", t("patrol_page.reminders_none")));
    box.replaceChildren(...parts);
  }

  // --- wiring -------------------------------------------------------------------------

  map.eachLayer((layer) => {
    const p = layer.feature && layer.feature.properties;
    if (!p) return;
    if (p.problem_id !== undefined) {
      layer.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        openProblem(p);
      });
    } else if (p.building_id !== undefined) {
      buildings.set(p.building_id, layer);
      layer.ppFill = layer.options.fillColor; // its colour of the days, restored after a refusal
      layer.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        if (!IS_STAFF) openBuilding(p.building_id);
      });
    } else if (p.area_id !== undefined) {
      areas.set(p.area_id, layer);
      layer.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        if (IS_STAFF) openArea(p.area_id);
      });
    }
  });

  const gpsButton = document.getElementById("pp-gps");
  if (gpsButton) gpsButton.addEventListener("click", checkInNearest);
  document.getElementById("pp-sync").addEventListener("click", () => sync());
  window.addEventListener("online", () => sync());
  setInterval(() => {
    if (navigator.onLine) sync();
  }, 60000);

  // for tests and the curious: what waits, and a sync on demand
  window.GAPatrol = {
    sync: sync,
    waiting: waiting,
    put: async (item) => (await db()).put("queue", item),
  };

  showQueue().then(() => sync());
  showReminders();
  if (!IS_STAFF && myAreas.length) drawTour(myAreas[0]);
})();

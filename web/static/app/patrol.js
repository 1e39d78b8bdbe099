// 巡查: check in at buildings (a tap or the GPS position), log visits and report problems
// (with photos) — kept in the outbox (web/static/app/outbox.js: IndexedDB "ga-patrol" through
// npm idb, cleared at logout only after asking) with an Idempotency-Key made when recorded,
// and sent when the network returns; a problem's card moves it along its flow (online);
// the tour drawn from the API with its stop numbers; staff assign a worker to an area and
// check in themselves too. Every text comes from the catalogue (GA.t); every value from the
// server goes in with textContent, never as markup.
(function () {
  "use strict";
  if (!window.GA) return;
  const t = GA.t;

  // The printable route page has only a print button.
  const printButton = document.getElementById("pp-print");
  if (printButton) printButton.addEventListener("click", () => window.print());

  const panel = document.getElementById("pp-panel");
  const map = window.L ? Object.values(window).find((v) => v instanceof L.Map) : null;
  if (!panel || !map) return;
  import("/static/app/outbox.js").then(start, () => GA.notice(t("patrol_page.outbox_failed"), "error"));

  function start(outbox) {
    const USER = Number(panel.dataset.user);
    const IS_STAFF = panel.dataset.mode === "staff";
    const PALETTE = JSON.parse(panel.dataset.palette || "{}");
    const FLOW = JSON.parse(panel.dataset.flow || "{}"); // status -> the statuses it may become
    const routeLayer = window[panel.dataset.routeLayer];
    const myAreas = (panel.dataset.areas || "").split(",").filter(Boolean).map(Number);
    const card = document.getElementById("ga-card");
    const routeBox = document.getElementById("pp-route");
    const RETRY_MS = [5000, 15000, 30000, 60000];
    const KIND_LABEL = {
      checkin: "patrol_page.kind_checkin",
      visit: "patrol_page.kind_visit",
      problem: "patrol_page.kind_problem",
    };
    const CATEGORIES = ["parking", "ebike_charging", "lift", "illegal_construction", "public_safety",
      "environment", "facilities", "other"];
    const HANDLING = ["immediate", "joint", "time_limited"];
    const buildings = new Map(); // building id -> layer
    const areas = new Map(); // area id -> layer
    const problemLayers = new Map(); // problem id -> marker
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

    // --- the outbox ---------------------------------------------------------------------

    let seq = 0;
    async function enqueue(kind, url, body, label, extra) {
      const item = Object.assign({
        key: newKey(), // made once, when recorded: every retry of this record sends it
        user: USER,
        seq: Date.now() * 1000 + (seq++ % 1000),
        kind: kind,
        url: url,
        body: body,
        label: label,
        building_id: null,
        recorded_at: new Date().toISOString(),
      }, extra || {});
      await outbox.put(item);
      if (kind === "checkin") markBuilding(item.building_id, true);
      await showQueue();
      if (!navigator.onLine) GA.notice(t("patrol_page.queued", { what: t(KIND_LABEL[kind]) }), "ok");
      sync();
      return item.key;
    }

    // What the page does when the server has a record, or refused it (then it is not kept).
    const hooks = {
      sent(item, answer) {
        lastSent = item.kind;
        if (item.kind === "checkin") markBuilding(item.building_id, false, true);
        else if (item.kind === "problem") problemSaved(item, answer);
        else if (item.kind === "visit") visitSaved(item, answer);
      },
      refused(item, message, photo) {
        if (photo) {
          GA.notice(t("patrol_page.photo_refused", { name: photo.name || "", message: message }), "error");
          return;
        }
        if (item.kind === "checkin") markBuilding(item.building_id, false);
        if (item.kind === "visit") visitRefused(item);
        GA.notice(t("patrol_page.refused", { what: t(KIND_LABEL[item.kind]), message: message }), "error");
      },
    };

    let lastSent = null; // the kind of the record the server had last
    let running = null;
    let again = false;
    let retries = 0;
    let retryTimer = null;

    async function runSync() {
      if (!navigator.onLine) return 0;
      if (!(await outbox.waiting(USER)).length) return 0;
      const r = await outbox.send(GA, USER, hooks);
      // one problem or visit says itself what was saved; anything more, a summary
      if (r.sent > 1 || (r.sent === 1 && lastSent === "checkin")) {
        GA.notice(t("patrol_page.synced", { n: r.sent }), "ok");
      }
      if (r.failed) {
        clearTimeout(retryTimer);
        retryTimer = setTimeout(sync, RETRY_MS[Math.min(retries++, RETRY_MS.length - 1)]);
      } else {
        retries = 0;
      }
      return r.sent;
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
      const items = await outbox.waiting(USER);
      const count = document.getElementById("pp-count");
      count.textContent = String(items.length);
      count.classList.toggle("pp-has", items.length > 0);
      document.getElementById("pp-queue-state").textContent = items.length
        ? t("patrol_page.waiting_count", { n: items.length })
        : t("patrol_page.waiting_none");
      const list = document.getElementById("pp-waiting");
      list.replaceChildren(
        ...items.map((i) => {
          const photos = (i.photos || []).length ? " · " + t("patrol_page.photos_n", { n: i.photos.length }) : "";
          const li = el("li", null, t(KIND_LABEL[i.kind]) + " · " + (i.label || "") + photos + " · " +
            new Date(i.recorded_at).toLocaleTimeString(GA.lang === "zh" ? "zh-CN" : "en-GB",
              { hour: "2-digit", minute: "2-digit" }));
          li.dataset.key = i.key;
          li.dataset.kind = i.kind;
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
          maximumAge: 0, // a check-in says "here, now": never an older fix
        });
      });
    }

    function checkInTap(p) {
      const body = { building_id: p.building_id, method: "tap", at: new Date().toISOString() };
      return enqueue("checkin", "/api/patrol/checkins", body, buildingName(p), { building_id: p.building_id });
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
      return enqueue("checkin", "/api/patrol/checkins", body, buildingName(p), { building_id: p.building_id });
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
      await enqueue("checkin", "/api/patrol/checkins", body, buildingName(p), { building_id: p.building_id });
    }

    // --- the one card -------------------------------------------------------------------

    function closeCard() {
      card.hidden = true;
      card.replaceChildren();
      for (const k of ["buildingId", "areaId", "problemId", "residentId", "status"]) delete card.dataset[k];
    }

    function showCard(title, children) {
      closeCard();
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

    function labelled(text, control) {
      const label = el("label", "pp-field");
      label.append(el("span", null, text), control);
      return label;
    }

    function select(name, values, labelKey) {
      const s = el("select");
      s.name = name;
      for (const v of values) {
        const o = el("option", null, t(labelKey + v));
        o.value = v;
        s.append(o);
      }
      return s;
    }

    // --- reporting a problem (kept in the outbox with its photos until the server has it) --

    function problemForm(p) {
      const form = el("form", "pp-report");
      form.id = "pp-report-form";
      form.hidden = true;
      const category = select("category", CATEGORIES, "patrol_page.category.");
      const handling = select("handling", HANDLING, "patrol_page.handling.");
      const deadline = el("input");
      deadline.type = "date";
      deadline.name = "deadline";
      const deadlineField = labelled(t("patrol_page.report_deadline"), deadline);
      deadlineField.hidden = true;
      handling.addEventListener("change", () => (deadlineField.hidden = handling.value !== "time_limited"));
      const text = el("textarea");
      text.name = "description";
      text.maxLength = 2000;
      text.placeholder = t("patrol_page.report_description");
      const photos = el("input");
      photos.type = "file";
      photos.name = "photos";
      photos.accept = "image/jpeg,image/png,image/webp";
      photos.multiple = true;
      const chosen = el("span", "pp-muted");
      photos.addEventListener("change", () => {
        chosen.textContent = photos.files.length ? t("patrol_page.photos_n", { n: photos.files.length }) : "";
      });
      const send = el("button", "pp-btn", t("patrol_page.report_send"));
      send.type = "submit";
      send.id = "pp-report-send";
      form.append(
        labelled(t("patrol_page.report_category"), category),
        labelled(t("patrol_page.report_handling"), handling),
        deadlineField,
        labelled(t("patrol_page.report_description"), text),
        labelled(t("patrol_page.report_photos"), photos),
        chosen,
        send
      );
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const description = text.value.trim();
        if (!description) {
          GA.notice(t("patrol_page.report_need_text"), "error");
          return;
        }
        const body = {
          category: category.value,
          description: description,
          handling: handling.value,
          building_id: p.building_id,
          at: new Date().toISOString(),
        };
        if (handling.value === "time_limited") {
          if (!deadline.value) {
            GA.notice(t("patrol_page.report_need_deadline"), "error");
            return;
          }
          // the end of that day, China time (the deadline the committee means)
          body.deadline = deadline.value + "T23:59:00+08:00";
        }
        const files = Array.from(photos.files, (f) => ({ name: f.name, blob: f }));
        await enqueue("problem", "/api/problems", body, buildingName(p), {
          building_id: p.building_id,
          photos: files,
        });
        form.reset();
        chosen.textContent = "";
        deadlineField.hidden = true;
        form.hidden = true;
      });
      return form;
    }

    function problemSaved(item, answer) {
      const n = (item.photos || []).length;
      GA.notice(t("patrol_page.problem_saved", { id: answer.id, photos: n }), "ok");
      addProblemMarker(answer);
      // the reporter is still at that building's card: show the problem they just filed
      if (card.dataset.buildingId === String(item.building_id) || card.hidden) showProblem(answer);
    }

    function addProblemMarker(pr) {
      if (problemLayers.has(pr.id) || pr.lat === undefined) return;
      const marker = L.marker([pr.lat, pr.lon], {
        icon: L.divIcon({ className: "pp-problem pp-st-" + pr.status, html: "<span></span>", iconSize: [44, 44] }),
      });
      marker.feature = { properties: { problem_id: pr.id, category: pr.category, status: pr.status } };
      marker.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        openProblem(marker.feature.properties);
      });
      marker.addTo(map);
      problemLayers.set(pr.id, marker);
    }

    function restyleProblem(pr) {
      const marker = problemLayers.get(pr.id);
      if (!marker) return;
      if (pr.status === "verified" || pr.status === "closed") {
        // the map shows what is still open (挂牌): verified and closed ones come off it
        map.removeLayer(marker);
        problemLayers.delete(pr.id);
        return;
      }
      if (marker.feature) marker.feature.properties.status = pr.status;
      const node = marker.getElement && marker.getElement();
      if (node) {
        for (const c of Array.from(node.classList)) if (c.startsWith("pp-st-")) node.classList.remove(c);
        node.classList.add("pp-st-" + pr.status);
      }
    }

    // --- a problem's card: what it is, its history, and the next steps the flow allows ----

    function statusLabel(status) {
      return t("patrol_page.status." + status);
    }

    function nextSteps(pr) {
      const next = FLOW[pr.status] || [];
      // whoever resolved it cannot verify it (the server refuses it too): not offered
      return next.filter((to) => !(to === "verified" && pr.resolved_by === USER));
    }

    function actionLabel(from, to) {
      if (from === "resolved" && to === "in_progress") return t("patrol_page.action.reopen");
      return t("patrol_page.action." + to);
    }

    function showProblem(pr) {
      const when = (iso) => new Date(iso).toLocaleString(GA.lang === "zh" ? "zh-CN" : "en-GB",
        { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" });
      const status = el("p", "pp-status", t("patrol_page.category." + pr.category) + " · " + statusLabel(pr.status));
      status.id = "pp-problem-status";
      const parts = [
        status,
        el("p", null, t("patrol_page.handling." + pr.handling) +
          (pr.deadline ? " · " + t("patrol_page.problem_deadline", { date: pr.deadline.slice(0, 10) }) : "")),
        el("p", "pp-description", pr.description),
      ];
      const photos = el("div", "pp-photos");
      photos.id = "pp-problem-photos";
      parts.push(photos);
      const history = el("ol", "pp-history");
      for (const e of pr.events || []) {
        history.append(el("li", null, when(e.at) + " · " + statusLabel(e.to_status) + (e.note ? " · " + e.note : "")));
      }
      parts.push(el("h3", null, t("patrol_page.problem_history")), history);
      const next = nextSteps(pr);
      if (next.length) {
        const note = el("textarea");
        note.id = "pp-status-note";
        note.maxLength = 2000;
        note.placeholder = t("patrol_page.status_note");
        note.setAttribute("aria-label", t("patrol_page.status_note"));
        const actions = el("div", "pp-actions pp-flow");
        for (const to of next) {
          const b = button(actionLabel(pr.status, to), () => changeStatus(pr, to, note.value.trim(), actions),
            to === "in_progress" && pr.status === "resolved" ? "pp-light" : "");
          b.dataset.to = to;
          actions.append(b);
        }
        parts.push(el("h3", null, t("patrol_page.status_next")), note, actions);
      } else if (pr.status === "closed") {
        parts.push(el("p", "pp-muted", t("patrol_page.problem_is_closed")));
      }
      if ((FLOW[pr.status] || []).includes("verified") && pr.resolved_by === USER) {
        parts.push(el("p", "pp-muted pp-verify-own", t("patrol_page.verify_not_you")));
      }
      showCard(t("patrol_page.problem", { id: pr.id }), parts);
      card.dataset.problemId = String(pr.id);
      card.dataset.status = pr.status;
      loadPhotos(pr.id, photos);
    }

    async function loadPhotos(id, box) {
      const r = await GA.api("GET", "/api/problems/" + id + "/photos");
      if (!r.ok || card.dataset.problemId !== String(id) || !r.data.length) return;
      box.append(el("p", "pp-muted", t("patrol_page.photos_n", { n: r.data.length })));
      for (const ph of r.data) {
        const img = el("img", "pp-thumb");
        img.src = "/api/problems/" + id + "/photos/" + ph.id;
        img.alt = t("patrol_page.photo_alt", { id: id });
        box.append(img);
      }
    }

    async function changeStatus(pr, to, note, actions) {
      if (!navigator.onLine) {
        GA.notice(t("patrol_page.status_offline"), "error");
        return;
      }
      actions.querySelectorAll("button").forEach((b) => (b.disabled = true));
      const r = await GA.api("POST", "/api/problems/" + pr.id + "/status", note ? { to: to, note: note } : { to: to });
      if (r.ok) {
        GA.notice(t("patrol_page.status_saved", { id: pr.id, status: statusLabel(r.data.status) }), "ok");
        restyleProblem(r.data);
        showProblem(r.data);
        return;
      }
      // refused (moved on by a colleague meanwhile, say): what the server said, then the
      // problem as it is now, with the steps it allows now
      const now = await GA.api("GET", "/api/problems/" + pr.id);
      if (r.status === 409 && now.ok) {
        GA.notice(t("patrol_page.status_refused", { id: pr.id, status: statusLabel(now.data.status), to: statusLabel(to) }), "error");
      } else {
        GA.notice(r.message, "error");
      }
      if (now.ok) {
        restyleProblem(now.data);
        if (card.dataset.problemId === String(pr.id)) showProblem(now.data);
      } else {
        actions.querySelectorAll("button").forEach((b) => (b.disabled = false));
      }
    }

    async function openProblem(props) {
      showCard(t("patrol_page.problem", { id: props.problem_id }), [
        el("p", null, t("patrol_page.category." + props.category) + " · " + statusLabel(props.status)),
      ]);
      card.dataset.problemId = String(props.problem_id);
      const r = await GA.api("GET", "/api/problems/" + props.problem_id);
      if (card.dataset.problemId !== String(props.problem_id)) return;
      if (!r.ok) {
        GA.notice(r.message, "error");
        return;
      }
      showProblem(r.data);
    }

    // --- a building's card: check in, report a problem ------------------------------------

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

    // --- a visit's card: a note, kept in the outbox until the server has it ---------------

    function openVisit(v, row) {
      const note = el("textarea");
      note.id = "pp-visit-note";
      note.maxLength = 2000;
      note.placeholder = t("patrol_page.visit_note");
      note.setAttribute("aria-label", t("patrol_page.visit_note"));
      const save = button(t("patrol_page.visit_save"), async () => {
        save.disabled = true;
        const body = { resident_id: v.resident_id, category: v.category, at: new Date().toISOString() };
        if (note.value.trim()) body.note = note.value.trim();
        row.classList.add("pp-pending");
        await enqueue("visit", "/api/visits", body, v.name, { resident_id: v.resident_id });
        closeCard();
      });
      save.id = "pp-visit-save";
      const actions = el("div", "pp-actions");
      actions.append(save);
      const where = v.room ? t("patrol_page.visit_room", { room: v.room }) : "";
      showCard(t("patrol_page.visit_title", { name: v.name }), [
        el("p", null, categoryLabel(v.category) + (where ? " · " + where : "")),
        el("p", "pp-muted", dueText(v)),
        note,
        actions,
      ]);
      card.dataset.residentId = String(v.resident_id);
    }

    function visitRows(residentId) {
      return document.querySelectorAll('#pp-visits li[data-resident-id="' + residentId + '"]');
    }

    function visitSaved(item) {
      GA.notice(t("patrol_page.visit_saved", { name: item.label || "" }), "ok");
      for (const li of visitRows(item.body.resident_id)) {
        if (li.dataset.category !== item.body.category) continue;
        li.classList.remove("pp-pending");
        li.classList.add("pp-done");
        const done = li.querySelector(".pp-when");
        if (done) done.textContent = t("patrol_page.visit_done");
        const b = li.querySelector("button");
        if (b) b.disabled = true;
      }
    }

    function visitRefused(item) {
      for (const li of visitRows(item.body.resident_id)) {
        li.classList.remove("pp-pending");
        const b = li.querySelector("button");
        if (b) b.disabled = false;
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

    function dueText(v) {
      if (v.overdue_days === null || v.overdue_days === undefined) return t("patrol_page.visit_never");
      if (v.overdue_days > 0) return t("patrol_page.visit_overdue", { n: v.overdue_days });
      return t("patrol_page.visit_due_today");
    }

    function visitRow(v) {
      const li = el("li");
      li.dataset.residentId = String(v.resident_id);
      li.dataset.category = v.category;
      li.append(el("span", "pp-grow", v.name + (v.room ? " · " + t("patrol_page.visit_room", { room: v.room }) : "") +
        " · " + categoryLabel(v.category)));
      const late = v.overdue_days === null || v.overdue_days === undefined || v.overdue_days > 0;
      li.append(el("span", "pp-when" + (late ? " pp-late" : ""), dueText(v)));
      const open = button(t("patrol_page.visit_record"), () => openVisit(v, li), "pp-light pp-visit-open");
      li.append(open);
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
        problemLayers.set(p.problem_id, layer);
        layer.on("click", (e) => {
          L.DomEvent.stopPropagation(e);
          openProblem(p);
        });
      } else if (p.building_id !== undefined) {
        // workers and staff alike: staff patrol too (a building is drawn over its area, so a
        // tap on it checks in, a tap on the area around it assigns the area)
        buildings.set(p.building_id, layer);
        layer.ppFill = layer.options.fillColor; // its colour of the days, restored after a refusal
        layer.on("click", (e) => {
          L.DomEvent.stopPropagation(e);
          openBuilding(p.building_id);
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
      waiting: () => outbox.waiting(USER),
      put: (item) => outbox.put(item),
    };

    showQueue().then(() => sync());
    showReminders();
    if (!IS_STAFF && myAreas.length) drawTour(myAreas[0]);
    panel.dataset.ready = "1"; // the page's script has started (tests wait for it)
  }
})();

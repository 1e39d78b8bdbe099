// The ledgers page (台账): residents by building and room, the four other ledgers, and
// spreadsheet import (the API's preview first) and export. Every row comes from the API,
// limited there to the user's areas; numbers come masked unless the user asks and may see
// them. Edits carry If-Match (a stale one is refused and shown, never overwritten) and
// creating requests an Idempotency-Key. Texts: GA.t("ledgers.…"); choice labels: the
// spreadsheet templates' own (GET /api/ledgers/choices).
(function () {
  "use strict";
  const root = document.getElementById("lg-app");
  if (!root || !window.GA) return;
  const GA = window.GA;
  const t = GA.t;
  const may = (name) => root.dataset["may" + name.split("_").map(cap).join("")] === "1";
  const PAGE = 50; // rows per page of an entry ledger
  const PEOPLE_PAGE = 200; // residents of a building are fetched page after page
  const ENTRY_LEDGERS = {
    special_groups: { choice: "category", fields: ["category", "notes"], resident: true },
    key_persons: { choice: "category", fields: ["category", "handling", "notes"], resident: true },
    backbone: { choice: "role", fields: ["role", "notes"], resident: true },
    organisations: {
      choice: "kind",
      fields: ["name", "kind", "contact_name", "phone", "address", "notes"],
      resident: false,
    },
  };
  const SHEETS = ["residents", "special_groups", "key_persons", "backbone", "organisations"];
  const state = {
    choices: {},
    community: null,
    building: null, // {id, label, path}
    dwellings: [],
    residents: [],
    room: null,
    reveal: { id_number: false, phone: false },
    pages: {}, // ledger -> offset
    rendered: {},
  };

  function cap(s) {
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  // A new element: attributes (on* never used), text or children; text stays text.
  function el(tag, attrs, content) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of [].concat(content === undefined ? [] : content)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function button(label, onClick, cls, attrs) {
    const b = el("button", Object.assign({ type: "button", class: cls || "lg-btn" }, attrs), label);
    b.addEventListener("click", onClick);
    return b;
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  function choicesOf(sheet, field) {
    return (state.choices[sheet] || {})[field] || [];
  }

  function labelOf(sheet, field, value) {
    const hit = choicesOf(sheet, field).find((c) => c.value === value);
    return hit ? hit.label : value == null ? "" : String(value);
  }

  function select(sheet, field, value, blank) {
    const s = el("select", { name: field });
    if (blank) s.append(el("option", { value: "" }, t("ledgers.choose")));
    for (const c of choicesOf(sheet, field)) {
      s.append(el("option", { value: c.value, selected: c.value === value }, c.label));
    }
    return s;
  }

  function field(label, input, wide) {
    return el("label", { class: wide ? "lg-field wide" : "lg-field" }, [label, input]);
  }

  function input(name, value, attrs) {
    return el("input", Object.assign({ name: name, value: value == null ? "" : value }, attrs));
  }

  function table(headings, rows, cls) {
    const head = el("tr", {}, headings.map((h) => el("th", { scope: "col" }, h)));
    const wrap = el("div", { class: "lg-table-wrap" });
    wrap.append(el("table", { class: cls || "lg-table" }, [el("thead", {}, head), el("tbody", {}, rows)]));
    return wrap;
  }

  function say(box, text, kind) {
    box.textContent = text || "";
    box.className = "lg-msg " + (kind || "");
    box.hidden = !text;
  }

  // --- where: the community, its buildings, the search box --------------------------------

  const communitySelect = document.getElementById("lg-community");

  async function loadCommunities() {
    const r = await GA.api("GET", "/api/areas/communities?limit=500");
    if (!r.ok) return GA.notice(r.message, "error");
    const items = (r.data.features || []).map((f) => f.properties);
    items.sort((a, b) => String(a.code).localeCompare(String(b.code)));
    communitySelect.replaceChildren(
      ...items.map((p) => el("option", { value: p.id }, (p.name || p.code) + " (" + p.code + ")"))
    );
    state.community = items.length ? Number(items[0].id) : null;
    if (!items.length) GA.notice(t("ledgers.no_community"), "error");
  }

  communitySelect.addEventListener("change", () => {
    state.community = Number(communitySelect.value);
    state.rendered = {};
    showTab(currentTab);
  });

  // --- the residents tab --------------------------------------------------------------------

  const residentsPanel = document.getElementById("lg-panel-residents");
  const buildingSelect = el("select", { id: "lg-building" });
  const searchBox = el("input", {
    id: "lg-search",
    type: "search",
    placeholder: t("app.search_placeholder"),
    maxlength: 100,
  });
  const searchHits = el("ul", { id: "lg-search-hits", class: "lg-hits" });
  const buildingBox = el("div", { id: "lg-building-box" });
  const residentForm = el("div", { id: "lg-resident-form", class: "lg-card", hidden: true });

  function renderResidentsFrame() {
    const form = el("form", { class: "lg-search", role: "search" }, [
      field(t("app.search"), searchBox, true),
      el("button", { type: "submit", class: "lg-btn" }, t("app.search")),
    ]);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      runSearch();
    });
    buildingSelect.addEventListener("change", () => {
      if (buildingSelect.value) openBuilding(Number(buildingSelect.value), null);
    });
    residentsPanel.replaceChildren(
      form,
      searchHits,
      field(t("ledgers.building"), buildingSelect, true),
      residentForm,
      buildingBox
    );
  }

  function buildingLabel(p) {
    return (p.name || p.address || p.code) + " · " + t("ledgers.households", { n: p.households || 0 });
  }

  async function loadBuildings() {
    buildingSelect.replaceChildren(el("option", { value: "" }, t("ledgers.choose_building")));
    if (!state.community) return;
    const r = await GA.api("GET", "/api/areas/buildings?limit=2000&community_id=" + state.community);
    if (!r.ok) return GA.notice(r.message, "error");
    const items = (r.data.features || []).map((f) => f.properties);
    items.sort((a, b) => buildingLabel(a).localeCompare(buildingLabel(b), "zh"));
    for (const p of items) buildingSelect.append(el("option", { value: p.id }, buildingLabel(p)));
  }

  async function runSearch() {
    const q = searchBox.value.trim();
    searchHits.replaceChildren();
    if (!q) return;
    const r = await GA.api("GET", "/api/search?limit=20&q=" + encodeURIComponent(q));
    if (!r.ok) return GA.notice(r.message, "error");
    const hits = (r.data.results || []).filter(
      (h) => h.kind === "building" || (h.kind === "resident" && h.building_id)
    );
    if (!hits.length) return searchHits.append(el("li", { class: "lg-empty" }, t("app.no_results")));
    for (const h of hits) {
      const where = h.kind === "building" ? h.id : h.building_id;
      const text = [t("ledgers.kind_" + h.kind), h.label || h.code, h.room || ""].join(" ");
      searchHits.append(
        el("li", {}, button(text, () => openBuilding(where, h.room || null), "lg-hit"))
      );
    }
  }

  async function openBuilding(buildingId, room) {
    searchHits.replaceChildren();
    residentForm.hidden = true;
    const [path, rooms] = await Promise.all([
      GA.api("GET", "/api/buildings/" + buildingId + "/path"),
      GA.api("GET", "/api/buildings/" + buildingId + "/dwellings"),
    ]);
    if (!path.ok) return GA.notice(path.message, "error");
    if (!rooms.ok) return GA.notice(rooms.message, "error");
    const b = path.data[0];
    state.building = {
      id: buildingId,
      label: b.name || b.code,
      path: path.data.slice(1).map((a) => t("level." + a.level) + " " + (a.name || a.code)),
    };
    state.dwellings = (rooms.data.features || []).map((f) => f.properties);
    state.room = room;
    if (buildingSelect.querySelector('option[value="' + buildingId + '"]')) {
      buildingSelect.value = String(buildingId);
    }
    await loadResidents();
  }

  async function loadResidents() {
    const reveal = Object.keys(state.reveal).filter((k) => state.reveal[k]);
    const people = [];
    for (let offset = 0; ; offset += PEOPLE_PAGE) {
      let url = "/api/residents?level=building&area_id=" + state.building.id;
      url += "&limit=" + PEOPLE_PAGE + "&offset=" + offset;
      if (reveal.length) url += "&reveal=" + reveal.join(",");
      const r = await GA.api("GET", url);
      if (!r.ok) {
        GA.notice(r.message, "error");
        if (reveal.length) {
          state.reveal = { id_number: false, phone: false };
          return loadResidents();
        }
        return;
      }
      people.push(...r.data.items);
      if (offset + PEOPLE_PAGE >= r.data.total || !r.data.items.length) break;
    }
    state.residents = people;
    renderBuilding();
  }

  function roomChips(counts) {
    const chips = el("div", { class: "lg-rooms", id: "lg-rooms" });
    const chip = (room, label) =>
      button(label, () => {
        state.room = room;
        renderBuilding();
      }, "lg-chip", { "aria-pressed": state.room === room ? "true" : "false", "data-room": room || "" });
    chips.append(chip(null, t("ledgers.all_rooms", { n: state.residents.length })));
    for (const d of state.dwellings) {
      chips.append(chip(d.room, t("ledgers.room_people", { room: d.room, n: counts[d.room] || 0 })));
    }
    return chips;
  }

  function revealButtons() {
    const out = [];
    for (const kind of ["id_number", "phone"]) {
      if (!may("reveal_" + kind)) continue;
      const on = state.reveal[kind];
      out.push(
        button(t(on ? "ledgers.hide_" + kind : "ledgers.reveal_" + kind), () => {
          state.reveal[kind] = !on;
          loadResidents();
        }, "lg-btn secondary", { id: "lg-reveal-" + kind, "aria-pressed": on ? "true" : "false" })
      );
    }
    return out;
  }

  function residentRow(p) {
    const edit = may("write_residents")
      ? button(t("ledgers.edit"), () => editResident(p.id), "lg-btn small", { "data-edit": p.id })
      : "";
    return el("tr", { "data-resident": p.id }, [
      el("td", {}, edit),
      el("td", {}, p.room),
      el("td", {}, p.name),
      el("td", {}, p.gender || ""),
      el("td", {}, p.birth_date || p.birth_year || ""),
      el("td", { class: "lg-number" }, p.id_number),
      el("td", { class: "lg-number" }, p.phone || ""),
      el("td", {}, labelOf("residents", "relation", p.relation)),
      el("td", {}, labelOf("residents", "status", p.status)),
    ]);
  }

  function renderBuilding() {
    const b = state.building;
    const counts = {};
    for (const p of state.residents) counts[p.room] = (counts[p.room] || 0) + 1;
    const shown = state.residents
      .filter((p) => state.room === null || p.room === state.room)
      .sort((x, y) => String(x.room).localeCompare(String(y.room), "zh", { numeric: true }));
    const add = may("write_residents")
      ? button(t("ledgers.add_resident"), () => newResident(), "lg-btn", { id: "lg-add-resident" })
      : "";
    // the edit button first: on a portrait tablet the table scrolls sideways
    const heads = ["", "room", "name", "gender", "birth", "id_number", "phone", "relation", "status"];
    buildingBox.replaceChildren(
      el("h2", { id: "lg-building-title" }, t("ledgers.building_title", { name: b.label })),
      el("p", { class: "lg-path" }, b.path.join(" · ")),
      el("div", { class: "lg-actions" }, [add, ...revealButtons()]),
      roomChips(counts),
      shown.length
        ? table(heads.map((h) => (h ? t("ledgers.col_" + h) : "")), shown.map(residentRow), "lg-table people")
        : el("p", { class: "lg-empty" }, t("ledgers.no_residents"))
    );
  }

  // --- the resident form: add, edit, and the stale-record reload --------------------------

  function residentFields(p, editing) {
    const rooms = el("datalist", { id: "lg-room-list" }, state.dwellings.map((d) => el("option", { value: d.room })));
    const number = input("id_number", "", {
      maxlength: 40,
      required: !editing,
      placeholder: editing ? t("ledgers.unchanged", { value: p.id_number }) : "",
      autocomplete: "off",
    });
    const phone = input("phone", "", {
      maxlength: 40,
      inputmode: "tel",
      placeholder: editing && p.phone ? t("ledgers.unchanged", { value: p.phone }) : "",
      autocomplete: "off",
    });
    return [
      field(t("ledgers.col_name"), input("name", p.name, { maxlength: 100, required: true })),
      field(t("ledgers.col_id_number"), number),
      field(t("ledgers.col_room"), input("room", p.room, { maxlength: 40, required: true, list: "lg-room-list" })),
      rooms,
      field(t("ledgers.col_phone"), phone),
      field(t("ledgers.col_relation"), select("residents", "relation", p.relation, true)),
      field(t("ledgers.col_status"), select("residents", "status", p.status || "both", false)),
      field(t("ledgers.col_notes"), el("textarea", { name: "notes", maxlength: 2000, rows: 2 }, p.notes || ""), true),
    ];
  }

  function formValues(form) {
    const out = {};
    for (const node of form.querySelectorAll("input[name], select[name], textarea[name]")) {
      out[node.name] = node.value.trim();
    }
    return out;
  }

  // The fields to send: a new record's non-empty ones, or an edit's changed ones.
  function residentBody(values, before) {
    const body = {};
    for (const [k, v] of Object.entries(values)) {
      if (!before) {
        if (v !== "") body[k] = v;
      } else if (k === "id_number" || k === "phone") {
        if (v !== "") body[k] = v; // empty: unchanged (the old value is shown masked)
      } else if (v !== (before[k] == null ? "" : String(before[k]))) {
        body[k] = v === "" && (k === "relation" || k === "notes") ? null : v;
      }
    }
    return body;
  }

  function newResident() {
    const key = { value: newKey() };
    showResidentForm({ room: state.room || "", status: "both" }, null, async (body) => {
      body.building_id = state.building.id;
      const r = await GA.api("POST", "/api/residents", body, { idempotencyKey: key.value });
      if (r.status !== 0) key.value = newKey(); // answered: a new request gets a new key
      return r;
    });
  }

  async function editResident(id) {
    const r = await GA.api("GET", "/api/residents/" + id);
    if (!r.ok) return GA.notice(r.message, "error");
    const current = { row: r.data, etag: r.etag };
    showResidentForm(r.data, current, (body) =>
      GA.api("PATCH", "/api/residents/" + id, body, { etag: current.etag })
    );
  }

  function showResidentForm(p, current, send) {
    const editing = current !== null;
    const msg = el("p", { class: "lg-msg", id: "lg-resident-msg", role: "alert", hidden: true });
    const form = el("form", { class: "lg-form", id: "lg-resident-edit", "data-id": editing ? p.id : "" });
    const save = el("button", { type: "submit", class: "lg-btn", id: "lg-resident-save" }, t("app.save"));
    const cancel = button(t("app.cancel"), () => (residentForm.hidden = true), "lg-btn secondary");
    const reload = button(t("ledgers.reload"), async () => {
      const r = await GA.api("GET", "/api/residents/" + p.id);
      if (!r.ok) return say(msg, r.message, "error");
      current.row = r.data;
      current.etag = r.etag;
      showResidentForm(r.data, current, send);
      say(document.getElementById("lg-resident-msg"), t("ledgers.reloaded"), "ok");
    }, "lg-btn secondary", { id: "lg-resident-reload", hidden: true });
    form.append(...residentFields(p, editing), el("div", { class: "lg-actions" }, [save, reload, cancel]));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = residentBody(formValues(form), editing ? current.row : null);
      if (editing && !Object.keys(body).length) return say(msg, t("ledgers.nothing_changed"), "");
      save.disabled = true;
      const r = await send(body);
      save.disabled = false;
      if (r.ok) {
        residentForm.hidden = true;
        GA.notice(t(editing ? "ledgers.resident_saved" : "ledgers.resident_added", { name: r.data.name }), "ok");
        return loadResidents();
      }
      say(msg, r.message, "error");
      reload.hidden = !(editing && r.status === 412);
    });
    const title = editing ? t("ledgers.edit_resident", { name: p.name }) : t("ledgers.add_resident");
    residentForm.replaceChildren(el("h3", {}, title), msg, form);
    residentForm.hidden = false;
    residentForm.scrollIntoView({ block: "nearest" });
  }

  // --- the four entry ledgers ---------------------------------------------------------------

  function colKey(ledger, f) {
    if (f === ENTRY_LEDGERS[ledger].choice) return "ledgers.col_" + ledger + "_" + f;
    return "ledgers.col_" + (ledger === "organisations" && f === "name" ? "org_name" : f);
  }

  function entryHeadings(ledger) {
    const cfg = ENTRY_LEDGERS[ledger];
    const cols = cfg.resident ? ["resident", ...cfg.fields] : cfg.fields;
    return cols.map((c) => t(colKey(ledger, c)));
  }

  function entryCells(ledger, row) {
    const cfg = ENTRY_LEDGERS[ledger];
    const cells = cfg.resident ? [el("td", {}, row.resident_name)] : [];
    for (const f of cfg.fields) {
      const v = f === cfg.choice ? labelOf(ledger, f, row[f]) : row[f];
      cells.push(el("td", { class: f === "phone" ? "lg-number" : "" }, v == null ? "" : v));
    }
    return cells;
  }

  async function renderLedger(ledger) {
    const panel = document.getElementById("lg-panel-" + ledger);
    const cfg = ENTRY_LEDGERS[ledger];
    const offset = state.pages[ledger] || 0;
    let url = "/api/ledgers/" + ledger + "?limit=" + PAGE + "&offset=" + offset;
    if (!cfg.resident && state.community) url += "&community_id=" + state.community;
    const r = await GA.api("GET", url);
    if (!r.ok) {
      panel.replaceChildren(el("p", { class: "lg-msg error" }, r.message));
      return;
    }
    const formBox = el("div", { class: "lg-card", id: "lg-entry-form-" + ledger, hidden: true });
    const writable = may("write_" + ledger);
    const rows = r.data.items.map((row) =>
      el("tr", { "data-entry": row.id }, [
        el("td", {}, writable
          ? button(t("ledgers.edit"), () => editEntry(ledger, row, formBox), "lg-btn small", { "data-edit": row.id })
          : ""),
        ...entryCells(ledger, row),
      ])
    );
    const add = writable
      ? button(t("ledgers.add_entry"), () => newEntry(ledger, formBox), "lg-btn", { id: "lg-add-" + ledger })
      : "";
    const pager = el("div", { class: "lg-pager" }, [
      button(t("ledgers.prev"), () => turn(ledger, -PAGE), "lg-btn secondary", { disabled: offset === 0 }),
      el("span", {}, t("ledgers.page_of", {
        from: r.data.total ? offset + 1 : 0,
        to: offset + r.data.items.length,
        total: r.data.total,
      })),
      button(t("ledgers.next"), () => turn(ledger, PAGE), "lg-btn secondary", {
        disabled: offset + PAGE >= r.data.total,
      }),
    ]);
    panel.replaceChildren(
      el("div", { class: "lg-actions" }, add),
      formBox,
      rows.length
        ? table(["", ...entryHeadings(ledger)], rows, "lg-table entries")
        : el("p", { class: "lg-empty" }, t("ledgers.no_entries")),
      pager
    );
  }

  function turn(ledger, delta) {
    state.pages[ledger] = Math.max(0, (state.pages[ledger] || 0) + delta);
    renderLedger(ledger);
  }

  function entryFields(ledger, row) {
    const cfg = ENTRY_LEDGERS[ledger];
    const out = [];
    for (const f of cfg.fields) {
      const label = t(colKey(ledger, f));
      if (f === cfg.choice) out.push(field(label, select(ledger, f, row[f], true)));
      else if (f === "notes" || f === "handling") {
        out.push(field(label, el("textarea", { name: f, maxlength: 2000, rows: 2 }, row[f] || ""), true));
      } else {
        const attrs = { maxlength: f === "address" ? 300 : f === "name" ? 200 : 100 };
        if (f === "phone") {
          attrs.inputmode = "tel";
          if (row.phone) attrs.placeholder = t("ledgers.unchanged", { value: row.phone });
        }
        out.push(field(label, input(f, f === "phone" ? "" : row[f], attrs)));
      }
    }
    return out;
  }

  // Look a resident up by name (prefix), to choose whom an entry is about.
  function residentPicker() {
    const name = input("lookup", "", { maxlength: 100, id: "lg-pick-name", autocomplete: "off" });
    const choose = el("select", { name: "resident_id", id: "lg-pick", required: true }, [
      el("option", { value: "" }, t("ledgers.pick_first")),
    ]);
    const find = button(t("ledgers.find"), async () => {
      const q = name.value.trim();
      if (!q) return;
      const r = await GA.api("GET", "/api/residents?limit=50&name=" + encodeURIComponent(q));
      if (!r.ok) return GA.notice(r.message, "error");
      choose.replaceChildren(
        el("option", { value: "" }, r.data.items.length ? t("ledgers.choose") : t("app.no_results")),
        ...r.data.items.map((p) =>
          el("option", { value: p.id }, [p.name, p.building || p.address || "#" + p.building_id, p.room].join(" · "))
        )
      );
      if (r.data.items.length === 1) choose.value = String(r.data.items[0].id);
    }, "lg-btn secondary", { id: "lg-pick-find" });
    return [field(t("ledgers.resident_name"), name), find, field(t("ledgers.col_resident"), choose)];
  }

  function newEntry(ledger, box) {
    const key = { value: newKey() };
    const cfg = ENTRY_LEDGERS[ledger];
    showEntryForm(ledger, box, {}, null, async (values) => {
      const body = {};
      for (const [k, v] of Object.entries(values)) if (v !== "" && k !== "lookup") body[k] = v;
      if (cfg.resident) body.resident_id = Number(body.resident_id) || undefined;
      else body.community_id = state.community;
      const r = await GA.api("POST", "/api/ledgers/" + ledger, body, { idempotencyKey: key.value });
      if (r.status !== 0) key.value = newKey();
      return r;
    });
  }

  async function editEntry(ledger, row, box) {
    const r = await GA.api("GET", "/api/ledgers/" + ledger + "/" + row.id);
    if (!r.ok) return GA.notice(r.message, "error");
    const current = { row: r.data, etag: r.etag };
    if (r.data.version !== row.version) GA.notice(t("ledgers.changed_since_list"), "error");
    showEntryForm(ledger, box, r.data, current, (values) => {
      const body = {};
      for (const [k, v] of Object.entries(values)) {
        const before = current.row[k] == null ? "" : String(current.row[k]);
        if (k === "phone" ? v !== "" : v !== before) body[k] = v === "" ? null : v;
      }
      return GA.api("PATCH", "/api/ledgers/" + ledger + "/" + row.id, body, { etag: current.etag });
    });
  }

  function showEntryForm(ledger, box, row, current, send) {
    const editing = current !== null;
    const cfg = ENTRY_LEDGERS[ledger];
    const msg = el("p", { class: "lg-msg", role: "alert", hidden: true });
    const form = el("form", { class: "lg-form", id: "lg-entry-edit-" + ledger });
    const save = el("button", { type: "submit", class: "lg-btn" }, t("app.save"));
    const reload = button(t("ledgers.reload"), async () => {
      const r = await GA.api("GET", "/api/ledgers/" + ledger + "/" + row.id);
      if (!r.ok) return say(msg, r.message, "error");
      current.row = r.data;
      current.etag = r.etag;
      showEntryForm(ledger, box, r.data, current, send);
      say(box.querySelector(".lg-msg"), t("ledgers.reloaded"), "ok");
    }, "lg-btn secondary", { hidden: true, "data-action": "reload" });
    const remove = editing ? deleteButton(ledger, row, current, msg, reload) : "";
    const cancel = button(t("app.cancel"), () => (box.hidden = true), "lg-btn secondary");
    const who = cfg.resident
      ? editing
        ? [el("p", { class: "lg-who" }, t("ledgers.about", { name: row.resident_name }))]
        : residentPicker()
      : [];
    form.append(...who, ...entryFields(ledger, row), el("div", { class: "lg-actions" }, [save, reload, remove, cancel]));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const values = formValues(form);
      delete values.lookup;
      save.disabled = true;
      const r = await send(values);
      save.disabled = false;
      if (r.ok) {
        box.hidden = true;
        GA.notice(t("ledgers.entry_saved"), "ok");
        return renderLedger(ledger);
      }
      say(msg, r.message, "error");
      reload.hidden = !(editing && r.status === 412);
    });
    const title = t(editing ? "ledgers.edit_entry" : "ledgers.add_entry") + " · " + t("ledgers.tab_" + ledger);
    box.replaceChildren(el("h3", {}, title), msg, form);
    box.hidden = false;
  }

  // Two taps: "delete", then "confirm"; sent with the ETag of the values shown.
  function deleteButton(ledger, row, current, msg, reload) {
    let armed = false;
    const b = button(t("ledgers.delete"), async () => {
      if (!armed) {
        armed = true;
        b.textContent = t("ledgers.confirm_delete");
        b.classList.add("danger");
        return;
      }
      const r = await GA.api("DELETE", "/api/ledgers/" + ledger + "/" + row.id, undefined, { etag: current.etag });
      if (r.ok) {
        GA.notice(t("ledgers.entry_deleted"), "ok");
        return renderLedger(ledger);
      }
      say(msg, r.message, "error");
      reload.hidden = r.status !== 412;
    }, "lg-btn secondary", { "data-action": "delete" });
    return b;
  }

  // --- spreadsheets: template, export, import with the preview ------------------------------

  function renderSheets() {
    const panel = document.getElementById("lg-panel-sheets");
    const sheet = el("select", { id: "lg-sheet" }, SHEETS.map((s) => el("option", { value: s }, t("ledgers.tab_" + s))));
    const links = el("div", { class: "lg-actions", id: "lg-sheet-links" });
    const file = el("input", { type: "file", id: "lg-file", accept: ".xlsx,.csv" });
    const check = el("button", { type: "submit", class: "lg-btn", id: "lg-preview" }, t("ledgers.preview"));
    const result = el("div", { id: "lg-import-result" });
    const form = el("form", { class: "lg-form", id: "lg-import" }, [
      field(t("ledgers.file"), file, true),
      el("div", { class: "lg-actions" }, check),
    ]);
    function showLinks() {
      const s = sheet.value;
      const link = (href, label, id) => el("a", { href: href, download: "", class: "lg-btn secondary", id: id }, label);
      links.replaceChildren(
        link("/api/ledgers/" + s + "/template?format=xlsx", t("ledgers.template_xlsx"), "lg-template-xlsx"),
        link("/api/ledgers/" + s + "/template?format=csv", t("ledgers.template_csv"), "lg-template-csv"),
        may("export_ledgers") ? link("/api/ledgers/" + s + "/export?format=xlsx", t("ledgers.export_xlsx"), "lg-export-xlsx") : "",
        may("export_ledgers") ? link("/api/ledgers/" + s + "/export?format=csv", t("ledgers.export_csv"), "lg-export-csv") : ""
      );
      result.replaceChildren();
    }
    sheet.addEventListener("change", showLinks);
    file.addEventListener("change", () => result.replaceChildren());
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!file.files.length) return GA.notice(t("ledgers.choose_file"), "error");
      runImport(sheet.value, file.files[0], "preview", result, check);
    });
    showLinks();
    panel.replaceChildren(
      field(t("ledgers.sheet"), sheet, true),
      links,
      may("import_ledgers") ? form : el("p", { class: "lg-empty" }, t("ledgers.no_import")),
      result
    );
  }

  async function runImport(sheet, file, mode, result, trigger) {
    const data = new FormData();
    data.append("file", file, file.name);
    let url = "/api/ledgers/" + sheet + "/import?mode=" + mode;
    if (sheet === "organisations" && state.community) url += "&community_id=" + state.community;
    trigger.disabled = true;
    result.replaceChildren(el("p", { class: "lg-msg" }, t("app.loading")));
    const r = await GA.api("POST", url, data);
    trigger.disabled = false;
    if (!r.data || typeof r.data.total_rows !== "number") {
      result.replaceChildren(el("p", { class: "lg-msg error", role: "alert" }, r.message));
      return;
    }
    showPlan(sheet, file, mode, r, result);
  }

  function showPlan(sheet, file, mode, r, result) {
    const plan = r.data;
    const written = plan.written;
    const counts = el("dl", { class: "lg-counts", id: "lg-counts" });
    for (const k of ["total_rows", "valid_rows", "bad_rows", "added", "updated", "unchanged"]) {
      counts.append(el("div", { "data-count": k }, [el("dt", {}, t("ledgers.count_" + k)), el("dd", {}, plan[k])]));
    }
    const head = written
      ? el("p", { class: "lg-msg ok", role: "status", id: "lg-import-done" }, t("ledgers.import_written"))
      : el("p", { class: r.ok ? "lg-msg" : "lg-msg error", role: "status" },
          r.ok ? t("ledgers.preview_done") : r.message);
    const errors = plan.errors.length
      ? table(
          ["row", "column", "value", "reason"].map((h) => t("ledgers.err_" + h)),
          plan.errors.map((e) =>
            // the reason comes in the user's language only; its code stays with the row
            el("tr", { "data-code": e.code || "" }, [el("td", {}, e.row), el("td", {}, e.column), el("td", {}, e.value == null ? "" : e.value), el("td", {}, e.reason)])
          ),
          "lg-table errors"
        )
      : el("p", { class: "lg-empty" }, written ? "" : t("ledgers.no_bad_rows"));
    const warnings = (plan.warnings || []).map((w) => el("p", { class: "lg-warning" }, w));
    const actions = el("div", { class: "lg-actions", id: "lg-import-actions" });
    if (mode === "preview" && !written) {
      const valid = plan.valid_rows;
      if (!plan.bad_rows && valid) actions.append(writeButton(t("ledgers.import_all", { n: valid }), "all"));
      if (plan.bad_rows && valid) actions.append(writeButton(t("ledgers.import_valid", { n: valid }), "valid_only"));
    }
    function writeButton(label, how) {
      let armed = false;
      const b = button(label, () => {
        if (!armed) {
          armed = true;
          b.textContent = t("ledgers.confirm_import", { n: plan.valid_rows });
          b.classList.add("danger");
          return;
        }
        runImport(sheet, file, how, result, b);
      }, "lg-btn", { "data-mode": how });
      return b;
    }
    result.replaceChildren(head, counts, errors, ...warnings, actions);
  }

  // --- tabs ---------------------------------------------------------------------------------

  let currentTab = "residents";

  async function showTab(name) {
    currentTab = name;
    for (const tab of root.querySelectorAll(".lg-tab")) {
      const on = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      document.getElementById("lg-panel-" + tab.dataset.tab).hidden = !on;
    }
    if (name === "residents") {
      if (!state.rendered.residents) {
        state.rendered.residents = true;
        buildingBox.replaceChildren();
        residentForm.hidden = true;
        await loadBuildings();
      }
    } else if (name === "sheets") {
      if (!state.rendered.sheets) {
        state.rendered.sheets = true;
        renderSheets();
      }
    } else {
      state.pages[name] = state.rendered[name] ? state.pages[name] : 0;
      state.rendered[name] = true;
      await renderLedger(name);
    }
  }

  for (const tab of root.querySelectorAll(".lg-tab")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }

  async function start() {
    renderResidentsFrame();
    const r = await GA.api("GET", "/api/ledgers/choices");
    if (r.ok) state.choices = r.data;
    else GA.notice(r.message, "error");
    await loadCommunities();
    await showTab("residents");
    root.dataset.ready = "1";
  }

  start();
})();

// The leaders page: switch the level, tap an area, see its leader and the ones before,
// choose a candidate (backbone residents of the area first, then the nearest) or search the
// community's residents, save; undo puts the previous leader back. The map is recoloured in
// place. Every text comes from the catalogue (GA.t); refusals show the server's message.
// The page comes with the residents' groups only: the walk network and the other levels are
// read from the API after the first drawing (body[data-leaders-levels] says when they are
// all in). A page shown from the tablet's cache (GA.offline.fromCache) reads its own level
// again too, and says it is current once everything came from the server. Seats are always
// read from the server when tapped, and a save names the term it replaces (the API's
// conflict check), so an edit made from a kept copy meets the same refusal as any other.
(function () {
  "use strict";
  const dataNode = document.getElementById("ga-leaders-data");
  if (!dataNode || !window.GA) return;
  const data = JSON.parse(dataNode.textContent || "{}");
  // Folium's map and layers are global variables the page names (layers/leaders.py)
  const map = window[data.map];
  if (!(map instanceof L.Map)) return;
  const t = GA.t;
  const $ = (id) => document.getElementById(id);
  const panel = $("ga-lead-panel");
  const title = $("ga-lead-title");
  const message = $("ga-lead-message");
  const currentBox = $("ga-lead-current");
  const candidateList = $("ga-lead-candidates");
  const resultList = $("ga-lead-results");
  const historyList = $("ga-lead-history");
  const saveButton = $("ga-lead-save");
  const undoButton = $("ga-lead-undo");
  const searchBox = $("ga-lead-search");
  const partsBox = $("ga-lead-parts-box");
  const partsList = $("ga-lead-parts");

  // level -> its L.GeoJSON layer; holders: level -> what the map and the layer control show
  // for it (the layer itself, or for a level read later the empty feature group made for it)
  const layers = {};
  const holders = {};
  for (const [level, name] of Object.entries(data.layers || {})) {
    if (window[name] instanceof L.GeoJSON) layers[level] = holders[level] = window[name];
  }
  for (const [level, name] of Object.entries(data.holders || {})) {
    if (window[name] instanceof L.LayerGroup) holders[level] = window[name];
  }

  const state = {
    level: data.default_level,
    selected: null, // the tapped area's Leaflet layer
    current: null, // its current term, as the API gives it
    chosen: null, // {resident_id, name}
    undo: null, // {level, id, assignmentId, previous}
    busy: false,
    seq: 0, // the panel shows the answers of the latest tap only
    tapped: Promise.resolve(), // the latest tap's reading: the levels wait for it
  };

  function addHatch() {
    const svg = map.getPanes().overlayPane.querySelector("svg");
    if (!svg || svg.querySelector("#ga-hatch-vacant")) return;
    const ns = "http://www.w3.org/2000/svg";
    const el = (name, attrs) => {
      const node = document.createElementNS(ns, name);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      return node;
    };
    const defs = el("defs", {});
    const pattern = el("pattern", {
      id: "ga-hatch-vacant", patternUnits: "userSpaceOnUse", width: "8", height: "8",
      patternTransform: "rotate(45)",
    });
    pattern.appendChild(el("rect", { width: "8", height: "8", fill: "#fff3e6" }));
    pattern.appendChild(el("rect", { width: "3", height: "8", fill: "#d94801" }));
    defs.appendChild(pattern);
    svg.insertBefore(defs, svg.firstChild);
    // the stripes of buildings divided by floors, one per seat state in its outline colour
    if (window.GAHatch) {
      const stripes = {};
      for (const [state, id] of Object.entries(data.floors_hatch || {})) {
        stripes[id] = data.styles[state].color;
      }
      GAHatch.addFloorsHatch(map, stripes);
    }
  }

  // a building divided by floors among groups, or a unit that is one of its parts
  function isDivided(p) {
    return (data.hatched_levels || []).includes(p.level) && Boolean(p.parts && p.parts.length);
  }

  function areaStyle(p) {
    const state = seatState(p);
    const style = Object.assign({}, data.styles[state]);
    if (isDivided(p)) Object.assign(style, { fillColor: `url(#${data.floors_hatch[state]})`, fillOpacity: 0.8 });
    return style;
  }

  // the floors per group of the divided buildings under the area (layers/leaders.py)
  function showParts(p) {
    if (!partsList || !partsBox) return; // a page kept from before the list existed
    partsList.replaceChildren();
    for (const part of p.parts || []) {
      const floors = part.floor_min === part.floor_max ? String(part.floor_min) : `${part.floor_min}–${part.floor_max}`;
      // a building's own card names its floors; an area's names the building of each
      // a part that is whole entrances (单元门), or floors behind one, names its entrances
      const kind = part.entrance ? "entrance" : "floors";
      const key = p.level === "building" ? `leaders.part_${kind}` : `leaders.part_${kind}_in`;
      partsList.appendChild(node("li", "", t(key, {
        building: part.building || "", floors: floors, group: part.group || "",
        entrance: part.entrance || "",
        unit: part.unit || "", households: part.households,
      })));
    }
    partsBox.hidden = !(p.parts && p.parts.length);
  }

  function seatState(p) {
    if (p.leader) return "filled";
    return (p.households || 0) > 0 ? "vacant" : "no_seat";
  }

  function restyle(layer) {
    const style = areaStyle(layer.feature.properties);
    if (layer === state.selected) Object.assign(style, data.selected);
    layer.setStyle(style);
    if (layer === state.selected && layer.bringToFront) layer.bringToFront();
  }

  function updateCounts() {
    for (const level of data.levels) {
      const n = { vacant: 0, filled: 0 };
      if (layers[level]) {
        layers[level].eachLayer((f) => {
          const s = seatState(f.feature.properties);
          if (s in n) n[s] += 1;
        });
      }
      const node = document.querySelector(`[data-counts="${level}"]`);
      if (node) node.textContent = t("leaders.counts", n);
      const button = document.querySelector(`.ga-level[data-level="${level}"]`);
      if (button) {
        button.disabled = !layers[level];
        button.dataset.vacant = String(n.vacant);
        button.dataset.filled = String(n.filled);
      }
    }
  }

  function pressLevel(level) {
    state.level = level;
    for (const b of document.querySelectorAll(".ga-level")) {
      b.setAttribute("aria-pressed", b.dataset.level === level ? "true" : "false");
    }
  }

  function showLevel(level) {
    if (!layers[level]) return;
    for (const [lv, holder] of Object.entries(holders)) {
      if (lv !== level && map.hasLayer(holder)) map.removeLayer(holder);
    }
    if (!map.hasLayer(holders[level])) map.addLayer(holders[level]);
    pressLevel(level);
    closePanel();
  }

  function say(text, kind) {
    message.textContent = text || "";
    message.className = kind || "";
  }

  function node(tag, className, text) {
    const n = document.createElement(tag);
    if (className) n.className = className;
    if (text != null) n.textContent = String(text);
    return n;
  }

  function day(iso) {
    return iso ? String(iso).slice(0, 10) : "";
  }

  function props() {
    return state.selected.feature.properties;
  }

  function seatUrl() {
    return `/api/leaders/${props().level}/${props().id}`;
  }

  // The seat as the API answered (Leaders): the panel, the area's colour and the counts.
  function applySeat(seat) {
    state.current = seat.current || null;
    const p = props();
    p.leader = state.current
      ? { resident_id: state.current.resident_id, name: state.current.name,
          since: state.current.started_at }
      : null;
    restyle(state.selected);
    updateCounts();
    currentBox.replaceChildren();
    if (state.current) {
      currentBox.appendChild(node("div", "ga-who", state.current.name));
      const line = [t("leaders.since", { date: day(state.current.started_at) })];
      if (state.current.assigned_by) line.push(t("leaders.assigned_by", { user: state.current.assigned_by }));
      currentBox.appendChild(node("div", "ga-where", line.join(" · ")));
      if (!state.current.lives_inside) currentBox.appendChild(node("div", "ga-lead-warn", t("leaders.not_inside")));
    } else {
      currentBox.appendChild(node("div", "ga-where", (p.households || 0) > 0 ? t("leaders.vacant") : t("leaders.no_seat")));
    }
    historyList.replaceChildren();
    const terms = seat.history || [];
    if (!terms.length) historyList.appendChild(node("li", "", t("leaders.no_history")));
    for (const term of terms) {
      const text = term.ended_at
        ? t("leaders.term", { name: term.name, start: day(term.started_at), end: day(term.ended_at) })
        : t("leaders.term_current", { name: term.name, start: day(term.started_at) });
      historyList.appendChild(node("li", "", text));
    }
    const u = state.undo;
    undoButton.hidden = !(u && u.level === p.level && u.id === p.id && state.current &&
      state.current.id === u.assignmentId);
  }

  function choose(person, button) {
    state.chosen = person;
    for (const b of panel.querySelectorAll(".ga-lead-list button")) b.setAttribute("aria-pressed", "false");
    if (button) button.setAttribute("aria-pressed", "true");
    saveButton.disabled = false;
    saveButton.textContent = t("leaders.save_as", { name: person.name });
  }

  function resetChoice() {
    state.chosen = null;
    saveButton.disabled = true;
    saveButton.textContent = t("app.save");
  }

  function personButton(person, details, badges) {
    const li = node("li");
    const b = node("button");
    b.type = "button";
    b.setAttribute("aria-pressed", "false");
    b.dataset.residentId = String(person.resident_id);
    b.appendChild(node("span", "ga-who", person.name));
    for (const [cls, text] of badges) b.appendChild(node("span", "ga-badge" + (cls ? " " + cls : ""), text));
    b.appendChild(node("span", "ga-where", details));
    b.addEventListener("click", () => choose(person, b));
    li.appendChild(b);
    return li;
  }

  function roles(list) {
    return (list || []).map((r) => t("leaders.role_" + r)).join("、");
  }

  function renderCandidates(items) {
    candidateList.replaceChildren();
    if (!items.length) candidateList.appendChild(node("li", "ga-lead-note", t("leaders.no_candidates")));
    for (const c of items) {
      const where = [t("leaders.room", { building: c.building || "", room: c.room || "" })];
      where.push(c.lives_inside ? t("leaders.lives_inside") : t("leaders.distance_m", { m: Math.round(c.distance_m) }));
      const badges = [];
      if (c.is_backbone) badges.push(["", t("leaders.backbone") + (roles(c.backbone) ? "·" + roles(c.backbone) : "")]);
      if (c.is_current) badges.push(["ga-current", t("leaders.is_current")]);
      candidateList.appendChild(personButton({ resident_id: c.resident_id, name: c.name }, where.join(" · "), badges));
    }
  }

  async function loadCandidates(seq) {
    const r = await GA.api("GET", `${seatUrl()}/candidates`);
    if (seq !== state.seq) return;
    if (!r.ok) return say(r.message, "error");
    renderCandidates(r.data.items || []);
  }

  async function refreshSeat(seq) {
    const r = await GA.api("GET", seatUrl());
    if (seq !== state.seq) return false;
    if (!r.ok) {
      say(r.message, "error");
      return false;
    }
    applySeat(r.data);
    return true;
  }

  function closePanel() {
    panel.hidden = true;
    document.body.classList.remove("ga-lead-open");
    const old = state.selected;
    state.selected = null;
    state.seq += 1;
    if (old) restyle(old);
  }

  async function openArea(layer) {
    const old = state.selected;
    state.selected = layer;
    if (old && old !== layer) restyle(old);
    restyle(layer);
    const p = layer.feature.properties;
    const seq = ++state.seq;
    title.textContent = t("leaders.area_title", { level: t("level." + p.level), code: p.code || p.name || p.id }) +
      " · " + t("leaders.households", { n: p.households || 0 });
    say(t("app.loading"));
    resetChoice();
    currentBox.replaceChildren();
    candidateList.replaceChildren();
    resultList.replaceChildren();
    historyList.replaceChildren();
    showParts(p);
    searchBox.value = "";
    undoButton.hidden = true;
    panel.hidden = false;
    document.body.classList.add("ga-lead-open");
    const reading = Promise.all([refreshSeat(seq), loadCandidates(seq)]);
    state.tapped = reading.catch(() => null);
    const [ok] = await reading;
    if (seq === state.seq && ok && message.className !== "error") say("");
  }

  async function save() {
    if (state.busy || !state.selected) return;
    if (!state.chosen) return say(t("leaders.choose_first"), "error");
    const p = props();
    const body = { resident_id: state.chosen.resident_id };
    if (state.current) body.replaces = state.current.id;
    const previous = state.current ? state.current.name : null;
    const seq = state.seq;
    state.busy = true;
    saveButton.disabled = true;
    say(t("leaders.saving"));
    try {
      const r = await GA.api("PUT", seatUrl(), body);
      if (seq !== state.seq) return;
      if (r.ok) {
        state.undo = { level: p.level, id: p.id, assignmentId: r.data.assignment_id, previous: previous };
        applySeat(r.data);
        undoButton.textContent = previous ? t("leaders.undo_as", { name: previous }) : t("leaders.undo_to_vacant");
        let text = t("leaders.saved", { name: r.data.current.name, level: t("level." + p.level), code: p.code || p.id });
        if ((r.data.warnings || []).length) text += "（" + t("leaders.not_inside") + "）";
        say(text, "ok");
        resetChoice();
        loadCandidates(seq);
      } else {
        // someone else changed the seat meanwhile: their message, then the seat as it is now
        say(r.message, "error");
        resetChoice();
        await refreshSeat(seq);
        loadCandidates(seq);
      }
    } finally {
      state.busy = false;
    }
  }

  async function undo() {
    const u = state.undo;
    if (state.busy || !state.selected || !u) return;
    const seq = state.seq;
    state.busy = true;
    say(t("leaders.saving"));
    try {
      const r = await GA.api("POST", `${seatUrl()}/undo`, { assignment_id: u.assignmentId });
      if (seq !== state.seq) return;
      state.undo = null;
      if (r.ok) {
        applySeat(r.data);
        say(r.data.restored ? t("leaders.undone_restored", { name: r.data.current.name }) : t("leaders.undone_vacant"), "ok");
      } else {
        say(r.message, "error");
        await refreshSeat(seq);
      }
      loadCandidates(seq);
    } finally {
      state.busy = false;
    }
  }

  let searchTimer = null;
  async function search() {
    const q = searchBox.value.trim();
    const seq = state.seq;
    resultList.replaceChildren();
    if (!q || !state.selected) return;
    resultList.appendChild(node("li", "ga-lead-note", t("leaders.searching")));
    const url = `/api/residents?level=community&area_id=${encodeURIComponent(data.community.id)}` +
      `&name=${encodeURIComponent(q)}&limit=20`;
    const r = await GA.api("GET", url);
    if (seq !== state.seq || q !== searchBox.value.trim()) return;
    resultList.replaceChildren();
    if (!r.ok) return say(r.message, "error");
    const items = r.data.items || [];
    if (!items.length) resultList.appendChild(node("li", "ga-lead-note", t("app.no_results")));
    for (const person of items) {
      const badges = [];
      const backbone = (person.categories && person.categories.backbone) || [];
      if (backbone.length) badges.push(["", t("leaders.backbone") + "·" + roles(backbone)]);
      const where = t("leaders.room", { building: person.building || person.address || "", room: person.room || "" });
      resultList.appendChild(personButton({ resident_id: person.id, name: person.name }, where, badges));
    }
  }

  function listen(level, layer) {
    layer.eachLayer((f) => {
      f.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        if (state.level === level) openArea(f);
      });
    });
  }

  // --- the levels read after the first drawing ------------------------------------------
  const PAGE_SIZE = 2000; // the API's largest page
  const MAX_AREAS = 5000; // as the server's page: a community has a few hundred per level

  function levelUrl(level, offset) {
    return `/api/areas/${data.plurals[level]}?community_id=${encodeURIComponent(data.community.id)}` +
      `&limit=${PAGE_SIZE}` + (offset ? `&offset=${offset}` : "");
  }

  // One level's areas, every page of them; kept: some page came from the tablet's cache
  // (sw.js stamps those), not from the server.
  async function readLevel(level) {
    const features = [];
    let kept = false;
    for (let offset = 0; offset < MAX_AREAS; offset += PAGE_SIZE) {
      const r = await fetch(levelUrl(level, offset), { credentials: "same-origin" });
      if (!r.ok) throw new Error(String(r.status));
      if (r.headers.get("X-GA-Kept-At")) kept = true;
      const page = await r.json();
      features.push(...(page.features || []));
      if (features.length >= (page.numberMatched || 0) || !(page.features || []).length) break;
    }
    return { collection: { type: "FeatureCollection", features: features }, kept: kept };
  }

  function makeLayer(level, collection) {
    const layer = L.geoJSON(collection, {
      style: (f) => areaStyle(f.properties),
    });
    listen(level, layer);
    return layer;
  }

  // A level's areas as read: into its holder (a level read later), or over the areas drawn
  // (the same areas: their leaders and households, recoloured in place; else drawn anew).
  function applyLevel(level, collection) {
    const old = layers[level];
    if (old) {
      const byId = new Map(collection.features.map((f) => [f.properties.id, f]));
      const drawn = old.getLayers();
      if (drawn.length === byId.size && drawn.every((f) => byId.has(f.feature.properties.id))) {
        for (const f of drawn) {
          Object.assign(f.feature.properties, byId.get(f.feature.properties.id).properties);
          restyle(f);
        }
        return;
      }
      if (state.selected && old.hasLayer(state.selected)) closePanel();
      old.clearLayers();
      old.addData(collection);
      listen(level, old);
      old.eachLayer(restyle);
      return;
    }
    if (!collection.features.length || !holders[level]) return;
    layers[level] = makeLayer(level, collection);
    holders[level].addLayer(layers[level]);
  }

  // The walk network for orientation, under the areas (a pane of its own, drawn on a canvas:
  // one element, nothing to tap); kept: it came from the tablet's cache.
  function streetsUrl() {
    const s = data.streets;
    return `/api/layers/walk_edges?bbox=${encodeURIComponent(s.bbox)}&limit=${s.limit}`;
  }

  async function readStreets() {
    const s = data.streets;
    const holder = s && window[s.holder];
    if (!(holder instanceof L.LayerGroup)) return { kept: false };
    const r = await fetch(streetsUrl(), { credentials: "same-origin" });
    if (!r.ok) throw new Error(String(r.status));
    const kept = Boolean(r.headers.get("X-GA-Kept-At"));
    const collection = await r.json();
    if (!map.getPane("ga-streets")) map.createPane("ga-streets").style.zIndex = "350";
    const style = (f) =>
      Object.assign({}, s.style, { weight: s.weights[f.properties.highway] || s.style.weight });
    holder.clearLayers();
    holder.addLayer(
      L.geoJSON(collection, {
        pane: "ga-streets",
        renderer: L.canvas({ pane: "ga-streets" }),
        interactive: false,
        style: style,
      })
    );
    return { kept: kept };
  }

  async function readLevels() {
    // a kept copy's own level is read again first: it is what the page shows
    const own = GA.offline && GA.offline.fromCache ? Object.keys(data.layers || {}) : [];
    const order = own.concat(data.later || []);
    let fresh = true;
    let failed = false;
    await state.tapped; // what the user tapped is read first
    try {
      if ((await readStreets()).kept) fresh = false;
    } catch (err) {
      fresh = false; // no streets: a map still usable, no message for it
    }
    for (const level of order) {
      await state.tapped; // what the user tapped is read first
      try {
        const { collection, kept } = await readLevel(level);
        if (kept) fresh = false;
        applyLevel(level, collection);
      } catch (err) {
        failed = true;
        fresh = false;
      }
      updateCounts();
    }
    if (failed) GA.notice(t("leaders.level_unavailable"), "error");
    const offline = GA.offline || {};
    if (fresh && offline.fromCache && offline.markFresh) offline.markFresh();
    // the kept copy this page came from, read again for the next visit
    if (offline.fromCache && offline.refreshPage) offline.refreshPage();
    document.body.dataset.leadersLevels = failed ? "partial" : "all";
    document.body.dataset.leadersFresh = String(fresh);
    // for the next visit without network: the same answers, kept by the worker
    if (offline.keep) {
      const urls = [data.default_level].concat(data.later || []).map((lv) => levelUrl(lv, 0));
      if (data.streets) urls.push(streetsUrl());
      offline.keep(() => urls.map((u) => () => fetch(u, { credentials: "same-origin" })), "leaders");
    }
  }

  for (const [level, layer] of Object.entries(layers)) listen(level, layer);
  for (const b of document.querySelectorAll(".ga-level")) {
    b.addEventListener("click", () => showLevel(b.dataset.level));
  }
  map.on("baselayerchange", (e) => {
    const level = Object.keys(holders).find((lv) => holders[lv] === e.layer);
    if (level) {
      pressLevel(level);
      closePanel();
    }
  });
  $("ga-lead-close").addEventListener("click", closePanel);
  saveButton.addEventListener("click", save);
  undoButton.addEventListener("click", undo);
  searchBox.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, 300);
  });

  addHatch();
  for (const layer of Object.values(layers)) layer.eachLayer(restyle);
  if (!layers[state.level]) {
    const first = data.levels.find((lv) => layers[lv]);
    if (first) showLevel(first);
  }
  updateCounts();
  document.body.dataset.leadersReady = "true";
  // after the first frame with the page's own level, once the page is idle (a tap in the
  // first moments is answered first): the streets and the other levels
  const later = () =>
    window.requestIdleCallback ? requestIdleCallback(readLevels, { timeout: 500 }) : setTimeout(readLevels, 0);
  requestAnimationFrame(() => setTimeout(later, 0));
})();

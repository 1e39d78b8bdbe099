// The leaders page: switch the level, tap an area, see its leader and the ones before,
// choose a candidate (backbone residents of the area first, then the nearest) or search the
// community's residents, save; undo puts the previous leader back. The map is recoloured in
// place. Every text comes from the catalogue (GA.t); refusals show the server's message.
(function () {
  "use strict";
  const map = Object.values(window).find((v) => v instanceof L.Map);
  const dataNode = document.getElementById("ga-leaders-data");
  if (!map || !dataNode || !window.GA) return;
  const data = JSON.parse(dataNode.textContent || "{}");
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

  // level -> its L.GeoJSON layer (found by the level its features carry)
  const layers = {};
  for (const v of Object.values(window)) {
    if (!(v instanceof L.GeoJSON)) continue;
    let level = null;
    v.eachLayer((f) => {
      if (!level && f.feature && f.feature.properties) level = f.feature.properties.level;
    });
    if (level && data.levels.includes(level)) layers[level] = v;
  }

  const state = {
    level: data.default_level,
    selected: null, // the tapped area's Leaflet layer
    current: null, // its current term, as the API gives it
    chosen: null, // {resident_id, name}
    undo: null, // {level, id, assignmentId, previous}
    busy: false,
    seq: 0, // the panel shows the answers of the latest tap only
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
  }

  function seatState(p) {
    if (p.leader) return "filled";
    return (p.households || 0) > 0 ? "vacant" : "no_seat";
  }

  function restyle(layer) {
    const style = Object.assign({}, data.styles[seatState(layer.feature.properties)]);
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
    for (const [lv, layer] of Object.entries(layers)) {
      if (lv !== level && map.hasLayer(layer)) map.removeLayer(layer);
    }
    if (!map.hasLayer(layers[level])) map.addLayer(layers[level]);
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
    searchBox.value = "";
    undoButton.hidden = true;
    panel.hidden = false;
    document.body.classList.add("ga-lead-open");
    const [ok] = await Promise.all([refreshSeat(seq), loadCandidates(seq)]);
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

  for (const [level, layer] of Object.entries(layers)) {
    layer.eachLayer((f) => {
      f.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        if (state.level === level) openArea(f);
      });
    });
  }
  for (const b of document.querySelectorAll(".ga-level")) {
    b.addEventListener("click", () => showLevel(b.dataset.level));
  }
  map.on("baselayerchange", (e) => {
    const level = Object.keys(layers).find((lv) => layers[lv] === e.layer);
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
})();

// 我的网格: tap a building for its one card (households, where it belongs and who leads it,
// its dwellings by floor, the residents the user may see — masked by the API), and search
// in one breath (一口清). Every text comes from the catalogue (GA.t); every value from the
// server goes in with textContent, never as markup.
(function () {
  "use strict";
  const map = Object.values(window).find((v) => v instanceof L.Map);
  if (!map || !window.GA) return;
  const t = GA.t;
  const card = document.getElementById("ga-card");
  const results = document.getElementById("gd-results");
  const form = document.getElementById("gd-search");
  const input = document.getElementById("gd-q");
  const SEARCH_COLOUR = "#d6336c";
  const LEADER_LEVELS = new Set(["building", "unit", "building_cluster", "residents_group"]);
  const BADGE_KINDS = ["special_groups", "key_persons", "backbone"];
  const buildings = new Map(); // building id -> its layer on the map
  const grids = new Map(); // grid id -> its layer
  let selected = null; // {layer, style}
  let cardRequest = 0;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function closeButton() {
    const b = el("button", "gd-close", "×");
    b.type = "button";
    b.id = "gd-card-close";
    b.setAttribute("aria-label", t("grid.card_close"));
    b.addEventListener("click", closeCard);
    return b;
  }

  function deselect() {
    if (selected) selected.layer.setStyle(selected.style);
    selected = null;
  }

  function closeCard() {
    cardRequest++;
    deselect();
    card.hidden = true;
    card.replaceChildren();
  }

  function select(id) {
    deselect();
    const layer = buildings.get(id);
    if (!layer) return;
    selected = { layer: layer, style: { color: layer.options.color, weight: layer.options.weight } };
    layer.setStyle({ color: SEARCH_COLOUR, weight: 4 });
    layer.bringToFront();
  }

  function showCard(children) {
    card.replaceChildren(...children);
    card.hidden = false;
    card.scrollIntoView({ block: "nearest" });
  }

  // --- the building card ------------------------------------------------------------

  function areaLine(area, leader) {
    const row = el("li", "gd-area");
    row.dataset.level = area.level;
    row.append(el("span", "gd-level", t("level." + area.level)));
    const name = area.name && area.name !== area.code ? area.name + " (" + area.code + ")" : area.code;
    row.append(el("span", "gd-code", name));
    if (area.households !== null && area.households !== undefined) {
      row.append(el("span", "gd-hh", t("grid.households", { n: area.households })));
    }
    if (LEADER_LEVELS.has(area.level)) {
      const who = leader && leader.current ? leader.current.name : null;
      row.append(
        el("span", "gd-leader", who ? t("grid.card_leader", { name: who }) : t("grid.card_no_leader"))
      );
    }
    return row;
  }

  function badges(categories) {
    const box = el("span", "gd-badges");
    for (const kind of BADGE_KINDS) {
      for (const code of (categories && categories[kind]) || []) {
        const label = t("grid.badge_" + kind) + "·" + t("grid.category." + code);
        const b = el("span", "gd-badge gd-badge-" + kind, label);
        b.dataset.kind = kind;
        box.append(b);
      }
    }
    return box;
  }

  function dwellingsSection(collection, byRoom, focusRoom) {
    const section = el("section", "gd-dwellings");
    section.append(el("h3", null, t("grid.card_dwellings")));
    const features = (collection && collection.features) || [];
    if (!features.length) {
      section.append(el("p", "gd-muted", t("grid.card_no_dwellings")));
      return section;
    }
    const floors = new Map();
    let estimated = false;
    for (const f of features) {
      const p = f.properties;
      estimated = estimated || p.is_estimated;
      const key = p.floor === null || p.floor === undefined ? "" : String(p.floor);
      if (!floors.has(key)) floors.set(key, []);
      floors.get(key).push(p);
    }
    const list = el("dl", "gd-floors");
    for (const [floor, rooms] of floors) {
      list.append(el("dt", null, floor === "" ? t("grid.floor_unknown") : t("grid.floor", { n: floor })));
      const dd = el("dd");
      for (const p of rooms) {
        const n = (byRoom.get(p.room) || []).length;
        const chip = el("span", "gd-room", n ? t("grid.room_people", { room: p.room, n: n }) : p.room);
        chip.dataset.room = p.room;
        if (focusRoom && p.room === focusRoom) chip.classList.add("gd-focus");
        dd.append(chip);
      }
      list.append(dd);
    }
    section.append(list);
    if (estimated) section.append(el("p", "gd-muted", t("grid.card_estimated")));
    return section;
  }

  function residentsSection(page, byRoom, focus) {
    const section = el("section", "gd-residents");
    const total = page ? page.total : 0;
    section.append(el("h3", null, t("grid.card_residents", { n: total })));
    if (!page || !page.items.length) {
      section.append(el("p", "gd-muted", t("grid.card_no_residents")));
      return section;
    }
    for (const [room, people] of byRoom) {
      const group = el("div", "gd-household");
      group.dataset.room = room;
      group.append(el("h4", null, t("grid.room", { room: room })));
      const list = el("ul", "gd-people");
      for (const r of people) {
        const li = el("li", "gd-person");
        li.dataset.residentId = String(r.id);
        if ((focus.residentId && r.id === focus.residentId) || (focus.room && room === focus.room)) {
          li.classList.add("gd-focus");
        }
        li.append(el("b", "gd-name", r.name));
        const facts = [r.gender, r.birth_year ? t("grid.born", { year: r.birth_year }) : null];
        li.append(el("span", "gd-facts", facts.filter(Boolean).join(" · ")));
        if (r.id_number) li.append(el("span", "gd-id", t("grid.id_number") + " " + r.id_number));
        if (r.phone) li.append(el("span", "gd-phone", t("grid.phone") + " " + r.phone));
        li.append(badges(r.categories));
        list.append(li);
      }
      group.append(list);
      section.append(group);
    }
    if (page.items.length < total) {
      section.append(
        el("p", "gd-muted", t("grid.card_more_residents", { shown: page.items.length, total: total }))
      );
    }
    return section;
  }

  async function leadersOf(path) {
    const asks = path
      .filter((a) => LEADER_LEVELS.has(a.level))
      .map((a) => GA.api("GET", "/api/leaders/" + a.level + "/" + a.id).then((r) => [a.level, r]));
    const out = new Map();
    for (const [level, r] of await Promise.all(asks)) if (r.ok) out.set(level, r.data);
    return out;
  }

  // --- offline (web/static/app/offline.js, sw.js): begin ---------------------------------
  // A card's answers; after the page loads online every building of the grid is read once
  // (a few at a time, audited by the API as any read), so that the service worker keeps
  // them and a card opens on a reload without network. Only the buildings drawn here: the
  // user's own.
  function cardAnswers(id) {
    return Promise.all([
      GA.api("GET", "/api/buildings/" + id + "/path"),
      GA.api("GET", "/api/buildings/" + id + "/dwellings"),
      GA.api("GET", "/api/residents?level=building&area_id=" + id + "&limit=500"),
    ]);
  }
  async function keepCard(id) {
    const [path] = await cardAnswers(id);
    if (path.ok) await leadersOf(path.data);
  }
  if (GA.offline) GA.offline.keep(() => Array.from(buildings.keys(), (id) => () => keepCard(id)));
  // --- offline: end -----------------------------------------------------------------------

  async function openBuilding(id, focus) {
    const seq = ++cardRequest;
    focus = focus || {};
    select(id);
    showCard([closeButton(), el("p", "gd-muted", t("grid.card_loading"))]);
    card.dataset.buildingId = String(id);
    const [path, dwellings, people] = await cardAnswers(id);
    if (seq !== cardRequest) return; // another building was tapped meanwhile
    if (!path.ok) {
      closeCard();
      GA.notice(path.message, "error");
      return;
    }
    const leaders = await leadersOf(path.data);
    if (seq !== cardRequest) return;
    const building = path.data.find((a) => a.level === "building") || { code: String(id) };
    const page = people.ok ? people.data : null;
    if (!people.ok && people.status !== 403) GA.notice(people.message, "error");
    const byRoom = new Map();
    for (const r of (page && page.items) || []) {
      if (!byRoom.has(r.room)) byRoom.set(r.room, []);
      byRoom.get(r.room).push(r);
    }
    const head = el("div", "gd-card-head");
    const layer = buildings.get(id);
    const label = (layer && layer.feature.properties.label) || building.name || building.code;
    head.append(el("h2", null, label), closeButton());
    const hh = el("p", "gd-card-hh", t("grid.households", { n: building.households || 0 }));
    const areas = el("ul", "gd-path");
    for (const area of path.data) areas.append(areaLine(area, leaders.get(area.level)));
    showCard([
      head,
      hh,
      el("h3", null, t("grid.card_path")),
      areas,
      dwellingsSection(dwellings.ok ? dwellings.data : null, byRoom, focus.room),
      residentsSection(page, byRoom, focus),
    ]);
    if (!dwellings.ok) GA.notice(dwellings.message, "error");
    const target = card.querySelector(".gd-person.gd-focus");
    if (target) target.scrollIntoView({ block: "nearest" });
  }

  function showFacility(p) {
    cardRequest++;
    deselect();
    const head = el("div", "gd-card-head");
    head.append(el("h2", null, p.name || t("grid.card_facility")), closeButton());
    showCard([head, el("p", "gd-facility", p.facility || t("grid.card_facility"))]);
    delete card.dataset.buildingId;
  }

  map.eachLayer((layer) => {
    if (!layer.feature || !layer.feature.properties) return;
    const p = layer.feature.properties;
    if ("building_id" in p) {
      buildings.set(p.building_id, layer);
      layer.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        openBuilding(p.building_id);
      });
    } else if ("facility" in p) {
      layer.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        showFacility(p);
      });
    } else if ("code" in p && "id" in p) {
      grids.set(p.id, layer);
    }
  });

  // --- search (一口清) ------------------------------------------------------------------

  const hitsLayer = L.featureGroup().addTo(map);
  const control = Object.values(window).find((v) => v instanceof L.Control.Layers);
  if (control) control.addOverlay(hitsLayer, t("grid.layer_results"));

  function positionOf(hit) {
    if (typeof hit.lat === "number" && typeof hit.lon === "number") return L.latLng(hit.lat, hit.lon);
    const layer = hit.building_id ? buildings.get(hit.building_id) : null;
    return layer ? layer.getBounds().getCenter() : null;
  }

  function flyTo(latlng) {
    map.flyTo(latlng, Math.max(map.getZoom(), 18), { duration: 0.5 });
  }

  function choose(hit) {
    for (const b of results.querySelectorAll(".gd-hit")) {
      b.classList.toggle("gd-chosen", b.dataset.key === hit.kind + ":" + hit.id);
    }
    const at = positionOf(hit);
    if (hit.kind === "grid" && grids.has(hit.id)) {
      map.flyToBounds(grids.get(hit.id).getBounds(), { duration: 0.5 });
    } else if (at) {
      flyTo(at);
    }
    if (hit.kind === "building") openBuilding(hit.id);
    else if (hit.kind === "resident") openBuilding(hit.building_id, { room: hit.room, residentId: hit.id });
    else if (hit.kind === "facility") showFacility({ name: hit.label, facility: t("grid.kind_facility") });
  }

  function hitButton(hit) {
    const b = el("button", "gd-hit");
    b.type = "button";
    b.dataset.key = hit.kind + ":" + hit.id;
    b.dataset.kind = hit.kind;
    b.append(el("span", "gd-kind", t("grid.kind_" + hit.kind)), el("span", "gd-label", hit.label));
    let extra = "";
    if (hit.kind === "resident" && hit.room) extra = t("grid.room", { room: hit.room });
    else if (typeof hit.households === "number") extra = t("grid.households", { n: hit.households });
    if (extra) b.append(el("span", "gd-extra", extra));
    b.addEventListener("click", () => choose(hit));
    return b;
  }

  function showResults(data) {
    hitsLayer.clearLayers();
    const hits = data.results || [];
    const children = [];
    if (data.fallback) children.push(el("p", "gd-muted", t("grid.fallback", { key: data.fallback })));
    children.push(el("p", "gd-count", hits.length ? t("grid.results", { n: hits.length }) : t("grid.no_results")));
    const list = el("div", "gd-hits");
    for (const hit of hits) {
      list.append(hitButton(hit));
      const at = positionOf(hit);
      if (!at) continue;
      L.circleMarker(at, {
        radius: 10,
        color: "#ffffff",
        weight: 2,
        fillColor: SEARCH_COLOUR,
        fillOpacity: 0.95,
      })
        .on("click", (e) => {
          L.DomEvent.stopPropagation(e);
          choose(hit);
        })
        .addTo(hitsLayer);
    }
    children.push(list);
    results.replaceChildren(...children);
    if (hits.length === 1) choose(hits[0]);
    else if (hitsLayer.getLayers().length) map.flyToBounds(hitsLayer.getBounds(), { maxZoom: 18, duration: 0.5 });
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    input.blur(); // close the on-screen keyboard
    results.replaceChildren(el("p", "gd-muted", t("grid.searching")));
    const r = await GA.api("GET", "/api/search?q=" + encodeURIComponent(q));
    if (!r.ok) {
      results.replaceChildren();
      GA.notice(r.message, "error");
      return;
    }
    showResults(r.data);
  });
})();

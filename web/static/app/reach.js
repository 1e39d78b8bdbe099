// The planners' reach page: coverage of the chosen category in the user's areas (per
// community and grid, table and chart), the gap list, and the map's taps — a building or a
// facility opens its card (a facility also draws its isochrone), an empty spot places a
// hypothetical facility (POST /api/reach/what-if); siting suggestions on request.
// One card at a time; every text from the catalogue (GA.t); every figure from the API.
(function () {
  "use strict";
  const root = document.getElementById("ga-reach");
  if (!root || !window.GA) return;
  const d = root.dataset;
  const map = window[d.map];
  if (!map) return;
  const layer = (name) => (d[name] ? window[d[name]] : null);
  const isoLayer = layer("isochrone");
  const whatIfLayer = layer("whatif");
  const sitesLayer = layer("sites");
  const buildingsLayer = layer("buildings");
  const facilitiesLayer = layer("facilities");
  const state = {
    category: d.category,
    label: d.categoryLabel,
    speed: Number(d.speedMPerMin),
    limit: Number(d.limitMin),
    area: d.areaLabel || "",
    seq: 0,
  };
  const t = GA.t;
  const fmt = (n) => Number(n || 0).toLocaleString(GA.lang === "en" ? "en" : "zh-CN");
  const pct = (share) => (share == null ? "—" : (share * 100).toFixed(1) + "%");
  const $ = (id) => document.getElementById(id);
  const card = $("ga-reach-card");
  const cardBody = $("ga-reach-card-body");
  const placeButton = $("ga-reach-place");
  let placeAt = null;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text != null) node.textContent = String(text);
    return node;
  }

  // ---- the one card ---------------------------------------------------------------
  function openCard(lines, options) {
    const opts = options || {};
    state.seq += 1;
    cardBody.replaceChildren();
    for (const [text, cls] of lines) cardBody.appendChild(el("div", cls ? { class: cls } : {}, text));
    placeAt = opts.placeAt || null;
    placeButton.hidden = !placeAt;
    card.hidden = false;
    card.dataset.kind = opts.kind || "";
    return state.seq;
  }
  function closeCard() {
    state.seq += 1;
    card.hidden = true;
    card.dataset.kind = "";
  }
  $("ga-reach-close").addEventListener("click", closeCard);
  placeButton.addEventListener("click", () => placeAt && whatIf(placeAt));

  // ---- choices: category and speed (the URL keeps them, for bookmarks) --------------
  function go(params) {
    const url = new URL(window.location.href);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    window.location.assign(url.pathname + url.search);
  }
  $("ga-reach-category").addEventListener("change", (e) => go({ category: e.target.value }));
  for (const button of document.querySelectorAll(".ga-speed")) {
    button.addEventListener("click", () => {
      if (button.getAttribute("aria-pressed") !== "true") go({ speed: button.dataset.speed });
    });
  }

  const figures = () =>
    `category=${encodeURIComponent(state.category)}&limit_min=${state.limit}` +
    `&speed_m_per_min=${state.speed}`;

  // ---- coverage: table and chart -------------------------------------------------------
  function table(node, caption, rows) {
    node.replaceChildren();
    const head = el("tr");
    for (const k of ["reach.households", "reach.covered", "reach.share"]) head.appendChild(el("th", {}, t(k)));
    head.insertBefore(el("th", {}, caption), head.firstChild);
    node.appendChild(el("thead")).appendChild(head);
    const body = node.appendChild(el("tbody"));
    for (const r of rows) {
      const tr = el("tr", { "data-id": r.id, "data-code": r.code || "" });
      tr.appendChild(el("td", {}, r.name || r.code || r.id));
      tr.appendChild(el("td", { class: "n" }, fmt(r.households)));
      tr.appendChild(el("td", { class: "covered" }, fmt(r.households_covered)));
      tr.appendChild(el("td", { class: "share" }, pct(r.share)));
      body.appendChild(tr);
    }
    if (!rows.length) body.appendChild(el("tr")).appendChild(el("td", { colspan: 4 }, t("reach.no_areas")));
  }

  function chart(node, rows) {
    // a bar per area: the covered share of its households, drawn in SVG of our own
    const NS = "http://www.w3.org/2000/svg";
    const rowH = 22;
    const labelW = 110;
    const width = Math.max(260, Math.min(node.clientWidth || 330, 480));
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${rowH * rows.length + 4}`);
    svg.setAttribute("width", width);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", t("reach.chart"));
    const make = (tag, attrs, text) => {
      const n = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      if (text != null) n.textContent = text;
      return svg.appendChild(n);
    };
    const barW = width - labelW - 50;
    rows.forEach((r, i) => {
      const y = i * rowH + 2;
      const share = r.share || 0;
      const name = String(r.name || r.code || r.id);
      const short = name.length > 12 ? name.slice(0, 11) + "…" : name;
      make("text", { x: 0, y: y + 15 }, (r.prefix || "") + short).appendChild(
        document.createElementNS(NS, "title"),
      ).textContent = name;
      make("rect", { class: "rest", x: labelW, y: y + 3, width: barW, height: 14, rx: 2 });
      make("rect", { class: "bar", x: labelW, y: y + 3, width: Math.round(barW * share), height: 14, rx: 2,
                     "data-share": share });
      make("text", { x: labelW + barW + 4, y: y + 15 }, pct(r.share));
    });
    node.replaceChildren(svg);
  }

  async function loadCoverage() {
    const r = await GA.api("GET", `/api/reach/scoped/coverage?${figures()}`);
    if (!r.ok) return GA.notice(r.message, "error");
    const c = r.data;
    const share = c.households ? c.households_covered / c.households : null;
    const summary = t("reach.summary", {
      limit: state.limit, covered: fmt(c.households_covered), households: fmt(c.households),
      share: pct(share),
    });
    $("ga-stats").textContent = summary;
    $("ga-stats").dataset.covered = c.households_covered;
    $("ga-stats").dataset.households = c.households;
    table($("ga-reach-communities"), t("reach.community"), c.community);
    table($("ga-reach-grids"), t("reach.grid"), c.grid);
    chart($("ga-reach-chart"), [
      ...c.community.map((x) => ({ ...x, prefix: "" })),
      ...c.grid.map((x) => ({ ...x, prefix: "· " })),
    ]);
  }

  // ---- the gaps ----------------------------------------------------------------------
  const SHOWN = 200;
  async function loadGaps() {
    $("ga-reach-gaps-title").textContent = t("reach.gaps", { limit: state.limit });
    const r = await GA.api("GET", `/api/reach/scoped/gaps?${figures()}&limit=${SHOWN}`);
    if (!r.ok) return GA.notice(r.message, "error");
    const list = $("ga-reach-gaps");
    list.replaceChildren();
    const g = r.data;
    const total = $("ga-reach-gaps-total");
    total.textContent = g.numberMatched
      ? t("reach.gaps_total", { households: fmt(g.households_in_gaps), buildings: fmt(g.numberMatched) }) +
        (g.numberMatched > g.features.length ? " · " + t("reach.gaps_more", { shown: g.features.length }) : "")
      : t("reach.no_gaps");
    total.dataset.households = g.households_in_gaps;
    for (const f of g.features) {
      const p = f.properties;
      const b = el("button", { type: "button", "data-building": f.id });
      b.appendChild(el("span", {}, p.name || t("reach.unnamed", { id: f.id })));
      b.appendChild(el("span", {}, `${fmt(p.households)} ${t("reach.households")} · ${walkText(p)}`));
      b.addEventListener("click", () => {
        const [lon, lat] = f.geometry.coordinates;
        map.setView([lat, lon], Math.max(map.getZoom(), 18));
        const found = buildingById(f.id);
        if (found) buildingCard(found.feature.properties, L.latLng(lat, lon));
      });
      list.appendChild(el("li")).appendChild(b);
    }
  }

  function walkText(p) {
    if (p.status === "unreachable") return t("reach.unreachable");
    if (p.walk_m == null) return t("reach.beyond_cap");
    return t("reach.walk_min", { min: (p.walk_m / state.speed).toFixed(1) });
  }

  function buildingById(id) {
    let found = null;
    if (buildingsLayer) buildingsLayer.eachLayer((l) => { if (l.feature.properties.id === id) found = l; });
    return found;
  }

  // ---- taps --------------------------------------------------------------------------
  function buildingCard(p, latlng) {
    let walk;
    if (p.band === "none") walk = t("reach.no_households");
    else if (p.band === "unreachable") walk = t("reach.unreachable");
    else if (p.walk_min == null) walk = t("reach.beyond_cap");
    else walk = t("reach.walk_min", { min: p.walk_min });
    openCard(
      [
        [p.name || t("reach.unnamed", { id: p.id }), "ga-title"],
        [`${fmt(p.households)} ${t("reach.households")} · ${state.label}: ${walk}`],
      ],
      { kind: "building", placeAt: latlng },
    );
  }

  async function facilityCard(p) {
    const seq = openCard([[p.name || t("reach.facility"), "ga-title"], [t("reach.busy")]], { kind: "facility" });
    const url = `/api/reach/isochrones/${p.facility_id}?limit_min=${state.limit}&speed_m_per_min=${state.speed}`;
    const r = await GA.api("GET", url);
    if (seq !== state.seq) return; // another tap since
    if (!r.ok) {
      closeCard();
      return GA.notice(r.message, "error");
    }
    isoLayer.clearLayers();
    if (r.data.geometry) {
      L.geoJSON(r.data, {
        interactive: false,
        style: { color: "#08519c", weight: 2, fillColor: "#6baed6", fillOpacity: 0.2 },
      }).addTo(isoLayer);
    }
    if (!map.hasLayer(isoLayer)) isoLayer.addTo(map);
    const area = L.geoJSON(r.data);
    if (r.data.geometry && area.getBounds().isValid()) map.fitBounds(area.getBounds().pad(0.05));
    openCard([[p.name || t("reach.facility"), "ga-title"], [t("reach.isochrone", { limit: state.limit })]],
             { kind: "facility" });
    card.dataset.facility = p.facility_id;
  }

  function marker(latlng, cls, html) {
    const icon = L.divIcon({ className: cls, html: html, iconSize: [44, 44], iconAnchor: [22, 22] });
    return L.marker(latlng, { icon: icon, keyboard: false });
  }

  async function whatIf(latlng) {
    const lat = Number(latlng.lat.toFixed(7));
    const lon = Number(latlng.lng.toFixed(7));
    whatIfLayer.clearLayers();
    marker([lat, lon], "ga-whatif", "<span></span>").addTo(whatIfLayer);
    if (!map.hasLayer(whatIfLayer)) whatIfLayer.addTo(map);
    const title = t("reach.whatif_title", { category: state.label });
    const seq = openCard([[title, "ga-title"], [t("reach.busy")]], { kind: "whatif" });
    card.dataset.state = "busy";
    const r = await GA.api("POST", "/api/reach/what-if", {
      lon: lon, lat: lat, category: state.category, limit_min: state.limit, speed_m_per_min: state.speed,
    });
    if (seq !== state.seq) return;
    if (!r.ok) {
      closeCard();
      return GA.notice(r.message, "error");
    }
    const w = r.data;
    openCard(
      [
        [title, "ga-title"],
        [t("reach.whatif_gain", { households: fmt(w.households_gained), buildings: fmt(w.buildings_gained) }), "ga-gain"],
        [t("reach.whatif_after", {
          area: state.area, before: fmt(w.households_covered_before), after: fmt(w.households_covered_after),
        }), "ga-area-figures"],
      ],
      { kind: "whatif" },
    );
    // what the API counted (its "area": "scope" or "city") goes with the figure
    Object.assign(card.dataset, {
      state: "done", lat: lat, lon: lon, gained: w.households_gained, area: w.area,
      inArea: w.households_in_area,
    });
  }

  map.on("click", (e) => whatIf(e.latlng));
  if (buildingsLayer) {
    buildingsLayer.eachLayer((l) =>
      l.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        buildingCard(l.feature.properties, e.latlng);
      }),
    );
  }
  if (facilitiesLayer) {
    facilitiesLayer.eachLayer((l) =>
      l.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        facilityCard(l.feature.properties);
      }),
    );
  }

  // ---- siting suggestions ------------------------------------------------------------------
  const sitingButton = $("ga-reach-siting");
  sitingButton.addEventListener("click", async () => {
    sitingButton.disabled = true;
    const list = $("ga-reach-sites");
    list.replaceChildren(el("li", {}, t("reach.busy")));
    const r = await GA.api("POST", "/api/reach/siting", {
      category: state.category, k: 3, limit_min: state.limit, speed_m_per_min: state.speed,
    });
    sitingButton.disabled = false;
    list.replaceChildren();
    if (!r.ok) return GA.notice(r.message, "error");
    sitesLayer.clearLayers();
    if (!map.hasLayer(sitesLayer)) sitesLayer.addTo(map);
    const sites = r.data.sites || [];
    if (!sites.length) list.appendChild(el("li", {}, t("reach.siting_none")));
    sites.forEach((s, i) => {
      const gain = t("reach.site_gain", { households: fmt(s.households_gained), total: fmt(s.households_gained_total) });
      const item = el("li", { "data-gained": s.households_gained }, `${t("reach.site", { n: i + 1 })}: ${gain}`);
      list.appendChild(item);
      const m = marker([s.lat, s.lon], "ga-site", `<span>${i + 1}</span>`).addTo(sitesLayer);
      m.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        openCard([[t("reach.site", { n: i + 1 }), "ga-title"], [gain, "ga-gain"]], {
          kind: "site", placeAt: L.latLng(s.lat, s.lon),
        });
      });
    });
    if (sites.length) {
      const bounds = L.latLngBounds(sites.map((s) => [s.lat, s.lon]));
      if (!map.getBounds().contains(bounds)) map.fitBounds(bounds.pad(0.3));
    }
  });

  loadCoverage();
  loadGaps();
})();

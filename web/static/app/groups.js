// Residents' groups map: tap a building for its card (it is outlined), then move it, its
// whole unit or its whole cluster by tapping a building of the unit / cluster / group it
// should join. The server checks every move and says why it refuses one (its message, in
// the user's language); nothing changes then. Requests go through GA.api (shell.js).
(function () {
  "use strict";
  const map = Object.values(window).find((v) => v instanceof L.Map);
  if (!map) return;
  const panel = document.getElementById("ga-panel");
  const card = document.getElementById("ga-card");
  const message = document.getElementById("ga-message");
  const lockButton = document.getElementById("ga-lock");
  const state = { selected: null, layer: null, mode: null, busy: false };
  const groups = new Map();
  // the page's texts in the user's language (gis/messages/groups.toml), given by the server
  const textNode = document.getElementById("ga-groups-texts");
  const texts = textNode ? JSON.parse(textNode.textContent || "{}") : {};
  const SELECTED = { color: "#000000", weight: 4 };
  // the stripes of buildings divided by floors (layers/groups.py names the pattern and its
  // colour on the legend's swatch; groups-hatch.js draws it)
  const swatch = document.querySelector(".ga-floors-swatch");
  if (swatch && window.GAHatch) {
    GAHatch.addFloorsHatch(map, { [swatch.dataset.pattern]: swatch.dataset.colour });
  }

  function tx(key, params) {
    let s = texts["groups." + key];
    if (s == null) return key;
    for (const [k, v] of Object.entries(params || {})) s = s.split("{" + k + "}").join(String(v));
    return s;
  }

  function text(s) {
    const span = document.createElement("span");
    span.textContent = s == null ? "" : String(s);
    return span.innerHTML;
  }

  function say(msg, kind) {
    message.textContent = msg;
    message.className = kind || "";
  }

  function outline(layer) {
    if (state.layer && state.layer !== layer) {
      state.layer.setStyle(state.layer._gaStyle);
    }
    state.layer = layer;
    if (!layer) return;
    if (!layer._gaStyle) layer._gaStyle = { color: layer.options.color, weight: layer.options.weight };
    layer.setStyle(SELECTED);
    if (layer.bringToFront) layer.bringToFront();
  }

  function showCard(p) {
    const g = groups.get(p.group_id);
    const locked = Boolean(g && g.is_locked);
    // the property values are HTML-escaped on the server (layers/groups.py): text() again
    card.innerHTML =
      `<b>${text(p.name) || text(tx("unnamed", { id: p.id }))}</b> · ` +
      `${text(tx("households", { n: p.households }))}<br>` +
      text(tx("path", { unit: p.unit, cluster: p.cluster, group: p.grp })) +
      (locked ? " · " + text(tx("locked")) : "") +
      // a building divided by floors: which floors belong to which group ("1–9:03|10–18:04"),
      // or by entrance ("1–12:03@1,2": entrances 1 and 2), on one wrapped line so that the
      // card stays short
      (p.parts
        ? "<br>" +
          String(p.parts)
            .split("|")
            .map((s) => {
              const [floors, rest] = s.split(":");
              const [group, entrance] = (rest || "").split("@");
              return entrance
                ? text(tx("floors_entrance", { floors: floors, group: group, entrance: entrance }))
                : text(tx("floors", { floors: floors, group: group }));
            })
            .join(" · ")
        : "");
    lockButton.textContent = locked ? tx("unlock") : tx("lock");
    panel.hidden = false;
  }

  async function send(method, url, body) {
    state.busy = true;
    try {
      return await GA.api(method, url, body);
    } finally {
      state.busy = false;
    }
  }

  function done(result, okText) {
    if (result.ok) {
      say(okText, "ok");
      setTimeout(() => window.location.reload(), 1500);
      return;
    }
    state.mode = null;
    // the server's message in the user's language; most refusals already say "not changed"
    const prefix = tx("refused", { reason: "" });
    const msg = result.message || "";
    say(msg.startsWith(prefix) ? msg : tx("refused", { reason: msg }), "error");
  }

  // what each mode moves, where to, and how to say it
  const MOVES = {
    building: {
      same: (from, p) => p.unit_id === from.unit_id,
      body: (from, p) => ({ kind: "building", id: from.id, to: p.unit_id, from: from.unit_id }),
      sameText: "same_unit",
      doneText: (from, p) => tx("moved_building", { code: p.unit }),
    },
    unit: {
      same: (from, p) => p.cluster_id === from.cluster_id,
      body: (from, p) => ({ kind: "unit", id: from.unit_id, to: p.cluster_id, from: from.cluster_id }),
      sameText: "same_cluster",
      doneText: (from, p) => tx("moved_unit", { from: from.unit, code: p.cluster }),
    },
    cluster: {
      same: (from, p) => p.group_id === from.group_id,
      body: (from, p) => ({
        kind: "building_cluster", id: from.cluster_id, to: p.group_id, from: from.group_id,
      }),
      sameText: "same_group",
      doneText: (from, p) => tx("moved_cluster", { from: from.cluster, code: p.grp }),
    },
  };

  async function onBuilding(p, layer) {
    if (state.busy) return;
    if (!state.mode || !state.selected) {
      state.selected = p;
      outline(layer);
      say("");
      showCard(p);
      return;
    }
    const from = state.selected;
    const move = MOVES[state.mode];
    if (move.same(from, p)) return say(tx(move.sameText), "error");
    say(tx("moving"));
    // "from" is what the screen shows: refused (412) if someone moved it since
    done(await send("POST", "/api/delineation/moves", move.body(from, p)), move.doneText(from, p));
  }

  map.eachLayer((layer) => {
    if (!layer.feature || !layer.feature.properties) return;
    const p = layer.feature.properties;
    if ("unit_id" in p) {
      layer.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        onBuilding(p, layer);
      });
    } else if ("band" in p) {
      groups.set(p.id, p);
    }
  });

  const modes = [
    ["ga-move-building", "building", "move_building", "pick_unit"],
    ["ga-move-unit", "unit", "move_unit", "pick_cluster"],
    ["ga-move-cluster", "cluster", "move_cluster", "pick_group"],
  ];
  for (const [id, mode, label, pick] of modes) {
    const button = document.getElementById(id);
    if (!button) continue;
    button.textContent = tx(label);
    button.addEventListener("click", () => {
      state.mode = mode;
      say(tx(pick));
    });
  }
  document.getElementById("ga-cancel").addEventListener("click", () => {
    state.mode = null;
    state.selected = null;
    outline(null);
    panel.hidden = true;
  });
  lockButton.addEventListener("click", async () => {
    if (!state.selected || state.busy) return;
    const g = groups.get(state.selected.group_id);
    const lock = !(g && g.is_locked);
    done(
      await send("PUT", `/api/delineation/groups/${state.selected.group_id}/lock`, { locked: lock }),
      lock ? tx("locked_done") : tx("unlocked_done")
    );
  });
})();

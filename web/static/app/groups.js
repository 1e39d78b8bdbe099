// Residents' groups map: tap a building for its card, then move it (or its whole unit) by
// tapping a building of the unit / cluster it should join. The server checks every move and
// says why it refuses one; nothing changes then.
(function () {
  "use strict";
  const map = Object.values(window).find((v) => v instanceof L.Map);
  if (!map) return;
  const panel = document.getElementById("ga-panel");
  const card = document.getElementById("ga-card");
  const message = document.getElementById("ga-message");
  const lockButton = document.getElementById("ga-lock");
  const state = { selected: null, mode: null, busy: false };
  const groups = new Map();

  function text(s) {
    const span = document.createElement("span");
    span.textContent = s == null ? "" : String(s);
    return span.innerHTML;
  }

  function say(msg, kind) {
    message.textContent = msg;
    message.className = kind || "";
  }

  function showCard(p) {
    const g = groups.get(p.group_id);
    const locked = g && g.locked === "已锁定";
    card.innerHTML =
      `<b>${text(p.name) || "楼栋 " + text(p.id)}</b> · ${text(p.households)} 户<br>` +
      `单元 ${text(p.unit)} · 楼群 ${text(p.cluster)} · 小组 ${text(p.grp)}` +
      (locked ? " · 已锁定" : "");
    lockButton.textContent = locked ? "解锁小组" : "锁定小组";
    panel.hidden = false;
  }

  async function send(method, url, body) {
    state.busy = true;
    try {
      const r = await fetch(url, {
        method,
        // the session cookie set by /login, and the header that shows this page sent it
        headers: { "Content-Type": "application/json", "X-Requested-With": "gridatlas" },
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
      const data = await r.json().catch(() => ({}));
      return { ok: r.ok, status: r.status, data };
    } finally {
      state.busy = false;
    }
  }

  function done(result, okText) {
    if (result.ok) {
      const warnings = (result.data.warnings || []).join("；");
      say(okText + (warnings ? "（注意：" + warnings + "）" : ""), "ok");
      setTimeout(() => window.location.reload(), 1500);
    } else {
      state.mode = null;
      if (result.status === 401) {
        const next = encodeURIComponent(window.location.pathname + window.location.search);
        message.innerHTML = `未能修改：请先 <a href="/login?next=${next}">登录</a>（修改需要社区工作人员账号）`;
        message.className = "error";
        return;
      }
      if (result.status === 403) return say("未能修改：您的账号没有修改权限", "error");
      let detail = result.data.detail;
      if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
      say("未能修改：" + (detail || "HTTP " + result.status), "error");
    }
  }

  async function onBuilding(p) {
    if (state.busy) return;
    if (!state.mode || !state.selected) {
      state.selected = p;
      say("");
      showCard(p);
      return;
    }
    const from = state.selected;
    if (state.mode === "building") {
      if (p.unit_id === from.unit_id) return say("这栋楼已在该单元，请点选其他单元的楼栋", "error");
      say("正在移动…");
      done(
        await send("POST", "/api/delineation/moves", {
          kind: "building",
          id: from.id,
          to: p.unit_id,
          from: from.unit_id, // refused (412) if someone moved it since this map was drawn
        }),
        `已将楼栋移入单元 ${p.unit}`
      );
    } else if (state.mode === "unit") {
      if (p.cluster_id === from.cluster_id) return say("该单元已在这个楼群，请点选其他楼群的楼栋", "error");
      say("正在移动…");
      done(
        await send("POST", "/api/delineation/moves", {
          kind: "unit",
          id: from.unit_id,
          to: p.cluster_id,
          from: from.cluster_id,
        }),
        `已将单元 ${from.unit} 移入楼群 ${p.cluster}`
      );
    }
  }

  map.eachLayer((layer) => {
    if (!layer.feature || !layer.feature.properties) return;
    const p = layer.feature.properties;
    if ("unit_id" in p) {
      layer.on("click", (e) => {
        L.DomEvent.stopPropagation(e);
        onBuilding(p);
      });
    } else if ("band" in p) {
      groups.set(p.id, p);
    }
  });

  document.getElementById("ga-move-building").addEventListener("click", () => {
    state.mode = "building";
    say("请点选目标单元中的任一楼栋");
  });
  document.getElementById("ga-move-unit").addEventListener("click", () => {
    state.mode = "unit";
    say("请点选目标楼群中的任一楼栋");
  });
  document.getElementById("ga-cancel").addEventListener("click", () => {
    state.mode = null;
    state.selected = null;
    panel.hidden = true;
  });
  lockButton.addEventListener("click", async () => {
    if (!state.selected || state.busy) return;
    const g = groups.get(state.selected.group_id);
    const lock = !(g && g.locked === "已锁定");
    done(
      await send("PUT", `/api/delineation/groups/${state.selected.group_id}/lock`, { locked: lock }),
      lock ? "已锁定：重新划分时保留此小组" : "已解锁"
    );
  });
})();

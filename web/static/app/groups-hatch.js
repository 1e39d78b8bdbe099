// The hatch of a building divided by floors among residents' groups (building_part):
// horizontal stripes, as floors are, one SVG pattern per colour in the SVG of the map's
// overlay pane, so that a layer whose fillColor is "url(#id)" is drawn hatched (Leaflet
// writes fillColor into the path's fill attribute). Used by groups.js and leaders.js.
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  // patterns: {id: stripe colour}; false while the map has no SVG yet (nothing drawn)
  function addFloorsHatch(map, patterns) {
    const svg = map.getPanes().overlayPane.querySelector("svg");
    if (!svg) return false;
    let defs = svg.querySelector("defs");
    if (!defs) defs = svg.insertBefore(el("defs", {}), svg.firstChild);
    for (const [id, colour] of Object.entries(patterns)) {
      if (svg.querySelector("#" + id)) continue;
      const pattern = el("pattern", { id, patternUnits: "userSpaceOnUse", width: "6", height: "6" });
      pattern.appendChild(el("rect", { width: "6", height: "6", fill: "#ffffff" }));
      pattern.appendChild(el("rect", { width: "6", height: "3", fill: colour }));
      defs.appendChild(pattern);
    }
    return true;
  }

  window.GAHatch = { addFloorsHatch };
})();

/* The live map: a canvas with bbox-limited fetches of cases and of whatever map layers the server offers
   (/api/v1/map/...), cases coloured by traffic light and moved by the live stream without reloading. */
"use strict";
(function () {
  const { api, optional, el, t } = App;
  const canvas = document.getElementById("map-canvas");
  const ctx = canvas.getContext("2d");
  const COLORS = { green: "#2e9d4f", yellow: "#e0a400", red: "#d22f2f", none: "#7b8794", paused: "#6b5bd2" };
  const CLOSED = new Set(["closed", "voided", "merged"]);
  // View: centre lon/lat and scale in pixels per degree of longitude (Baoji by default).
  const V = { lon: 107.17, lat: 34.36, scale: 9000 };
  const cases = new Map();
  const layers = [];  // {id, name, url, visible, features, matched, limit, minScale}
  let started = false, fetchTimer = null, drawPending = false, layersProbed = false;
  // The whole demo city has ~81,000 components and ~5,000 grids: layers are fetched only for the view's
  // bbox, with a feature limit, and components only when zoomed in far enough (pixels per degree).
  const FEATURE_LIMIT = { areas: 500, grids: 1500, components: 2000 };
  const MIN_SCALE = { components: 40000, grids: 8000 };
  const classColors = new Map();  // major class (C01) -> colour, from /api/v1/map/legend
  function classColor(code) { return classColors.get((code || "").slice(0, 3)) || "#5a7d9a"; }

  function kx() { return Math.cos(V.lat * Math.PI / 180); }
  function project(lon, lat) {
    return [canvas.width / 2 + (lon - V.lon) * V.scale, canvas.height / 2 - (lat - V.lat) * V.scale / kx()];
  }
  function unproject(x, y) {
    return [V.lon + (x - canvas.width / 2) / V.scale, V.lat - (y - canvas.height / 2) * kx() / V.scale];
  }
  function bbox() {
    const [x0, y1] = unproject(0, canvas.height), [x1, y0] = unproject(canvas.width, 0);
    const c = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
    return [c(x0, -180, 180), c(y1, -90, 90), c(x1, -180, 180), c(y0, -90, 90)].map((v) => v.toFixed(6)).join(",");
  }

  function requestDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => { drawPending = false; draw(); });
  }
  function drawGeometry(g, style) {
    if (!g) return;
    const ring = (coords) => coords.forEach(([lon, lat], i) => {
      const [x, y] = project(lon, lat); if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    if (g.type === "Point") {
      const [x, y] = project(g.coordinates[0], g.coordinates[1]);
      ctx.fillStyle = style.point; ctx.fillRect(x - 2, y - 2, 4, 4);
    } else if (g.type === "MultiPoint") {
      g.coordinates.forEach((p) => drawGeometry({ type: "Point", coordinates: p }, style));
    } else if (g.type === "LineString" || g.type === "MultiLineString") {
      ctx.beginPath();
      (g.type === "LineString" ? [g.coordinates] : g.coordinates).forEach(ring);
      ctx.strokeStyle = style.line; ctx.stroke();
    } else if (g.type === "Polygon" || g.type === "MultiPolygon") {
      ctx.beginPath();
      (g.type === "Polygon" ? [g.coordinates] : g.coordinates).forEach((poly) => poly.forEach((r) => { ring(r); ctx.closePath(); }));
      ctx.strokeStyle = style.line; ctx.stroke();
      if (style.fill) { ctx.fillStyle = style.fill; ctx.fill(); }
    }
  }
  const LAYER_STYLE = [
    { line: "#8aa4c8", fill: "rgba(138,164,200,0.06)", point: "#8aa4c8" },
    { line: "#c9d3df", fill: null, point: "#c9d3df" },
    { line: "#7a8", fill: null, point: "#5a7d9a" },
  ];
  function draw() {
    ctx.fillStyle = "#f4f6f8";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.lineWidth = 1;
    let drawn = 0;
    layers.forEach((layer, i) => {
      if (!layer.visible || !layer.features || V.scale < (layer.minScale || 0)) return;
      const style = LAYER_STYLE[Math.min(i, LAYER_STYLE.length - 1)];
      const byClass = layer.id === "components";
      for (const f of layer.features) {
        if (byClass) {
          const c = classColor(f.properties && f.properties.class_code);
          drawGeometry(f.geometry, { point: c, line: c, fill: null });
        } else drawGeometry(f.geometry, style);
        drawn++;
      }
    });
    canvas.dataset.features = String(drawn);
    canvas.dataset.drawn = canvas.dataset.layersLoaded || "";
    let shown = 0;
    for (const c of cases.values()) {
      const [x, y] = project(c.lon, c.lat);
      if (x < -10 || y < -10 || x > canvas.width + 10 || y > canvas.height + 10) continue;
      shown++;
      ctx.beginPath();
      ctx.arc(x, y, CLOSED.has(c.status) ? 3 : 6, 0, 2 * Math.PI);
      ctx.fillStyle = CLOSED.has(c.status) ? "#b8c0c8" : (COLORS[c.light] || COLORS.none);
      ctx.fill();
      ctx.strokeStyle = "#fff"; ctx.stroke();
    }
    canvas.dataset.cases = String(shown);
    canvas.dataset.scale = String(Math.round(V.scale));
    const notes = layers.filter((l) => l.visible).map((l) => {
      if (V.scale < (l.minScale || 0)) return `${l.name}: ${t("map.zoom_in")}`;
      if (l.matched != null && l.features && l.matched > l.features.length) return `${l.name}: ${l.features.length} / ${l.matched}`;
      return null;
    }).filter(Boolean);
    document.getElementById("map-hint").textContent =
      `${shown} ${t("map.count")}` + (notes.length ? " · " + notes.join(" · ") : "") +
      (layersProbed && layers.length === 0 ? " · " + t("map.unavailable") : "");
  }

  // Map layers are optional: a catalogue at /api/v1/map/layers, or the usual names probed one by one.
  async function probeLayers() {
    const catalogue = await optional("/api/v1/map/layers", "map_layers").catch(() => null);
    const list = catalogue ? (Array.isArray(catalogue) ? catalogue : catalogue.layers || catalogue.items || []) : [];
    if (list.length) {
      for (const l of list) {
        const id = l.id || l.name;
        layers.push({ id: id, name: l.title || l.name || id, url: l.url || `/api/v1/map/${id}`, visible: l.visible !== false });
      }
    } else {
      for (const id of ["areas", "grids", "components"]) {
        const data = await optional(`/api/v1/map/${id}?bbox=${bbox()}&limit=1`, "map_" + id).catch(() => null);
        if (data) layers.push({ id: id, name: id, url: `/api/v1/map/${id}`, visible: id !== "components" });
      }
    }
    for (const layer of layers) {
      layer.limit = FEATURE_LIMIT[layer.id] || 1000;
      layer.minScale = MIN_SCALE[layer.id] || 0;
    }
    const lg = await optional("/api/v1/map/legend", "map_legend").catch(() => null);
    if (lg) { App._legend = lg; for (const m of lg.majors) classColors.set(m.major, m.color); }
    layersProbed = true;
    const bar = document.getElementById("map-layers");
    bar.replaceChildren(el("span", { text: t("map.layers") + ": " }));
    for (const layer of layers) {
      const box = el("input", { type: "checkbox", checked: layer.visible, onchange: (e) => {
        layer.visible = e.target.checked; if (layer.visible) fetchLayers(); requestDraw(); } });
      bar.append(el("label", { class: "layer" }, [box, layer.name]));
    }
    renderLegend();
  }
  // The colour key of the component layer: the major classes present in the view.
  function renderLegend() {
    const box = document.getElementById("map-legend");
    const comp = layers.find((l) => l.id === "components");
    if (!box) return;
    if (!comp || !comp.visible || !comp.features || !comp.features.length || V.scale < comp.minScale) { box.replaceChildren(); return; }
    const counts = new Map();
    for (const f of comp.features) { const m = ((f.properties && f.properties.class_code) || "").slice(0, 3); counts.set(m, (counts.get(m) || 0) + 1); }
    const names = new Map(((App._legend && App._legend.majors) || []).map((m) => [m.major, m.name]));
    box.replaceChildren(...[...counts.entries()].sort((a, b) => b[1] - a[1]).map(([m, n]) =>
      el("span", { class: "key", dataset: { major: m } }, [el("i", { style: `background:${classColor(m)}` }),
        `${m} ${names.get(m) || ""} (${n})`])));
  }
  function viewKey() { return `${V.lon.toFixed(6)},${V.lat.toFixed(6)},${Math.round(V.scale)}`; }
  let layerFetches = 0;  // fetches overlap (a pan, a layer switched on): only the latest one's answer is kept
  async function fetchLayers() {
    const b = bbox(), key = viewKey(), scale = V.scale, mine = ++layerFetches;
    const got = await Promise.all(layers.filter((l) => l.visible).map(async (layer) => {
      if (scale < (layer.minScale || 0)) return [layer, [], null];  // zoom in first
      try {
        const sep = layer.url.includes("?") ? "&" : "?";
        const data = await api(`${layer.url}${sep}bbox=${b}&limit=${layer.limit || 1000}`);
        return [layer, (data && (data.features || (data.items && data.items.features))) || [],
          data && data.numberMatched != null ? data.numberMatched : null];
      } catch (e) { return [layer, [], null]; }
    }));
    if (mine !== layerFetches) return;  // an older view's answer arriving late must not replace a newer one
    for (const [layer, features, matched] of got) { layer.features = features; layer.matched = matched; }
    canvas.dataset.layersLoaded = key;  // which view the layers in memory belong to (tests wait on it)
    renderLegend();
    requestDraw();
  }
  async function fetchCases() {
    // The map's own case layer (GeoJSON, up to 5000) when the server has it, else the case list (500).
    const fc = await optional(`/api/v1/map/cases?bbox=${bbox()}&limit=5000`, "map_cases").catch(() => null);
    const items = fc ? fc.features.map((f) => Object.assign({}, f.properties, {
      id: f.properties.id || f.id, lon: f.geometry.coordinates[0], lat: f.geometry.coordinates[1] }))
      : (await api(`/api/v1/cases?bbox=${bbox()}&limit=500`)).items;
    const keep = new Set(items.map((c) => c.id));
    for (const id of [...cases.keys()]) if (!keep.has(id) && !cases.get(id).live) cases.delete(id);
    for (const c of items) cases.set(c.id, Object.assign(cases.get(c.id) || {}, c));
  }
  function scheduleFetch() {
    clearTimeout(fetchTimer);
    fetchTimer = setTimeout(async () => {
      await Promise.all([fetchCases().catch(() => {}), fetchLayers()]);
      requestDraw();
    }, 200);
  }

  // Live: move, recolour, add or drop the case the event is about, at once.
  App.onCaseEvent((msg) => {
    const c = msg.case;
    if (!c) return;
    cases.set(msg.case_id, Object.assign(cases.get(msg.case_id) || {}, {
      id: msg.case_id, number: c.number, status: c.status, lon: c.lon, lat: c.lat, light: c.light,
      class_code: c.class_code, live: true,
    }));
    if (started) requestDraw();
  });

  // Pan with the mouse, zoom with the wheel; a click on a case opens it.
  let drag = null;
  canvas.addEventListener("mousedown", (e) => { drag = { x: e.offsetX, y: e.offsetY, lon: V.lon, lat: V.lat, moved: false }; });
  window.addEventListener("mouseup", () => { if (drag && drag.moved) scheduleFetch(); drag = null; });
  canvas.addEventListener("mousemove", (e) => {
    if (drag) {
      const dx = e.offsetX - drag.x, dy = e.offsetY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      V.lon = drag.lon - dx / V.scale; V.lat = drag.lat + dy * kx() / V.scale;
      requestDraw();
      return;
    }
    const hit = pick(e.offsetX, e.offsetY);
    const tip = document.getElementById("map-tip");
    tip.hidden = !hit;
    if (hit) {
      tip.textContent = `${hit.number} · ${hit.class_code || ""} · ${t("status." + hit.status)}`;
      tip.style.left = e.offsetX + 12 + "px"; tip.style.top = e.offsetY + 12 + "px";
    }
  });
  canvas.addEventListener("click", (e) => { const hit = pick(e.offsetX, e.offsetY); if (hit && !(drag && drag.moved)) App.openCase(hit.id); });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [lon, lat] = unproject(e.offsetX, e.offsetY);
    V.scale = Math.max(50, Math.min(2e6, V.scale * (e.deltaY < 0 ? 1.25 : 0.8)));
    const [lon2, lat2] = unproject(e.offsetX, e.offsetY);
    V.lon += lon - lon2; V.lat += lat - lat2;
    requestDraw(); scheduleFetch();
  }, { passive: false });
  function pick(x, y) {
    let best = null, bd = 64;
    for (const c of cases.values()) {
      const [px, py] = project(c.lon, c.lat);
      const d = (px - x) ** 2 + (py - y) ** 2;
      if (d < bd) { bd = d; best = c; }
    }
    return best;
  }

  async function show() {
    if (!started) {
      started = true;
      // We centre on the newest cases the user may see, then fetch by the view's bbox.
      const page = await api("/api/v1/cases?limit=200").catch(() => ({ items: [] }));
      if (page.items.length) {
        const lons = page.items.map((c) => c.lon), lats = page.items.map((c) => c.lat);
        V.lon = (Math.min(...lons) + Math.max(...lons)) / 2; V.lat = (Math.min(...lats) + Math.max(...lats)) / 2;
        const span = Math.max(Math.max(...lons) - Math.min(...lons), 0.01);
        V.scale = Math.min(2e5, canvas.width * 0.8 / span);
      }
      await probeLayers();
    }
    scheduleFetch();
    requestDraw();
  }
  // For tests and the console's deep links: read or set the view (centre and pixels per degree).
  App.mapView = {
    get: () => Object.assign({}, V),
    key: viewKey,
    set: (lon, lat, scale) => { V.lon = lon; V.lat = lat; V.scale = scale; requestDraw(); scheduleFetch(); },
  };
  App.registerView("map", { show: show, reset: () => { if (started) scheduleFetch(); }, refresh: scheduleFetch });
})();

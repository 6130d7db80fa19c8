/* The live map on MapLibre GL JS: the city's own vector tiles (/tiles/style.json: base map, areas, grids,
   components, hot spots, cases by traffic light, clustered when zoomed out), a Chinese layer switcher and
   legend, click → case card, a drawn rectangle or polygon (Terra Draw) → the cases inside it, and live
   updates from the stream drawn at once on an overlay (only the case tiles are revalidated later, by ETag). */
import * as maplibregl from "/vendor/maplibre-gl/maplibre-gl.mjs";
import { TerraDraw, TerraDrawPolygonMode, TerraDrawRectangleMode, TerraDrawRenderMode } from "terra-draw";
import { TerraDrawMapLibreGLAdapter } from "terra-draw-maplibre-gl-adapter";
import { authorize } from "/console/static/minimap.js";

const { api, el, t } = App;
const LIGHTS = ["red", "yellow", "green", "paused", "none"];
const TERMINAL = new Set(["closed", "voided", "merged"]);
const GROUPS = [  // layer switcher: a group of style layers per line, off by default where marked
  { key: "base", prefix: ["base-", "external"], on: true },
  { key: "admin", prefix: ["admin-"], on: true },
  { key: "grids", prefix: ["grids-"], on: true },
  { key: "components", prefix: ["components"], on: false },
  { key: "heat", prefix: ["heat"], on: false },
  { key: "cases", prefix: ["cases", "live-"], on: true },
];
const NAMES = {
  zh: { base: "底图", admin: "行政区划", grids: "单元网格", components: "部件", heat: "热力", cases: "案件",
    red: "超时", yellow: "预警", green: "正常", paused: "挂账", none: "未计时", rect: "框选", polygon: "多边形",
    clear: "清除", inside: "区域内在办案件", cluster: "聚合（数字为案件数）", lights: "案件（红绿灯）", classes: "部件大类" },
  en: { base: "Base map", admin: "Admin areas", grids: "Unit grids", components: "Components", heat: "Heat",
    cases: "Cases", red: "Overdue", yellow: "Warning", green: "On time", paused: "Suspended", none: "Untimed",
    rect: "Rectangle", polygon: "Polygon", clear: "Clear", inside: "Open cases in the area",
    cluster: "Clusters (number of cases)", lights: "Cases (traffic light)", classes: "Component classes" },
};
function n(key) { return (NAMES[I18N.lang] || NAMES.zh)[key] || key; }

let map = null, draw = null, styleDoc = null, started = false, refreshTimer = null;
const visible = Object.fromEntries(GROUPS.map((g) => [g.key, g.on]));
const live = new Map();  // case id -> GeoJSON feature changed since the case tiles were last refreshed

function liveData() { return { type: "FeatureCollection", features: [...live.values()] }; }

function applyLiveFilter() {
  if (!map || !map.getLayer("cases")) return;
  const ids = [...live.keys()];
  // a case on the overlay is hidden in the tiles, so it is drawn once, where the stream says it is now
  const hide = ["!", ["in", ["id"], ["literal", ids]]];
  map.setFilter("cases", ["all", ["!", ["has", "cluster"]], hide]);
  map.getSource("live").setData(liveData());
  document.getElementById("map").dataset.live = String(ids.length);
}

function refreshCaseTiles() {
  // revalidate only the case tiles (304 where nothing changed); the overlay is dropped once they are in
  if (!map) return;
  const src = map.getSource("cases");
  if (!src) return;
  const stamp = Date.now();
  const done = () => {
    if (!map.isSourceLoaded("cases")) return;
    map.off("sourcedata", done);
    for (const [id, f] of live) if (f.properties.at <= stamp) live.delete(id);
    applyLiveFilter();
  };
  map.on("sourcedata", done);
  if (typeof src.reload === "function") src.reload(); else src.setTiles(src.tiles);
}

// On a GCJ-02 basemap the tiles come shifted; the page shifts its own WGS-84 points the same way.
function offset() { return (styleDoc && styleDoc.metadata["gridcity:gcj02_offset"]) || [0, 0]; }

App.onCaseEvent((msg) => {
  const c = msg.case;
  if (!c || msg.type !== "event" || !map || !map.getSource("live")) return;
  const [dx, dy] = offset();
  live.set(msg.case_id, { type: "Feature", id: msg.case_id, geometry: { type: "Point", coordinates: [c.lon + dx, c.lat + dy] },
    properties: { id: msg.case_id, number: c.number, status: c.status, light: c.light || "none",
      class_code: c.class_code, closed: TERMINAL.has(c.status) ? 1 : 0, at: Date.now() } });
  applyLiveFilter();
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshCaseTiles, 15000);
});

function groupLayers(key) {
  const g = GROUPS.find((x) => x.key === key);
  return styleDoc.layers.map((l) => l.id).concat(["live-cases"]).filter((id) => g.prefix.some((p) => id.startsWith(p)));
}
function setGroup(key, on) {
  visible[key] = on;
  for (const id of groupLayers(key)) if (map.getLayer(id)) map.setLayoutProperty(id, "visibility", on ? "visible" : "none");
}

function switcher() {
  const bar = document.getElementById("map-layers");
  bar.replaceChildren(el("span", { text: t("map.layers") + "：" }), ...GROUPS.map((g) => el("label", { class: "layer" }, [
    el("input", { type: "checkbox", checked: visible[g.key], dataset: { group: g.key },
      onchange: (e) => setGroup(g.key, e.target.checked) }), n(g.key)])));
  const tools = el("span", { class: "draw-tools" }, [
    el("button", { type: "button", dataset: { draw: "rectangle" }, onclick: () => startDraw("rectangle") }, n("rect")),
    el("button", { type: "button", dataset: { draw: "polygon" }, onclick: () => startDraw("polygon") }, n("polygon")),
    el("button", { type: "button", class: "detail", dataset: { draw: "clear" }, onclick: clearDraw }, n("clear")),
  ]);
  bar.append(tools);
}

async function legend() {
  const box = document.getElementById("map-legend");
  const lg = await api("/api/v1/map/legend").catch(() => ({ majors: [] }));
  const colours = styleDoc.metadata["gridcity:light_colours"];
  box.replaceChildren(
    el("b", { text: n("lights") + "：" }),
    ...LIGHTS.map((k) => el("span", { class: "key", dataset: { light: k } }, [el("i", { style: `background:${colours[k]};border-radius:50%` }), n(k)])),
    el("span", { class: "key" }, [el("i", { style: "background:#d62728;border-radius:50%;width:16px;height:16px" }), n("cluster")]),
    el("br"), el("b", { text: n("classes") + "：" }),
    ...lg.majors.map((m) => el("span", { class: "key", dataset: { major: m.major } }, [el("i", { style: `background:${m.color}` }), m.name])));
}

// ---- drawing an area: the open cases inside it ------------------------------------------------------------
function inside(pt, ring) {
  let hit = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i], [xj, yj] = ring[j];
    if ((yi > pt[1]) !== (yj > pt[1]) && pt[0] < (xj - xi) * (pt[1] - yi) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}
async function casesIn(ring) {
  const [dx, dy] = offset();
  ring = ring.map(([x, y]) => [x - dx, y - dy]);
  const xs = ring.map((p) => p[0]), ys = ring.map((p) => p[1]);
  const bbox = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)].map((v) => v.toFixed(6)).join(",");
  const fc = await api(`/api/v1/map/cases?bbox=${bbox}&limit=5000`);
  return fc.features.filter((f) => !TERMINAL.has(f.properties.status) && inside(f.geometry.coordinates, ring))
    .map((f) => f.properties);
}
async function showArea(ring) {
  const box = document.getElementById("map-area");
  box.hidden = false;
  box.replaceChildren(el("p", { text: t("map.loading") }));
  const list = await casesIn(ring);
  box.dataset.count = String(list.length);
  box.replaceChildren(el("h3", { text: `${n("inside")}：${list.length}` }), el("table", { class: "cases", id: "map-area-table" }, [
    el("thead", {}, el("tr", {}, ["col.light", "col.number", "col.class", "col.status", "col.department"].map((k) => el("th", { text: t(k) })))),
    el("tbody", {}, list.sort((a, b) => b.id - a.id).map((c) => el("tr", { dataset: { caseId: c.id, number: c.number } }, [
      el("td", {}, el("span", { class: "light " + (c.light || "none") })),
      el("td", {}, el("a", { href: "#", class: "case-link", onclick: (e) => { e.preventDefault(); App.openCase(c.id); } }, c.number)),
      el("td", { text: c.class_code }), el("td", { text: t("status." + c.status) }), el("td", { text: App.deptName(c.department_id) }),
    ]))),
  ]));
}
function startDraw(mode) {
  if (!draw) return;
  draw.clear();
  draw.setMode(mode);
}
function clearDraw() {
  if (draw) { draw.clear(); draw.setMode("static"); }
  const box = document.getElementById("map-area");
  box.hidden = true; box.replaceChildren();
}
function setupDraw() {
  draw = new TerraDraw({
    adapter: new TerraDrawMapLibreGLAdapter({ map: map }),
    modes: [new TerraDrawRectangleMode(), new TerraDrawPolygonMode(), new TerraDrawRenderMode({ modeName: "static", styles: {} })],
  });
  draw.start();
  draw.setMode("static");
  draw.on("finish", (id) => {
    const f = draw.getSnapshot().find((x) => x.id === id);
    if (!f || f.geometry.type !== "Polygon") return;
    draw.setMode("static");
    showArea(f.geometry.coordinates[0]).catch((e) => App.toast(e.message, "red"));
  });
}

// ---- the map ---------------------------------------------------------------------------------------------
async function start() {
  styleDoc = await api(`/tiles/style.json?lang=${I18N.lang === "en" ? "en" : "zh"}`);
  const container = document.getElementById("map");
  map = new maplibregl.Map({
    container: container, style: styleDoc, hash: false, attributionControl: false,
    localIdeographFontFamily: "'Noto Sans CJK SC', 'PingFang SC', 'Microsoft YaHei', sans-serif",
    transformRequest: authorize, maxZoom: 20, canvasContextAttributes: { preserveDrawingBuffer: true },
  });
  App.map = map;
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  await new Promise((resolve) => map.once("load", resolve));
  map.addSource("live", { type: "geojson", data: liveData() });
  map.addLayer({ id: "live-cases", type: "circle", source: "live", filter: ["==", ["get", "closed"], 0],
    paint: { "circle-color": ["match", ["get", "light"], ...Object.entries(styleDoc.metadata["gridcity:light_colours"]).flat(), "#1f77b4"],
      "circle-radius": 7, "circle-stroke-color": "#14365f", "circle-stroke-width": 2 } });
  for (const g of GROUPS) setGroup(g.key, visible[g.key]);
  // fit the city, then open case cards on click (clusters zoom in)
  const b = (await api("/tiles/admin.json").catch(() => null));
  if (b && b.bounds) map.fitBounds([[b.bounds[0], b.bounds[1]], [b.bounds[2], b.bounds[3]]], { padding: 20, animate: false });
  map.on("click", (e) => {
    if (draw && draw.getMode() !== "static") return;
    const hits = map.queryRenderedFeatures(e.point, { layers: ["live-cases", "cases", "cases-cluster"].filter((id) => map.getLayer(id)) });
    if (!hits.length) return;
    const f = hits[0];
    if (f.properties.cluster) { map.easeTo({ center: f.geometry.coordinates, zoom: Math.min(map.getZoom() + 2, 16) }); return; }
    App.openCase(f.id || f.properties.id);
  });
  for (const id of ["cases", "cases-cluster", "live-cases"]) {
    map.on("mouseenter", id, () => { map.getCanvas().style.cursor = "pointer"; });
    map.on("mouseleave", id, () => { map.getCanvas().style.cursor = ""; });
  }
  setupDraw();
  switcher();
  await legend();
  map.on("idle", () => { container.dataset.idle = String(Date.now()); });
  container.dataset.ready = "1";
}

function show() {
  if (!started) {
    started = true;
    start().catch((e) => { App.toast(e.message, "red"); started = false; });
  } else if (map) map.resize();
}
App.registerView("map", {
  show: show,
  reset: () => { if (map) { live.clear(); applyLiveFilter(); refreshCaseTiles(); switcher(); legend(); } },
  refresh: () => { if (map) refreshCaseTiles(); },
});

/* A small reusable map of one case: the case, its component and its unit grid, on the city's own tiles.

   import { caseMiniMap } from "/console/static/minimap.js";
   const mini = await caseMiniMap(element, caseObject);   // caseObject as GET /api/v1/cases/{id} returns it
   mini.remove();                                          // when the card closes

   The console's classic scripts call it through window.MiniMap.show(box, case) and MiniMap.pick(box, centre, cb). */
import * as maplibregl from "/vendor/maplibre-gl/maplibre-gl.mjs";

/* MapLibre's transformRequest: the console's bearer token on the app's own tile requests. */
export function authorize(url) {
  const token = (typeof App !== "undefined" && App.S && App.S.token) || sessionStorage.getItem("gridcity.token");
  if (token && url.startsWith(location.origin + "/tiles/")) return { url: url, headers: { Authorization: "Bearer " + token } };
  return { url: url };
}

let styleCache = null;
async function baseStyle() {
  if (!styleCache) {
    const lang = (typeof I18N !== "undefined" && I18N.lang === "en") ? "en" : "zh";
    const r = await fetch(`/tiles/style.json?lang=${lang}`);
    styleCache = await r.json();
  }
  return styleCache;
}
const KEEP = /^(background|external|base-|admin-line|grids-|components)/;

/* Draw the case (by its traffic light), its component (highlighted) and its grid (outlined) in ``container``.
   Resolves to the MapLibre map once it has loaded. */
export async function caseMiniMap(container, c, opts) {
  opts = opts || {};
  const full = await baseStyle();
  const style = Object.assign({}, full, { layers: full.layers.filter((l) => KEEP.test(l.id)) });
  container.classList.add("case-minimap");
  container.dataset.caseId = String(c.id);
  const map = new maplibregl.Map({
    container: container, style: style, center: [c.lon, c.lat], zoom: opts.zoom || 17, attributionControl: false,
    interactive: opts.interactive !== undefined ? opts.interactive : true, transformRequest: authorize,
    localIdeographFontFamily: "'Noto Sans CJK SC', sans-serif", canvasContextAttributes: { preserveDrawingBuffer: true },
  });
  await new Promise((resolve) => map.once("load", resolve));
  const colours = full.metadata["gridcity:light_colours"];
  if (c.grid_code) {
    map.addLayer({ id: "mini-grid", type: "line", source: "grids", "source-layer": "grids", minzoom: 13,
      filter: ["==", ["get", "code"], c.grid_code], paint: { "line-color": "#14365f", "line-width": 3 } });
  }
  if (c.component_id) {
    map.addLayer({ id: "mini-component", type: "circle", source: "components", "source-layer": "components",
      filter: ["==", ["get", "code"], c.component_id],
      paint: { "circle-radius": 9, "circle-color": "rgba(0,0,0,0)", "circle-stroke-color": "#9467bd", "circle-stroke-width": 3 } });
  }
  const [dx, dy] = full.metadata["gridcity:gcj02_offset"] || [0, 0];
  map.setCenter([c.lon + dx, c.lat + dy]);
  map.addSource("mini-case", { type: "geojson", data: { type: "Feature", id: c.id,
    geometry: { type: "Point", coordinates: [c.lon + dx, c.lat + dy] }, properties: { light: c.light || "none" } } });
  map.addLayer({ id: "mini-case", type: "circle", source: "mini-case",
    paint: { "circle-radius": 7, "circle-color": colours[c.light || "none"] || "#1f77b4", "circle-stroke-color": "#fff", "circle-stroke-width": 2 } });
  container.dataset.ready = "1";
  return map;
}

/* The dashboard's hot-spot map: the base map and areas with a heat layer and discs sized by count. */
export async function hotspotMap(container, data) {
  const full = await baseStyle();
  const style = Object.assign({}, full, { layers: full.layers.filter((l) => /^(background|external|base-|admin-)/.test(l.id)) });
  const map = new maplibregl.Map({ container: container, style: style, attributionControl: false, transformRequest: authorize,
    localIdeographFontFamily: "'Noto Sans CJK SC', sans-serif", canvasContextAttributes: { preserveDrawingBuffer: true } });
  await new Promise((resolve) => map.once("load", resolve));
  map.addSource("hot", { type: "geojson", data: data });
  map.addLayer({ id: "hot-heat", type: "heatmap", source: "hot", paint: {
    "heatmap-weight": ["interpolate", ["linear"], ["get", "count"], 0, 0, 10, 1],
    "heatmap-radius": ["interpolate", ["linear"], ["zoom"], 10, 15, 15, 45], "heatmap-opacity": 0.7 } });
  map.addLayer({ id: "hot-disc", type: "circle", source: "hot", minzoom: 13, paint: {
    "circle-radius": ["interpolate", ["linear"], ["get", "count"], 1, 4, 20, 16], "circle-color": "#d62728",
    "circle-opacity": 0.5, "circle-stroke-color": "#fff", "circle-stroke-width": 1 } });
  container.dataset.ready = "1";
  return map;
}

/* Let the user pick a point on the city map (the intake form): ``onPick(lon, lat)`` gets WGS84 coordinates. */
export async function pickerMap(container, center, onPick) {
  const full = await baseStyle();
  const style = Object.assign({}, full, { layers: full.layers.filter((l) => /^(background|external|base-|admin-)/.test(l.id)) });
  const [dx, dy] = full.metadata["gridcity:gcj02_offset"] || [0, 0];
  const map = new maplibregl.Map({ container: container, style: style, center: [center.lon + dx, center.lat + dy], zoom: 14,
    attributionControl: false, transformRequest: authorize, localIdeographFontFamily: "'Noto Sans CJK SC', sans-serif" });
  let marker = null;
  map.on("click", (e) => {
    if (!marker) marker = new maplibregl.Marker({ color: "#d62728" });
    marker.setLngLat(e.lngLat).addTo(map);
    onPick(e.lngLat.lng - dx, e.lngLat.lat - dy);  // the display shift (GCJ-02 base map) is not stored
  });
  await new Promise((resolve) => map.once("load", resolve));
  container.dataset.ready = "1";
  return map;
}

// The console's classic scripts (app.js, intake.js) reach the maps through window.MiniMap; one case map at a time.
let current = null;
window.MiniMap = {
  show(box, c) {
    if (current) { current.remove(); current = null; }
    caseMiniMap(box, c).then((m) => { current = m; }).catch(() => box.classList.add("placeholder"));
  },
  pick(container, center, onPick) {
    pickerMap(container, center, onPick).catch(() => container.classList.add("placeholder"));
  },
};

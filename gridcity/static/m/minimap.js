// The small maps of 城管通: the report's movable pin and a case's position on a task, drawn with MapLibre GL JS
// (ESM from npm, /vendor/maplibre-gl/, loaded only when a map is shown) over the city's own vector tiles (the
// style document /tiles/style.json, as the console's minimap.js uses it). The service worker keeps MapLibre, and
// keeps the style, TileJSON, glyphs and the base/admin/grid/component tiles of the areas this user has looked at
// and of about 1 km around where the phone has been (sw.js, pre-cached at MAP_ZOOM and one out), so offline the
// map seen before, or around, still shows its streets. With no style at all (offline before any map
// was seen, or the server unreachable) the map degrades to a plain background with the pin and the nearby
// components: the pin still moves and the position, with its accuracy, is shown beside the map. Without WebGL
// there is no map at all and the position still works. The container keeps the MapLibre map as `.map`.
let lib = null;
/** The zoom the small maps open at (the service worker pre-caches the tiles around the phone at it and one out). */
export const MAP_ZOOM = 17;

async function maplibre() {
  if (!lib) {
    const ml = await import("/vendor/maplibre-gl/maplibre-gl.mjs");
    // MapLibre starts its worker from maplibre-gl-worker.mjs?v=…; offline, in Debian's Chromium, that request
    // failed although the service worker holds the file (seen in tests/fieldapp/test_fieldapp_map.py), so the
    // worker is started from the copy the page fetched itself (from the service worker's cache when offline;
    // the worker script has no imports).
    const r = await fetch("/vendor/maplibre-gl/maplibre-gl-worker.mjs");
    if (!r.ok) throw new Error("maplibre worker");
    ml.setWorkerUrl(URL.createObjectURL(new Blob([await r.text()], { type: "text/javascript" })));
    lib = ml;
  }
  return lib;
}

// Of the console's style: the base map, district/street lines, unit grids and components (not the live cases).
const KEEP = /^(background|external|base-|admin-line|grids-|components)/;
const BARE = { version: 8, sources: {}, layers: [{ id: "background", type: "background", paint: { "background-color": "#e8edf1" } }] };
const styles = {};

/** The city's style for `lang`, or null when it cannot be had now (then the bare style is used). */
async function cityStyle(token, lang) {
  if (styles[lang]) return styles[lang];
  try {
    const r = await fetch(`/tiles/style.json?lang=${lang}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    if (!r.ok) return null;
    const full = await r.json();
    const layers = full.layers.filter((l) => KEEP.test(l.id));
    // Only the sources those layers draw from: the case and hot-spot sources are not even asked for.
    const used = new Set(layers.map((l) => l.source).filter(Boolean));
    const sources = Object.fromEntries(Object.entries(full.sources).filter(([k]) => used.has(k)));
    styles[lang] = { ...full, sources, layers };
    return styles[lang];
  } catch {
    return null;
  }
}

/** A map in `container` with a pin at (lon, lat) (WGS-84). With `onMove(lon, lat)` the pin can be dragged
 *  or placed by a tap; without it the pin marks a case. `container.dataset.tiles` says "city" or "none". */
export async function createMiniMap(container, { lon, lat, onMove = null, token = null, lang = "zh" }) {
  let ml;
  try {
    ml = await maplibre();
  } catch {
    return null;
  }
  const city = await cityStyle(token, lang);
  const base = city || BARE;
  // Where the base map is in GCJ-02 (a Chinese map service), WGS-84 points are drawn shifted like the console's.
  const [dx, dy] = (city?.metadata || {})["gridcity:gcj02_offset"] || [0, 0];
  const style = {
    ...base,
    sources: { ...base.sources, "m-comps": { type: "geojson", data: { type: "FeatureCollection", features: [] } } },
    layers: [...base.layers, { id: "m-comps", type: "circle", source: "m-comps",
      paint: { "circle-radius": 6, "circle-color": "#ff8f00", "circle-stroke-color": "#fff", "circle-stroke-width": 1.5 } }],
  };
  const authorize = (url) => (token && url.startsWith(`${location.origin}/tiles/`)
    ? { url, headers: { Authorization: `Bearer ${token}` } } : { url });
  try {
    const map = new ml.Map({ container, style, center: [lon + dx, lat + dy], zoom: MAP_ZOOM, attributionControl: false,
      dragRotate: false, pitchWithRotate: false, transformRequest: authorize,
      localIdeographFontFamily: "'Noto Sans CJK SC', sans-serif" });
    map.on("error", () => { container.dataset.tileErrors = String(Number(container.dataset.tileErrors || 0) + 1); });
    container.dataset.tiles = city ? "city" : "none";
    container.map = map;
    const marker = new ml.Marker({ draggable: !!onMove, color: onMove ? "#d32f2f" : "#1f77b4" })
      .setLngLat([lon + dx, lat + dy]).addTo(map);
    marker.getElement().dataset.testid = onMove ? "map-pin" : "case-pin";
    if (onMove) {
      const moved = (p) => onMove(p.lng - dx, p.lat - dy);
      marker.on("dragend", () => moved(marker.getLngLat()));
      map.on("click", (e) => { marker.setLngLat(e.lngLat); moved(e.lngLat); });
    }
    map.once("load", () => { container.dataset.ready = "1"; });
    return {
      map,
      setPin(lo, la, center = true) { marker.setLngLat([lo + dx, la + dy]); if (center) map.setCenter([lo + dx, la + dy]); },
      setComponents(items) {
        const data = { type: "FeatureCollection", features: items.filter((c) => c.lon != null).map((c) => ({
          type: "Feature", geometry: { type: "Point", coordinates: [c.lon + dx, c.lat + dy] }, properties: { code: c.code } })) };
        const src = map.getSource("m-comps");
        if (src) src.setData(data); else map.once("load", () => map.getSource("m-comps")?.setData(data));
      },
      remove() { map.remove(); },
    };
  } catch {
    return null; // no WebGL: the position still works, without the map
  }
}

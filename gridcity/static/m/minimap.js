// The small map with a movable pin. MapLibre GL JS (ESM, /vendor/maplibre-gl/) is loaded only when a map is
// shown. The style needs no tiles: a plain background, the nearby components of the chosen class and the pin,
// so it works offline. When the city's vector tiles are served it can take them as a source.
let lib = null;

async function maplibre() {
  if (!lib) lib = await import("/vendor/maplibre-gl/maplibre-gl.mjs");
  return lib;
}

const STYLE = {
  version: 8,
  sources: { comps: { type: "geojson", data: { type: "FeatureCollection", features: [] } } },
  layers: [
    { id: "bg", type: "background", paint: { "background-color": "#e8edf1" } },
    { id: "comps", type: "circle", source: "comps", paint: { "circle-radius": 6, "circle-color": "#ff8f00", "circle-stroke-color": "#fff", "circle-stroke-width": 1.5 } },
  ],
};

/** A map in `container` with a draggable pin; `onMove(lon, lat)` when the inspector moves it. */
export async function createMiniMap(container, { lon, lat, onMove }) {
  let ml;
  try {
    ml = await maplibre();
  } catch {
    return null;
  }
  try {
    const map = new ml.Map({ container, style: STYLE, center: [lon, lat], zoom: 17, attributionControl: false, dragRotate: false, pitchWithRotate: false });
    const marker = new ml.Marker({ draggable: true, color: "#d32f2f" }).setLngLat([lon, lat]).addTo(map);
    marker.on("dragend", () => { const p = marker.getLngLat(); onMove(p.lng, p.lat); });
    map.on("click", (e) => { marker.setLngLat(e.lngLat); onMove(e.lngLat.lng, e.lngLat.lat); });
    return {
      setPin(lo, la, center = true) { marker.setLngLat([lo, la]); if (center) map.setCenter([lo, la]); },
      setComponents(items) {
        const src = map.getSource("comps");
        const data = { type: "FeatureCollection", features: items.filter((c) => c.lon != null).map((c) => ({ type: "Feature", geometry: { type: "Point", coordinates: [c.lon, c.lat] }, properties: { code: c.code } })) };
        if (src) src.setData(data); else map.once("load", () => map.getSource("comps")?.setData(data));
      },
      remove() { map.remove(); },
    };
  } catch {
    return null; // no WebGL: the position still works, without the map
  }
}

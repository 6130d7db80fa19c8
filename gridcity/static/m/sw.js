// The service worker of 城管通: keeps the app shell (page, modules, styles, icons, the idb and MapLibre modules)
// so the app opens and works with no network. Shell files are answered from the cache at once and refreshed
// in the background; API calls are not touched (the outbox in IndexedDB handles being offline).
const VERSION = "cgt-shell-v2";
const ERRORS = "/console/static/errors.json"; // the one error catalogue, shared with the console
const SHELL = [
  "/m/", "/m/app.js", "/m/i18n.js", "/m/store.js", "/m/outbox.js", "/m/photos.js", "/m/patrol.js", "/m/minimap.js",
  "/m/style.css", "/m/manifest.webmanifest", "/m/icon-192.png", "/m/icon-512.png",
  "/vendor/idb/index.js", "/vendor/maplibre-gl/maplibre-gl.mjs", "/vendor/maplibre-gl/maplibre-gl-worker.mjs",
  "/vendor/maplibre-gl/maplibre-gl.css", ERRORS,
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(VERSION).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== VERSION).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

function isShell(url) {
  return url.origin === self.location.origin &&
    (url.pathname.startsWith("/m/") || url.pathname.startsWith("/vendor/") || url.pathname === ERRORS);
}

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || !isShell(url)) return; // API calls go to the network as usual
  event.respondWith((async () => {
    const cache = await caches.open(VERSION);
    const key = req.mode === "navigate" ? "/m/" : req;
    const hit = await cache.match(key, { ignoreSearch: true });
    const fresh = fetch(req).then((res) => {
      if (res.ok && res.type === "basic") cache.put(req.mode === "navigate" ? "/m/" : url.pathname, res.clone());
      return res;
    });
    if (hit) { event.waitUntil(fresh.catch(() => {})); return hit; }
    return fresh;
  })());
});

// The service worker of 城管通: keeps the app shell (page, modules, styles, icons, the idb and MapLibre modules)
// so the app opens and works with no network. Shell files are answered from the cache at once and refreshed
// in the background; API calls are not touched (the outbox in IndexedDB handles being offline).
//
// It also keeps the map the inspector has looked at, so it still shows the streets offline:
// - the style document and the TileJSON documents: network first, the cached copy when the network fails;
// - glyphs and the tiles of the base map, admin areas, unit grids and components: from the cache at once,
//   refreshed in the background (stale-while-revalidate);
// - NEVER the case and hot-spot tiles: they hold only what their reader may see and change all the time.
// The map caches are per user (cgt-map-docs-u<id>, cgt-map-tiles-u<id>; the id is the `sub` of the bearer token
// the request carries, else the user the page last said is logged in), so a second user on the same phone never
// gets the first one's answers (admin/grids/components tiles need a login; they are not public data). The tile
// cache is bounded: above LIMITS.max entries the oldest written are dropped down to LIMITS.keep. Logout (a
// message from the page) deletes that user's map caches.
const VERSION = "cgt-shell-v2";
const ERRORS = "/console/static/errors.json"; // the one error catalogue, shared with the console
const SHELL = [
  "/m/", "/m/app.js", "/m/i18n.js", "/m/store.js", "/m/outbox.js", "/m/photos.js", "/m/patrol.js", "/m/minimap.js",
  "/m/style.css", "/m/manifest.webmanifest", "/m/icon-192.png", "/m/icon-512.png",
  "/vendor/idb/index.js", "/vendor/maplibre-gl/maplibre-gl.mjs", "/vendor/maplibre-gl/maplibre-gl-worker.mjs",
  "/vendor/maplibre-gl/maplibre-gl.css", ERRORS,
];
const MAP_DOCS = "cgt-map-docs-u"; // + user id: style, TileJSON, glyphs
const MAP_TILES = "cgt-map-tiles-u"; // + user id: the user-independent tile layers (bounded)
const MAP_SETTINGS = "cgt-map-settings"; // the tile cache's bound, when the page changed it (tests lower it)
const LIMITS_KEY = "/m/__map-limits";
const CACHED_TILE_LAYERS = new Set(["base", "admin", "grids", "components"]); // cases, hotspots: never
const DEFAULT_LIMITS = { max: 3000, keep: 2700 };

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(VERSION).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  // Only an older shell goes; the map caches outlive an update of the app.
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith("cgt-shell-") && k !== VERSION).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

function isShell(url) {
  return url.origin === self.location.origin &&
    (url.pathname.startsWith("/m/") || url.pathname.startsWith("/vendor/") || url.pathname === ERRORS);
}

// ---- the map ------------------------------------------------------------------------------------------------

let pageUser = null; // the user the page said is logged in (memory only: requests carry their token anyway)
const epochs = new Map(); // user -> logout count: an answer fetched before a logout is not stored after it
const counts = new Map(); // tile cache name -> its number of entries (counted once, then kept up to date)
const chains = new Map(); // cache name -> the last queued write (writes to one cache run one at a time)
let limits = null;

/** The user a request is for: the `sub` of its bearer token (not verified: it only picks this phone's cache). */
function userOf(req) {
  const m = /^Bearer\s+([^.\s]+)\.([^.\s]+)\./.exec(req.headers.get("Authorization") || "");
  if (m) {
    try {
      const claims = JSON.parse(atob(m[2].replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(m[2].length / 4) * 4, "=")));
      if (claims.sub !== undefined && /^\d+$/.test(String(claims.sub))) return String(claims.sub);
    } catch { /* not a token we know: no cache */ }
    return null;
  }
  return pageUser;
}

/** What the worker does with a map request: "doc" (network first), "swr" (cache first, refreshed), or null. */
function mapKind(url) {
  if (url.origin !== self.location.origin || !url.pathname.startsWith("/tiles/")) return null;
  const path = url.pathname.slice("/tiles/".length);
  if (path === "style.json" || /^[a-z]+\.json$/.test(path)) return "doc";
  if (path.startsWith("fonts/") && path.endsWith(".pbf")) return "glyph";
  const m = /^([a-z]+)\/\d+\/\d+\/\d+\.mvt$/.exec(path);
  return m && CACHED_TILE_LAYERS.has(m[1]) ? "tile" : null;
}

function serial(name, fn) {
  const run = (chains.get(name) || Promise.resolve()).then(fn);
  chains.set(name, run.catch(() => {}));
  return run;
}

async function currentLimits() {
  if (!limits) {
    const hit = await (await caches.open(MAP_SETTINGS)).match(LIMITS_KEY);
    limits = hit ? await hit.json() : DEFAULT_LIMITS;
  }
  return limits;
}

/** Store `res` under `key` in `name` unless the user logged out since the request began; bound a tile cache. */
function store(name, key, res, user, epoch, bounded) {
  return serial(name, async () => {
    if ((epochs.get(user) || 0) !== epoch) return;
    const cache = await caches.open(name);
    const isNew = !(await cache.match(key, { ignoreVary: true }));
    await cache.put(key, res);
    if (!bounded) return;
    let n = counts.get(name);
    if (n === undefined) n = (await cache.keys()).length; else if (isNew) n += 1;
    const { max, keep } = await currentLimits();
    if (n > max) {
      const keys = await cache.keys(); // in the order written (a rewrite moves an entry to the end)
      const drop = keys.slice(0, Math.max(0, keys.length - keep));
      await Promise.all(drop.map((k) => cache.delete(k)));
      n = keys.length - drop.length;
    }
    counts.set(name, n);
  });
}

function mapAnswer(event, kind, user) {
  const req = event.request;
  const bounded = kind === "tile";
  const name = (bounded ? MAP_TILES : MAP_DOCS) + user;
  const key = req.url; // one cache per user: the token (and its Vary) does not matter inside it
  const epoch = epochs.get(user) || 0;
  const fromNetwork = () => fetch(req).then((res) => {
    if (res.status === 200 && res.type === "basic") event.waitUntil(store(name, key, res.clone(), user, epoch, bounded));
    return res;
  });
  return (async () => {
    const hit = () => caches.match(key, { cacheName: name, ignoreVary: true }); // creates no empty cache
    if (kind === "doc") {
      try {
        return await fromNetwork();
      } catch (err) {
        const cached = await hit();
        if (cached) return cached;
        throw err;
      }
    }
    const cached = await hit();
    if (cached) { event.waitUntil(fromNetwork().catch(() => {})); return cached; }
    return fromNetwork();
  })();
}

self.addEventListener("message", (event) => {
  const msg = event.data || {};
  const reply = (value) => event.ports[0]?.postMessage(value);
  if (msg.type === "session") {
    pageUser = msg.user === null || msg.user === undefined ? null : String(msg.user);
    reply({ ok: true });
  } else if (msg.type === "logout") {
    const user = String(msg.user);
    epochs.set(user, (epochs.get(user) || 0) + 1);
    if (pageUser === user) pageUser = null;
    const names = [MAP_DOCS + user, MAP_TILES + user];
    event.waitUntil(Promise.all(names.map((n) => serial(n, () => caches.delete(n)).then(() => counts.delete(n))))
      .then(() => reply({ ok: true }), (e) => reply({ ok: false, error: String(e) })));
  } else if (msg.type === "limits") {
    // The tile cache's bound (a deployment for phones with little storage, or a test, lowers it).
    const max = Number(msg.max), keep = Number(msg.keep ?? Math.floor(max * 0.9));
    if (!(max > 0 && keep > 0 && keep <= max)) { reply({ ok: false, error: "limits" }); return; }
    limits = { max, keep };
    event.waitUntil(caches.open(MAP_SETTINGS)
      .then((c) => c.put(LIMITS_KEY, new Response(JSON.stringify(limits), { headers: { "Content-Type": "application/json" } })))
      .then(() => reply({ ok: true, limits })));
  } else if (msg.type === "flush") {
    // Answers once every map cache write queued so far has been done (what "the map is cached" waits for).
    event.waitUntil(Promise.all([...chains.values()]).then(() => reply({ ok: true })));
  }
});

// ---- fetch ------------------------------------------------------------------------------------------------

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET") return;
  const kind = mapKind(url);
  if (kind) {
    const user = userOf(req);
    if (user !== null) event.respondWith(mapAnswer(event, kind, user));
    return; // no user known: straight to the network, nothing kept
  }
  if (!isShell(url)) return; // API calls (and case/hot-spot tiles) go to the network as usual
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

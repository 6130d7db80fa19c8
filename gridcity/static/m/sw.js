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
//
// On the page's word ("precache": the user's token and position) it also fetches, nearest first, the tiles of
// those four layers around the position that it does not hold yet, so a street never looked at online still shows
// when the inspector walks into it with no signal. They go through the same fetch-and-store as the tiles the map
// asks for (same per-user cache, same bound, dropped by logout); a pre-cache takes at most PRECACHE_MAX tiles and
// never more than half of what the bound keeps, so it does not push out the map the inspector has looked at.
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
const PRECACHE_MAX = 400; // tiles per pre-cache (1 km at zooms 16 and 17 is about 90 per layer)
const PRECACHE_MAX_RADIUS = 2000; // metres
const PRECACHE_PARALLEL = 3; // tile requests at once: the page's own requests must still get through

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

/** Store `res` under `key` in `name` unless the user logged out since the request began; bound a tile cache.
 *  Resolves to true when it was stored. */
function store(name, key, res, user, epoch, bounded) {
  return serial(name, async () => {
    if ((epochs.get(user) || 0) !== epoch) return false;
    const cache = await caches.open(name);
    const isNew = !(await cache.match(key, { ignoreVary: true }));
    await cache.put(key, res);
    if (!bounded) return true;
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
    return true;
  });
}

/** The one way a map answer gets into a cache, for the map's own requests and for a pre-cache alike: fetch `req`
 *  and store a good answer in the user's cache for `kind`. `keep(promise)` is handed the write (waitUntil). */
function fetchAndStore(req, kind, user, epoch, keep) {
  const bounded = kind === "tile";
  const name = (bounded ? MAP_TILES : MAP_DOCS) + user;
  return fetch(req).then((res) => {
    if (res.status === 200 && res.type === "basic") keep(store(name, req.url, res.clone(), user, epoch, bounded));
    return res;
  });
}

/** The cached answer for `url` in the user's cache for `kind` (creates no empty cache), or undefined. */
function cachedAnswer(url, kind, user) {
  return caches.match(url, { cacheName: (kind === "tile" ? MAP_TILES : MAP_DOCS) + user, ignoreVary: true });
}

/** Network first, the cached copy when the network fails (the style and TileJSON documents). */
async function networkFirst(req, kind, user, epoch, keep) {
  try {
    return await fetchAndStore(req, kind, user, epoch, keep);
  } catch (err) {
    const cached = await cachedAnswer(req.url, kind, user);
    if (cached) return cached;
    throw err;
  }
}

function mapAnswer(event, kind, user) {
  const req = event.request; // one cache per user: the token (and its Vary) does not matter inside it
  const epoch = epochs.get(user) || 0;
  const keep = (p) => event.waitUntil(p);
  return (async () => {
    if (kind === "doc") return networkFirst(req, kind, user, epoch, keep);
    const cached = await cachedAnswer(req.url, kind, user);
    if (cached) { event.waitUntil(fetchAndStore(req, kind, user, epoch, keep).catch(() => {})); return cached; }
    return fetchAndStore(req, kind, user, epoch, keep);
  })();
}

// ---- pre-cache around a position --------------------------------------------------------------------------

const M_PER_DEG = 111320;

function tileX(lon, n) { return Math.floor((lon + 180) / 360 * n); }
function tileY(lat, n) {
  const r = lat * Math.PI / 180;
  return Math.floor((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2 * n);
}
function tileLon(x, n) { return x / n * 360 - 180; }
function tileLat(y, n) { return Math.atan(Math.sinh(Math.PI * (1 - 2 * y / n))) * 180 / Math.PI; }

/** The tiles {z, x, y, d} within `radius` metres of (lon, lat) at `zooms`, d being the distance from the point to
 *  the tile (0 for the tile it is in), nearest first and, at one distance, the closer zoom first. */
function tilesAround(lon, lat, radius, zooms) {
  const cos = Math.cos(lat * Math.PI / 180);
  const dLon = radius / (M_PER_DEG * cos), dLat = radius / M_PER_DEG;
  const out = [];
  for (const z of zooms) {
    const n = 2 ** z;
    const last = n - 1, clamp = (v) => Math.min(last, Math.max(0, v));
    for (let x = clamp(tileX(lon - dLon, n)); x <= clamp(tileX(lon + dLon, n)); x++) {
      for (let y = clamp(tileY(lat + dLat, n)); y <= clamp(tileY(lat - dLat, n)); y++) {
        const w = tileLon(x, n), e = tileLon(x + 1, n), north = tileLat(y, n), s = tileLat(y + 1, n);
        const cx = Math.min(Math.max(lon, w), e), cy = Math.min(Math.max(lat, s), north);
        const d = Math.hypot((cx - lon) * M_PER_DEG * cos, (cy - lat) * M_PER_DEG);
        if (d <= radius) out.push({ z, x, y, d, w, s, e, n: north });
      }
    }
  }
  return out.sort((a, b) => a.d - b.d || b.z - a.z);
}

let precaching = Promise.resolve(); // one pre-cache at a time: a request during one waits for it, then runs

/** Fetch and keep the base/admin/grid/component tiles around (lon, lat) that the user's cache does not hold.
 *  The tile URLs come from each layer's TileJSON (the same URLs MapLibre asks for, query string included), within
 *  its zoom range and bounds; anything that is not a cached layer's tile by mapKind is never asked for. */
async function precache({ token, lon, lat, radius, zooms, style }, user, epoch) {
  const headers = { Authorization: `Bearer ${token}` };
  if (user === null) return { ok: false, error: "user" };
  const waits = [];
  const keep = (p) => waits.push(p);
  const r = Math.min(Math.max(Number(radius) || 0, 0), PRECACHE_MAX_RADIUS);
  const zs = (Array.isArray(zooms) ? zooms : []).map(Number).filter((z) => Number.isInteger(z) && z >= 0 && z <= 22);
  if (!(Number.isFinite(lon) && Number.isFinite(lat) && r > 0 && zs.length)) return { ok: false, error: "args" };
  // The style (the map opened offline needs it) and the glyphs of its labels' Latin range (codes, digits; the
  // Chinese names are drawn with the phone's own font), kept as the map keeps them.
  const styleUrl = new URL(String(style || "/tiles/style.json"), self.location.origin);
  if (mapKind(styleUrl) === "doc") {
    try {
      const doc = await (await networkFirst(new Request(styleUrl.href, { headers }), "doc", user, epoch, keep)).json();
      const stacks = new Set((doc.layers || []).map((l) => l.layout?.["text-font"])
        .filter((f) => Array.isArray(f) && f.every((x) => typeof x === "string")).map((f) => f.join(",")));
      for (const stack of stacks) {
        const url = new URL(String(doc.glyphs || "").replace("{fontstack}", stack).replace("{range}", "0-255"), self.location.origin);
        if (mapKind(url) === "glyph" && !(await cachedAnswer(url.href, "glyph", user))) {
          await fetchAndStore(new Request(url.href, { headers }), "glyph", user, epoch, keep).catch(() => {});
        }
      }
    } catch { /* offline or no style: the tiles below still help once it is cached */ }
  }
  const layers = [];
  for (const layer of CACHED_TILE_LAYERS) {
    const doc = new Request(new URL(`/tiles/${layer}.json`, self.location.origin).href, { headers });
    try {
      const res = await networkFirst(doc, "doc", user, epoch, keep);
      if (res.ok) layers.push(await res.json());
    } catch { /* no TileJSON, not even cached: that layer is skipped */ }
  }
  const { keep: bound } = await currentLimits();
  const wanted = [];
  for (const t of tilesAround(lon, lat, r, zs)) {
    for (const tj of layers) {
      const [w, s, e, n] = tj.bounds || [-180, -90, 180, 90];
      if (t.z < (tj.minzoom ?? 0) || t.z > (tj.maxzoom ?? 22) || t.e < w || t.w > e || t.n < s || t.s > n) continue;
      const url = new URL(String(tj.tiles?.[0] || "").replace("{z}", t.z).replace("{x}", t.x).replace("{y}", t.y), self.location.origin);
      if (mapKind(url) === "tile") wanted.push(url.href); // never a case or hot-spot tile, never another origin
    }
  }
  const todo = wanted.slice(0, Math.min(PRECACHE_MAX, Math.floor(bound / 2)));
  let stored = 0, present = 0, failed = 0, next = 0, denied = false;
  const worker = async () => {
    while (next < todo.length && !denied && (epochs.get(user) || 0) === epoch) {
      const url = todo[next++];
      if (await cachedAnswer(url, "tile", user)) { present += 1; continue; } // refreshed when viewed (SWR)
      try {
        const res = await fetchAndStore(new Request(url, { headers }), "tile", user, epoch,
          (p) => keep(p.then((ok) => { if (ok) stored += 1; }, () => { failed += 1; })));
        if (res.status === 401 || res.status === 403) denied = true; // the login ran out: the rest would be too
        if (res.status !== 200) failed += 1;
      } catch {
        failed += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: PRECACHE_PARALLEL }, worker));
  await Promise.all(waits);
  if (denied) return { ok: false, error: "auth", stored };
  if ((epochs.get(user) || 0) !== epoch) return { ok: false, error: "logout", stored };
  return { ok: true, stored, present, failed, tiles: todo.length };
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
  } else if (msg.type === "precache") {
    // The user and their logout count as the message arrives: a logout after it, even while it waits behind
    // another pre-cache, means nothing of it is stored.
    const user = userOf(new Request("/", { headers: { Authorization: `Bearer ${msg.token}` } }));
    const epoch = epochs.get(user) || 0;
    const run = precaching.then(() => precache(msg, user, epoch)).catch((e) => ({ ok: false, error: String(e) }));
    precaching = run;
    event.waitUntil(run.then(reply));
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

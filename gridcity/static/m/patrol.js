// Patrol duty: while on duty the phone's track (watchPosition) is kept in IndexedDB point by point and uploaded
// in batches through POST /mobile/v1/tracks. A batch gets its Idempotency-Key when it is formed and keeps it
// until the server answers, so a batch re-sent after a dropped connection is stored once.
import { delMeta, meta, newKey, setMeta, trackAdd, trackAll, trackDelete } from "./store.js";

const MIN_GAP_MS = 5000; // a point at least every 5 s while moving…
const MIN_MOVE_M = 10; // …or as soon as the phone moved 10 m
const MAX_ACCURACY_M = 200;
const BATCH = 500;
let watchId = null, last = null, timer = null, getToken = () => null, changed = () => {}, onFix = () => {};
export const state = { on: false, recorded: 0, unsent: 0, coverage: null };

/** `fix({lon, lat})` hears every usable fix on duty (the app pre-caches the map around it). */
export function init(tokenFn, onChange, fix = () => {}) { getToken = tokenFn; changed = onChange; onFix = fix; }

export async function resume() {
  if (await meta("duty")) start(false);
  await count();
}

async function count() { state.unsent = (await trackAll()).length + ((await meta("trackBatch"))?.points.length || 0); changed(); }

export async function start(save = true) {
  if (watchId !== null || !navigator.geolocation) return;
  state.on = true;
  if (save) await setMeta("duty", true);
  watchId = navigator.geolocation.watchPosition(onPosition, () => {}, { enableHighAccuracy: true, maximumAge: 5000 });
  timer = setInterval(upload, 30000);
  changed();
}

export async function stop() {
  if (watchId !== null) navigator.geolocation.clearWatch(watchId);
  watchId = null;
  clearInterval(timer);
  state.on = false;
  await delMeta("duty");
  changed();
  upload();
}

function metres(a, b) {
  const r = Math.PI / 180, x = (b.lon - a.lon) * r * Math.cos((a.lat + b.lat) / 2 * r), y = (b.lat - a.lat) * r;
  return Math.hypot(x, y) * 6371008.8;
}

async function onPosition(pos) {
  const now = Date.now();
  if (pos.coords.accuracy > MAX_ACCURACY_M) return;
  const here = { lon: pos.coords.longitude, lat: pos.coords.latitude };
  onFix(here);
  if (last && now - last.t < MIN_GAP_MS && metres(last, here) < MIN_MOVE_M) return;
  last = { t: now, ...here };
  await trackAdd({ at: new Date(pos.timestamp || now).toISOString(), lon: pos.coords.longitude, lat: pos.coords.latitude,
    accuracy_m: Math.round(pos.coords.accuracy * 10) / 10 });
  state.recorded += 1;
  await count();
  if (state.unsent >= 20) upload();
}

let uploading = false;
/** Send the pending batch (or form one from the buffered points). */
export async function upload() {
  const token = getToken();
  if (uploading || !token) return;
  uploading = true;
  try {
    for (;;) {
      let batch = await meta("trackBatch");
      if (!batch) {
        const points = (await trackAll()).sort((a, b) => a.at.localeCompare(b.at)).slice(0, BATCH);
        if (!points.length) break;
        batch = { key: newKey(), points };
        await setMeta("trackBatch", batch);
        await trackDelete(points.map((p) => p.at));
      }
      let r;
      try {
        r = await fetch("/mobile/v1/tracks", { method: "POST", headers: { "Content-Type": "application/json",
          Authorization: `Bearer ${token}`, "Idempotency-Key": batch.key }, body: JSON.stringify({ points: batch.points }) });
      } catch { break; }
      if (r.ok || (r.status >= 400 && r.status < 500 && r.status !== 401 && r.status !== 409)) {
        await delMeta("trackBatch"); // stored (or refused point by point: nothing more to do with it)
      } else break;
    }
  } finally {
    uploading = false;
    await count();
  }
}

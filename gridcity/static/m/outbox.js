// The outbox: every submission from the phone (report, task result, case action) is first stored in IndexedDB
// with its photos and its Idempotency-Key, then sent — now if online, else when the network returns or the app
// opens — and retried with the same key until the server answers. 2xx: sent. 4xx: refused, kept with the reason
// until the user corrects or deletes it. 401: waits for a new login. Network errors and 5xx: retried later.
import { outboxAll, outboxDelete, outboxGet, outboxPut } from "./store.js";

const listeners = new Set();
const progress = new Map(); // item id -> fraction uploaded (memory only)
let session = null; // {token, user}
let running = false, again = false, timer = null, backoff = 3000;
const RETRY_MAX = 60000;
const SENT_KEEP_MS = 24 * 3600 * 1000;

const progressListeners = new Set();
let pendingChange = null;
export function onChange(fn) { listeners.add(fn); }
/** `fn(id, fraction)` on upload progress (no re-reading of the outbox: the list updates its bar in place). */
export function onProgress(fn) { progressListeners.add(fn); }
// State changes are coalesced (a draining outbox changes many times a second; the list is redrawn at most ~4×/s).
function changed() {
  if (pendingChange) return;
  pendingChange = setTimeout(() => { pendingChange = null; for (const fn of listeners) fn(); }, 250);
}
export function progressOf(id) { return progress.get(id); }
export function setSession(s) { session = s; if (s) kick(); }

/** Keep a new submission (state queued) and try to send it. */
export async function enqueue(item) {
  item.state = "queued";
  item.attempts = 0;
  item.created_at = item.created_at || new Date().toISOString();
  item.user = item.user || session?.user?.username;
  await outboxPut(item);
  changed();
  kick();
}

export async function remove(id) { await outboxDelete(id); changed(); }

export async function retry(id) {
  const item = await outboxGet(id);
  if (item && item.state !== "sent") { item.state = "queued"; item.error = null; await outboxPut(item); changed(); kick(); }
}

export async function clearSent() {
  for (const it of await outboxAll()) if (it.state === "sent") await outboxDelete(it.id);
  changed();
}

/** Send what is waiting, one item at a time, oldest first. Safe to call any time (one drain runs at once). */
export function kick() {
  clearTimeout(timer);
  if (running) { again = true; return; }
  drain();
}

function schedule(ms) { clearTimeout(timer); timer = setTimeout(kick, ms); }

async function drain() {
  running = true;
  try {
    do {
      again = false;
      const now = Date.now();
      for (const it of await outboxAll()) {
        if (it.state === "sent" && now - Date.parse(it.updated_at) > SENT_KEEP_MS) await outboxDelete(it.id);
      }
      if (!session?.token) break;
      const waiting = (await outboxAll()).filter((it) => it.user === session.user.username &&
        (it.state === "queued" || it.state === "sending" || it.state === "login" || it.state === "retry"));
      for (const item of waiting) {
        const outcome = await send(item);
        if (outcome === "stop") { break; }
      }
    } while (again);
  } finally {
    running = false;
    // An observable "a drain pass has ended" (tests wait for it instead of waiting some time).
    document.documentElement.dataset.outboxDrains = String(Number(document.documentElement.dataset.outboxDrains || 0) + 1);
    changed();
  }
}

function body(item) {
  if (item.json !== undefined) return JSON.stringify(item.json);
  const fd = new FormData();
  fd.append(item.field, JSON.stringify(item.payload));
  for (const [name, blobs] of Object.entries(item.files || {})) {
    blobs.forEach((b, i) => fd.append(name, b, b.name || `${name}-${i + 1}.jpg`));
  }
  return fd;
}

function xhr(item) {
  return new Promise((resolve) => {
    const r = new XMLHttpRequest();
    r.open("POST", item.path);
    r.setRequestHeader("Authorization", `Bearer ${session.token}`);
    r.setRequestHeader("Idempotency-Key", item.key);
    if (item.json !== undefined) r.setRequestHeader("Content-Type", "application/json");
    r.timeout = 300000;
    r.upload.onprogress = (e) => {
      if (e.lengthComputable) {
        progress.set(item.id, e.loaded / e.total);
        for (const fn of progressListeners) fn(item.id, e.loaded / e.total);
      }
    };
    r.onload = () => {
      let data = null;
      try { data = JSON.parse(r.responseText); } catch { /* not JSON */ }
      resolve({ status: r.status, data });
    };
    r.onerror = r.ontimeout = r.onabort = () => resolve({ status: 0, data: null });
    r.send(body(item));
  });
}

async function send(item) {
  item.state = "sending";
  item.attempts = (item.attempts || 0) + 1;
  await outboxPut(item);
  progress.set(item.id, 0);
  changed();
  const { status, data } = await xhr(item);
  progress.delete(item.id);
  const fresh = await outboxGet(item.id);
  if (!fresh) return "next"; // deleted while sending
  if (status >= 200 && status < 300) {
    fresh.state = "sent";
    fresh.result = data;
    fresh.error = null;
    fresh.files = {}; // the server has the photos now; free the phone's space
    await outboxPut(fresh);
    backoff = 3000;
    changed();
    return "next";
  }
  const err = data?.detail?.[0] || null;
  if (status === 401) {
    fresh.state = "login";
    fresh.error = err;
    await outboxPut(fresh);
    session = { ...session, token: null };
    changed();
    for (const fn of loginListeners) fn(err);
    return "stop";
  }
  const transient = status === 0 || status >= 500 || status === 408 || status === 429 ||
    (status === 409 && err?.type === "idempotency.in_progress");
  if (transient) {
    fresh.state = "retry";
    fresh.error = { type: status === 0 ? "network" : "server" };
    await outboxPut(fresh);
    schedule(backoff);
    backoff = Math.min(backoff * 2, RETRY_MAX);
    changed();
    return "stop";
  }
  fresh.state = "refused";
  fresh.error = err ? { ...err, status } : { type: `http.${status}`, status };
  await outboxPut(fresh);
  changed();
  return "next";
}

const loginListeners = new Set();
/** Called when the server says the login is no longer valid (401): the app asks for a new login. */
export function onLoginNeeded(fn) { loginListeners.add(fn); }

window.addEventListener("online", () => { backoff = 3000; kick(); });

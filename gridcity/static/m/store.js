// Everything not yet sent lives in IndexedDB (the `idb` wrapper from npm, served at /vendor/idb/):
// outbox items with their photos as Blobs, patrol points, and small key-value facts (login, classes, caches).
import { openDB } from "/vendor/idb/index.js";

const dbp = openDB("chengguantong", 1, {
  upgrade(db) {
    db.createObjectStore("outbox", { keyPath: "id" });
    db.createObjectStore("meta");
    db.createObjectStore("track", { keyPath: "at" });
  },
});

export async function meta(key) { return (await dbp).get("meta", key); }
export async function setMeta(key, value) { return (await dbp).put("meta", value, key); }
export async function delMeta(key) { return (await dbp).delete("meta", key); }
/** Delete every meta entry whose key starts with `prefix` (a user's cached case details at logout). */
export async function delMetaPrefix(prefix) {
  const db = await dbp;
  const keys = (await db.getAllKeys("meta")).filter((k) => typeof k === "string" && k.startsWith(prefix));
  const tx = db.transaction("meta", "readwrite");
  await Promise.all([...keys.map((k) => tx.store.delete(k)), tx.done]);
}

export async function outboxAll() {
  const items = await (await dbp).getAll("outbox");
  return items.sort((a, b) => a.created_at.localeCompare(b.created_at));
}
export async function outboxGet(id) { return (await dbp).get("outbox", id); }
export async function outboxPut(item) { item.updated_at = new Date().toISOString(); return (await dbp).put("outbox", item); }
export async function outboxDelete(id) { return (await dbp).delete("outbox", id); }

export async function trackAdd(point) { return (await dbp).put("track", point); }
export async function trackAll() { return (await dbp).getAll("track"); }
export async function trackDelete(ats) {
  const tx = (await dbp).transaction("track", "readwrite");
  await Promise.all([...ats.map((a) => tx.store.delete(a)), tx.done]);
}

/** A new idempotency key: made once, when a submission is composed, and kept with it until the server answers. */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// 城管通: the field app of gridcity for inspectors (监督员) and department field staff (专业部门).
// Plain ES modules, no bundler. Every submission goes through the outbox (outbox.js) so nothing made on the
// phone is lost or sent twice; reads are cached in IndexedDB so the lists still show without a network.
import { actionName, errorMessage, errorText, getLang, loadErrors, setLang, statusName, t } from "./i18n.js";
import * as store from "./store.js";
import * as outbox from "./outbox.js";
import * as patrol from "./patrol.js";
import { checkPhoto } from "./photos.js";
import { createMiniMap, MAP_ZOOM } from "./minimap.js";

const S = { session: null, config: null, classes: [], recent: [], view: null, here: null, form: null, detail: null };
const root = document.getElementById("app");

// ---- small helpers ---------------------------------------------------------------------------------------

function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "testid") el.dataset.testid = v;
    else if (k === "class") el.className = v;
    else if (k in el && k !== "list") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false) el.append(kid instanceof Node ? kid : String(kid));
  return el;
}
const fmtTime = (iso) => iso ? new Date(iso).toLocaleString(getLang() === "zh" ? "zh-CN" : "en-GB", { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }) : "";
const className = (key) => S.classes.find((c) => c.key === key)?.name_zh || key;
function toast(msg) {
  const el = h("div", { class: "toast", testid: "toast" }, msg);
  document.body.append(el);
  setTimeout(() => el.remove(), 3500);
}
function haversine(a, b) {
  const R = 6371008.8, r = Math.PI / 180;
  const dLat = (b.lat - a.lat) * r, dLon = (b.lon - a.lon) * r;
  const x = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * r) * Math.cos(b.lat * r) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.sqrt(x));
}

/** Why a position outside the city cannot be reported: the catalogue's message and what to do. */
function outsideText() { return `${errorMessage("geo.outside_city") || ""}。${t("report.outside")}`.replace(/^。/, ""); }

class ApiError extends Error { constructor(detail) { super(detail.type); this.detail = detail; } }

/** When the server last answered (any status; API calls never come from the worker's cache), 0 after a failure. */
let reachedAt = 0;
/** Online enough to fetch ahead: the phone says so, or the server answered within the last minute. Chromium takes
 *  navigator.onLine from the device's network interfaces, so it can say offline while the server answers (a
 *  machine with loopback only, where the tests run without a network); a real phone without a network gets no
 *  answer either. */
const onlineNow = () => navigator.onLine || Date.now() - reachedAt < 60000;

async function api(path, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  if (S.session?.token) headers.Authorization = `Bearer ${S.session.token}`;
  let r;
  try { r = await fetch(path, { ...opts, headers }); } catch { reachedAt = 0; throw new ApiError({ type: "network" }); }
  reachedAt = Date.now();
  let data = null;
  try { data = await r.json(); } catch { /* empty */ }
  if (r.status === 401 && S.session?.token) { loginNeeded(); throw new ApiError({ type: "auth.expired", status: 401 }); }
  if (!r.ok) throw new ApiError({ ...(data?.detail?.[0] || { type: `http.${r.status}` }), status: r.status });
  return data;
}

/** A cached read: the server's answer when online (and stored), else the last stored answer. */
async function cached(key, path) {
  try {
    const data = await api(path);
    await store.setMeta(key, data);
    return { data, fresh: true };
  } catch (e) {
    if (e.detail?.status && e.detail.status !== 401) throw e;
    return { data: await store.meta(key), fresh: false };
  }
}

function position(timeout = 15000) {
  return new Promise((resolve) => {
    if (!navigator.geolocation) return resolve(null);
    navigator.geolocation.getCurrentPosition(
      (p) => {
        S.here = { lon: p.coords.longitude, lat: p.coords.latitude, accuracy: p.coords.accuracy };
        precacheAround(S.here);
        resolve(S.here);
      },
      // A fresh fix every time (maximumAge 0): a report or an on-site answer must carry where the phone is now,
      // not where it was up to seconds ago (a cached fix made a report from outside the city look inside).
      () => resolve(null), { enableHighAccuracy: true, timeout, maximumAge: 0 });
  });
}

// ---- the map around the phone, for when the signal goes -------------------------------------------------------

const PRECACHE_RADIUS_M = 1000;
const PRECACHE_MOVE_M = 500; // a new pre-cache once the phone is this far from where the last one was made
let precachedAt = null; // where the last pre-cache (of this login) was made
let precacheRunning = false, precacheNext = null;

/** False when the token's `exp` has passed (an expired login fetches nothing; the next answer asks for a login). */
function tokenLive(token) {
  try {
    const b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const { exp } = JSON.parse(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")));
    return !(typeof exp === "number" && exp * 1000 <= Date.now());
  } catch {
    return false;
  }
}

/** Have the service worker fetch the base/admin/grid/component tiles within PRECACHE_RADIUS_M of `here` that it
 *  does not hold yet (sw.js "precache"): on a fix after login or app start, on duty, and after moving
 *  PRECACHE_MOVE_M. Not offline, not with the data saver on; it runs in the worker, the page does not wait. The
 *  number of tiles stored is left on <html data-precached> (data-precache-skipped="save-data" when the data saver
 *  stopped it). */
async function precacheAround(here) {
  if (!here) return;
  if (precacheRunning) { precacheNext = here; return; } // looked at again when the running one is done
  const session = S.session;
  if (!session?.token || !tokenLive(session.token) || !onlineNow()) return;
  if (navigator.connection?.saveData) { document.documentElement.dataset.precacheSkipped = "save-data"; return; }
  if (!("serviceWorker" in navigator) || (precachedAt && haversine(precachedAt, here) < PRECACHE_MOVE_M)) return;
  precacheRunning = true;
  precachedAt = here;
  try {
    const reg = await navigator.serviceWorker.ready; // right after the first login the worker may still install
    const r = await new Promise((resolve) => {
      const ch = new MessageChannel();
      ch.port1.onmessage = (e) => resolve(e.data);
      reg.active.postMessage({ type: "precache", token: session.token, lon: here.lon, lat: here.lat,
        radius: PRECACHE_RADIUS_M, zooms: [MAP_ZOOM, MAP_ZOOM - 1], style: `/tiles/style.json?lang=${getLang()}` }, [ch.port2]);
    });
    if (S.session !== session) return; // logged out (or another login) meanwhile: that one starts afresh
    if (!r?.ok || r.failed) precachedAt = null; // the next fix tries again (tiles already stored are not fetched)
    if (r?.ok) document.documentElement.dataset.precached = String(r.stored);
  } catch {
    precachedAt = null;
  } finally {
    precacheRunning = false;
    const next = precacheNext;
    precacheNext = null;
    if (next) precacheAround(next);
  }
}

// ---- login -------------------------------------------------------------------------------------------------

function loginNeeded() {
  if (S.session) S.session = { ...S.session, token: null };
  store.setMeta("session", S.session);
  // Several answers can say 401 at once (a read and the outbox): the form already shown stays, with what the
  // user has typed into it; only its message is set.
  const shown = root.querySelector("form.login");
  const note = shown?.querySelector("[data-testid=login-message]");
  if (note) { note.textContent = t("login.expired"); note.classList.remove("hidden"); return; }
  renderLogin(t("login.expired"));
}
outbox.onLoginNeeded(() => loginNeeded());

let loginSeq = 0;
async function renderLogin(message) {
  const seq = ++loginSeq; // of two calls racing through the await below, only the last draws
  S.view = null;
  const waiting = (await store.outboxAll()).filter((i) => i.state !== "sent");
  if (seq !== loginSeq) return;
  const owners = [...new Set(waiting.map((i) => i.user))];
  const err = h("p", { class: "error", testid: "login-error" });
  const user = h("input", { testid: "login-username", autocomplete: "username", value: S.session?.user?.username || "", placeholder: t("login.username") });
  const pass = h("input", { testid: "login-password", type: "password", autocomplete: "current-password", placeholder: t("login.password") });
  let busy = false; // a second tap or Enter while the first login is on its way does nothing
  const submitButton = h("button", { testid: "login-submit", type: "submit", class: "primary" }, t("login.submit"));
  const form = h("form", { class: "login", onsubmit: async (e) => {
    e.preventDefault();
    if (busy) return;
    busy = true;
    submitButton.disabled = true;
    err.textContent = "";
    let ok = false;
    try {
      const r = await fetch("/mobile/v1/auth/token", { method: "POST", body: new URLSearchParams({ username: user.value.trim(), password: pass.value }) });
      reachedAt = Date.now();
      const data = await r.json().catch(() => null);
      if (!r.ok) { err.textContent = errorText({ ...(data?.detail?.[0] || { type: `http.${r.status}` }), status: r.status }); return; }
      S.session = { token: data.access_token, user: data.user };
      await store.setMeta("session", S.session);
      ok = true;
      start();
    } catch { err.textContent = t("login.offline"); } finally {
      if (!ok) { busy = false; submitButton.disabled = false; }
    }
  } },
  h("h1", {}, t("app")),
  h("p", { class: message ? "notice" : "notice hidden", testid: "login-message" }, message || ""),
  owners.length && owners[0] ? h("p", { class: "notice" }, t("login.other", { u: owners.join("、") })) : null,
  h("label", {}, t("login.username"), user), h("label", {}, t("login.password"), pass),
  submitButton, err,
  h("button", { type: "button", class: "link", onclick: () => { setLang(getLang() === "zh" ? "en" : "zh"); renderLogin(message); } }, t("lang")));
  root.replaceChildren(form);
}

// ---- shell -------------------------------------------------------------------------------------------------

const isInspector = () => S.session?.user?.role === "inspector";

/** Ask the service worker (when one is active) and wait for its answer; null without one. */
async function askWorker(msg) {
  const reg = "serviceWorker" in navigator ? await navigator.serviceWorker.getRegistration("/m/").catch(() => null) : null;
  const sw = reg?.active;
  if (!sw) return null;
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = (e) => resolve(e.data);
    sw.postMessage(msg, [ch.port2]);
  });
}

/** Log out: this user's cached map and reads go with the login, and the outbox stops sending for them. */
async function logout() {
  const uid = S.session?.user?.id;
  S.session = null;
  precachedAt = null;
  await store.delMeta("session");
  outbox.setSession(null);
  for (const key of ["tasks", "mine", "coverage"]) await store.delMeta(key);
  await store.delMetaPrefix("case:");
  if (uid !== undefined && uid !== null) await askWorker({ type: "logout", user: uid });
  header = null; // the next login draws its own header
  renderLogin();
}

async function start() {
  outbox.setSession(S.session);
  askWorker({ type: "session", user: S.session?.user?.id ?? null });
  precachedAt = null; // a login of its own: its own map cache
  patrol.init(() => S.session?.token, () => { if (S.view) renderHeader(); if (S.view === "patrol") updatePatrol(); },
    (here) => precacheAround(here));
  if (S.here) precacheAround(S.here);
  if (!S.classes.length) await refreshReference(); else refreshReference();
  go("tasks");
  if (isInspector()) patrol.resume().then(() => patrol.upload());
}

async function refreshReference() {
  S.config = (await cached("config", "/mobile/v1/config").catch(() => ({ data: null }))).data || S.config;
  const cls = (await cached("classes", "/mobile/v1/classes").catch(() => ({ data: null }))).data;
  if (cls) { S.classes = cls.items; S.recent = cls.recent || []; }
}

let header, nav, main;
let headerDrawn = null, navDrawn = null;
function renderHeader() {
  if (!header) return;
  const online = navigator.onLine;
  // Redrawn only on a change: a redraw replaces the buttons, and a tap landing in between was lost.
  const sig = JSON.stringify([online, isInspector(), patrol.state.on, getLang()]);
  if (sig === headerDrawn && header.childElementCount) return;
  headerDrawn = sig;
  const duty = isInspector() ? h("button", { testid: "duty-toggle", class: patrol.state.on ? "duty on" : "duty", "aria-pressed": String(patrol.state.on),
    onclick: () => (patrol.state.on ? patrol.stop() : patrol.start()) }, patrol.state.on ? t("patrol.on") : t("patrol.off")) : null;
  header.replaceChildren(
    h("span", { class: "title" }, t("app")),
    h("span", { class: online ? "net on" : "net off", testid: "network" }, online ? t("online") : t("offline")),
    duty,
    h("button", { class: "link", testid: "lang-switch", onclick: () => { setLang(getLang() === "zh" ? "en" : "zh"); go(S.view); } }, t("lang")),
    h("button", { class: "link", testid: "logout", onclick: () => logout() }, t("logout")));
}

async function renderNav() {
  const pending = (await store.outboxAll()).filter((i) => i.state !== "sent").length;
  const sig = JSON.stringify([S.view, pending, isInspector(), getLang()]);
  if (sig === navDrawn && nav.childElementCount) return;
  navDrawn = sig;
  const tab = (view, testid, label, extra) => h("button", { testid, class: S.view === view ? "tab active" : "tab", onclick: () => go(view) }, label, extra || null);
  nav.replaceChildren(
    isInspector() ? tab("report", "new-report", t("nav.report")) : null,
    tab("tasks", "tasks", t("nav.tasks")),
    isInspector() ? tab("mine", "my-reports", t("nav.mine")) : null,
    tab("outbox", "outbox", t("nav.outbox"), pending ? h("span", { class: "badge", testid: "outbox-count" }, String(pending)) : null),
    isInspector() ? tab("patrol", "patrol", t("nav.patrol")) : null);
}

function go(view, arg) {
  if (S.form?.map) { S.form.map.remove(); S.form.map = null; }
  S.view = view;
  S.seq = (S.seq || 0) + 1; // an answer for an earlier view must not draw over this one
  if (!header) {
    header = h("header");
    main = h("main");
    nav = h("nav");
    headerDrawn = navDrawn = null;
  }
  root.replaceChildren(header, main, nav);
  renderHeader();
  renderNav();
  outboxDrawn = null;
  main.replaceChildren(h("p", { class: "muted" }, t("loading")));
  ({ report: renderReport, tasks: renderTasks, mine: renderMine, outbox: renderOutbox, patrol: renderPatrol, detail: renderDetail })[view](arg);
}

outbox.onProgress((id, fraction) => {
  const bar = S.view === "outbox" && main?.querySelector(`[data-testid=outbox-item][data-key="${CSS.escape(id)}"] progress`);
  if (bar) bar.value = fraction;
});
outbox.onChange(() => {
  if (!S.session || !nav || !root.contains(nav)) return;
  renderNav();
  if (S.view === "outbox") renderOutbox();
});
window.addEventListener("online", () => {
  if (header && root.contains(header)) renderHeader();
  refreshReference();
  patrol.upload();
  precacheAround(S.here);
});
window.addEventListener("offline", () => { reachedAt = 0; if (header && root.contains(header)) renderHeader(); });

// ---- photos ------------------------------------------------------------------------------------------------

/** A photo picker (camera + gallery) that checks each file before keeping it; `list` is the array it fills. */
function photoPicker(list, { testid, label, onChange }) {
  const thumbs = h("div", { class: "thumbs" });
  const errors = h("div", { class: "error", testid: `${testid}-error` });
  const redraw = () => {
    thumbs.replaceChildren(...list.map((f, i) => h("figure", {}, h("img", { src: URL.createObjectURL(f), alt: "" }),
      h("button", { type: "button", class: "remove", onclick: () => { list.splice(i, 1); redraw(); onChange?.(); } }, "×"))));
  };
  const add = async (files) => {
    const msgs = [];
    for (const f of files) {
      if (list.length >= (S.config?.max_photos || 9)) { msgs.push(t("report.too_many")); break; }
      const problem = await checkPhoto(f, S.config);
      if (problem) msgs.push(problem); else list.push(f);
    }
    errors.textContent = msgs.join("；");
    redraw();
    onChange?.();
  };
  const input = (attrs) => h("input", { type: "file", accept: "image/*", class: "hidden", onchange: (e) => { add([...e.target.files]); e.target.value = ""; }, ...attrs });
  const gallery = input({ multiple: true, testid });
  const camera = input({ capture: "environment", testid: `${testid}-camera` });
  redraw();
  return h("fieldset", { class: "photos" }, h("legend", {}, label),
    h("div", { class: "row" },
      h("button", { type: "button", onclick: () => camera.click() }, t("report.camera")),
      h("button", { type: "button", testid: `${testid}-gallery`, onclick: () => gallery.click() }, t("report.gallery"))),
    gallery, camera, thumbs, errors);
}

// ---- report ------------------------------------------------------------------------------------------------

function newForm(item) {
  const p = item?.payload;
  return {
    key: item?.key || store.newKey(), // made once, when composing starts; kept through edits and retries
    editing: item?.id || null,
    photos: [...(item?.files?.photos || [])], before: [...(item?.files?.before || [])], after: [...(item?.files?.after || [])],
    self: p?.self_handled || false, lon: p?.lon ?? null, lat: p?.lat ?? null, accuracy: null, pinMoved: !!p,
    class_code: p?.class_code || null, component_id: p?.component_id || null, comps: null, inside: true,
    description: p?.description || "", urgency: p?.urgency || "normal", note: p?.note || "", query: "",
  };
}

function insideBbox(lon, lat) {
  const b = S.config?.city_bbox;
  return !b || (lon >= b[0] && lon <= b[2] && lat >= b[1] && lat <= b[3]);
}

async function renderReport(item) {
  const F = S.form && !item && S.form.editing === null && S.form.reusable ? S.form : newForm(item);
  F.reusable = true;
  S.form = F;
  const posText = h("p", { class: "pos", testid: "position" });
  const outside = h("p", { class: "error", testid: "outside-city" });
  const compBox = h("div", { class: "components" });
  const mapBox = h("div", { class: "minimap", testid: "minimap" });
  const classBox = h("div", { class: "classes" });
  const msg = h("p", { class: "error", testid: "report-error" });

  const showPos = () => {
    if (F.lon === null) { posText.textContent = t("report.no_position"); return; }
    posText.textContent = `${F.lat.toFixed(6)}, ${F.lon.toFixed(6)}` + (F.accuracy != null ? ` · ${t("report.accuracy", { m: Math.round(F.accuracy) })}` : "") +
      (F.pinMoved ? ` · ${t("report.pin_moved")}` : "");
    F.inside = insideBbox(F.lon, F.lat);
    outside.textContent = F.inside ? "" : outsideText();
  };

  const loadComponents = async () => {
    compBox.replaceChildren();
    if (!F.class_code || F.lon === null) return;
    const tol = S.config?.snap_tolerance_m ?? 30;
    try {
      const r = await api(`/mobile/v1/components/nearest?class_code=${encodeURIComponent(F.class_code)}&lon=${F.lon}&lat=${F.lat}`);
      if (!r.inside_city) { F.inside = false; outside.textContent = outsideText(); F.comps = []; }
      else { F.inside = true; outside.textContent = ""; F.comps = r.items; }
      if (F.component_id && !F.comps.some((c) => c.code === F.component_id)) F.component_id = null;
      if (!F.component_id && F.comps.length && !F.componentTouched) F.component_id = F.comps[0].code;
    } catch {
      F.comps = null;
    }
    S.form.map?.setComponents(F.comps || []);
    drawComponents(tol);
  };
  const drawComponents = (tol) => {
    if (F.comps === null) { compBox.replaceChildren(h("p", { class: "muted" }, t("report.components_offline"))); return; }
    if (!F.comps.length) { compBox.replaceChildren(h("p", { class: "muted", testid: "components-none" }, t("report.components_none", { m: tol }))); return; }
    const opt = (code, label) => h("label", { class: "option", testid: code ? "component-option" : "component-none" },
      h("input", { type: "radio", name: "component", checked: F.component_id === code, onchange: () => { F.component_id = code; F.componentTouched = true; chosen.textContent = code || ""; } }), label);
    const chosen = h("span", { class: "component-id", testid: "component-id" }, F.component_id || "");
    compBox.replaceChildren(h("p", {}, t("report.components", { m: tol }), " ", chosen),
      ...F.comps.map((c) => opt(c.code, `${c.name || className(c.class_code)} · ${c.code} · ${c.distance_m} ${t("meters")}`)),
      opt(null, t("report.no_component")));
  };

  const setPos = (lon, lat, accuracy, moved) => {
    F.lon = lon; F.lat = lat; F.accuracy = accuracy; F.pinMoved = moved;
    showPos();
    loadComponents();
  };

  const search = h("input", { testid: "class-search", type: "search", placeholder: t("report.class_ph"), value: F.query,
    oninput: (e) => { F.query = e.target.value.trim(); drawClasses(); } });
  const drawClasses = () => {
    const recentKeys = [...new Set([...(F.localRecent || []), ...S.recent])];
    const byKey = new Map(S.classes.map((c) => [c.key, c]));
    let list;
    if (!F.query) list = recentKeys.map((k) => byKey.get(k)).filter(Boolean);
    else {
      const q = F.query.toLowerCase();
      const hits = S.classes.filter((c) => c.name_zh.includes(F.query) || (c.name_en || "").toLowerCase().includes(q));
      const rank = (c) => { const i = recentKeys.indexOf(c.key); return i < 0 ? 1000 : i; };
      list = hits.sort((a, b) => rank(a) - rank(b)).slice(0, 30);
    }
    const chosen = F.class_code ? h("p", { class: "chosen", testid: "class-chosen" }, className(F.class_code), " ", h("small", {}, F.class_code)) : null;
    classBox.replaceChildren(chosen || "", !F.query && list.length ? h("small", { class: "muted" }, t("report.recent")) : "",
      ...list.map((c) => h("button", { type: "button", class: c.key === F.class_code ? "option selected" : "option", testid: "class-option",
        onclick: () => { F.class_code = c.key; F.component_id = null; F.componentTouched = false; F.query = ""; search.value = ""; drawClasses(); loadComponents(); } },
      c.name_zh, " ", h("small", {}, c.major_name_zh || ""))));
  };
  F.localRecent = (await store.meta("recentClasses")) || [];

  const photosBox = h("div");
  const drawPhotos = () => {
    photosBox.replaceChildren(F.self
      ? h("div", {}, photoPicker(F.before, { testid: "photo-before", label: t("report.before") }), photoPicker(F.after, { testid: "photo-after", label: t("report.after") }))
      : photoPicker(F.photos, { testid: "photo-input", label: t("report.photos") }));
  };
  const noteBox = h("label", { class: F.self ? "" : "hidden" }, t("report.note"),
    h("textarea", { testid: "self-note", value: F.note, oninput: (e) => { F.note = e.target.value; } }));

  const submit = async (e) => {
    e.preventDefault();
    msg.textContent = "";
    if (F.self ? !(F.before.length && F.after.length) : !F.photos.length) { msg.textContent = F.self ? t("report.need_before_after") : t("report.need_photo"); return; }
    if (!F.class_code) { msg.textContent = t("report.need_class"); return; }
    if (F.lon === null) { msg.textContent = t("report.no_position"); return; }
    if (!F.inside) { msg.textContent = outsideText(); return; }
    const payload = { class_code: F.class_code, lon: Math.round(F.lon * 1e7) / 1e7, lat: Math.round(F.lat * 1e7) / 1e7, coord_system: "wgs84",
      description: F.description || null, urgency: F.urgency, captured_at: new Date().toISOString(), self_handled: F.self,
      component_id: F.component_id || null, note: F.self ? (F.note || null) : null };
    const files = F.self ? { before: F.before, after: F.after } : { photos: F.photos };
    const old = F.editing ? await store.outboxGet(F.editing) : null;
    if (old) payload.captured_at = old.payload.captured_at;
    await outbox.enqueue({ id: F.key, key: F.key, kind: "report", path: "/mobile/v1/reports", field: "report", payload, files,
      summary: `${className(F.class_code)}${F.description ? " · " + F.description.slice(0, 40) : ""}`, created_at: old?.created_at });
    const recent = [F.class_code, ...F.localRecent.filter((k) => k !== F.class_code)].slice(0, 8);
    await store.setMeta("recentClasses", recent);
    S.form = null;
    toast(t("report.queued"));
    go("outbox");
  };

  main.replaceChildren(h("form", { class: "report", onsubmit: submit, testid: "report-form" },
    h("h2", {}, t("report.title")),
    h("label", { class: "check" }, h("input", { type: "checkbox", testid: "self-handled", checked: F.self,
      onchange: (e) => { F.self = e.target.checked; noteBox.className = F.self ? "" : "hidden"; drawPhotos(); } }), t("report.self")),
    photosBox,
    h("fieldset", {}, h("legend", {}, t("report.position")), posText, outside, mapBox),
    h("fieldset", {}, h("legend", {}, t("report.class")), search, classBox, compBox),
    h("label", {}, t("report.description"), h("textarea", { testid: "description", value: F.description, oninput: (e) => { F.description = e.target.value; } })),
    h("label", {}, t("report.urgency"), h("select", { testid: "urgency", onchange: (e) => { F.urgency = e.target.value; } },
      h("option", { value: "normal", selected: F.urgency === "normal" }, t("urgency.normal")),
      h("option", { value: "urgent", selected: F.urgency === "urgent" }, t("urgency.urgent")))),
    noteBox, msg,
    h("button", { type: "submit", class: "primary", testid: "submit-report" }, t("report.submit"))));
  drawPhotos();
  drawClasses();
  showPos();
  if (F.lon !== null) loadComponents();
  if (!F.pinMoved) { // a fresh position unless the inspector placed the pin by hand
    if (F.lon === null) posText.textContent = t("report.locating");
    const p = await position();
    if (S.form !== F) return;
    if (p && !F.pinMoved) setPos(p.lon, p.lat, p.accuracy, false); else showPos();
  }
  if (F.lon !== null && S.form === F) {
    createMiniMap(mapBox, { lon: F.lon, lat: F.lat, onMove: (lon, lat) => setPos(lon, lat, null, true),
      token: S.session?.token, lang: getLang() }).then((m) => {
      if (S.form === F && S.view === "report") { F.map = m; m?.setComponents(F.comps || []); } else m?.remove();
    });
  }
}

// ---- outbox ------------------------------------------------------------------------------------------------

let outboxDrawn = null;
async function renderOutbox() {
  const items = await store.outboxAll();
  if (S.view !== "outbox") return;
  // A drain pass (every 30 s, on every return of the network) reports a change even when nothing changed; the
  // list is drawn again only when what it shows changed, so a tap on its buttons is not lost to a redraw.
  const sig = JSON.stringify([getLang(), items.map((it) => [it.id, it.state, it.error, it.result?.number, it.summary,
    Object.values(it.files || {}).reduce((n, l) => n + l.length, 0), outbox.progressOf(it.id) !== undefined])]);
  if (sig === outboxDrawn) return;
  outboxDrawn = sig;
  const stateText = (it) => it.state === "retry" ? t("state.retry") : t(`state.${it.state}`);
  const rows = items.slice().reverse().map((it) => {
    const p = outbox.progressOf(it.id);
    const err = (it.state === "refused" || it.state === "retry" || it.state === "login") && it.error ? errorText(it.error) : "";
    const nPhotos = Object.values(it.files || {}).reduce((n, l) => n + l.length, 0);
    return h("li", { class: `item ${it.state}`, testid: "outbox-item", "data-state": it.state, "data-key": it.key },
      h("div", { class: "line" }, h("b", {}, t(`kind.${it.kind}`)), " ", it.summary || "",
        h("span", { class: `state ${it.state}`, testid: "outbox-state" }, stateText(it))),
      h("div", { class: "muted" }, fmtTime(it.created_at), nPhotos ? ` · ${t("outbox.photos", { n: nPhotos })}` : "",
        it.result?.number ? ` · ${t("outbox.case", { n: it.result.number })}` : ""),
      p !== undefined ? h("progress", { max: 1, value: p, testid: "upload-progress" }) : null,
      err ? h("p", { class: it.state === "refused" ? "error" : "muted", testid: "outbox-reason" }, err) : null,
      h("div", { class: "row" },
        it.state === "refused" && it.kind === "report" ? h("button", { testid: "outbox-edit", onclick: () => go("report", it) }, t("outbox.edit")) : null,
        it.state === "refused" ? h("button", { testid: "outbox-retry", onclick: () => outbox.retry(it.id) }, t("outbox.retry")) : null,
        it.state !== "sent" && it.state !== "sending" ? h("button", { testid: "outbox-delete", class: "danger",
          onclick: () => { if (confirm(t("outbox.confirm_delete"))) outbox.remove(it.id); } }, t("outbox.delete")) : null));
  });
  const sent = items.some((i) => i.state === "sent");
  main.replaceChildren(h("h2", {}, t("outbox.title")),
    rows.length ? h("ul", { class: "list", testid: "outbox-list" }, rows) : h("p", { class: "muted", testid: "outbox-empty" }, t("outbox.empty")),
    sent ? h("button", { class: "link", onclick: () => outbox.clearSent() }, t("outbox.clear_sent")) : null);
}

// ---- tasks -------------------------------------------------------------------------------------------------

let slowFix = null; // a fix still being waited for after the task list gave up on it

async function renderTasks() {
  const seq = S.seq;
  const here = S.here || await position(5000);
  if (!here && !slowFix) {
    // A cold GPS can take longer than the list waits: keep asking in the background, then order the list by
    // distance and fetch the map around the phone ahead (position() does that on every fix).
    slowFix = position(60000).then((p) => { slowFix = null; if (p && S.view === "tasks") renderTasks(); });
  }
  const q = here ? `?lon=${here.lon}&lat=${here.lat}` : "";
  let res;
  try { res = await cached("tasks", `/mobile/v1/tasks${q}`); } catch (e) { main.replaceChildren(h("p", { class: "error" }, errorText(e.detail))); return; }
  if (seq !== S.seq || S.view !== "tasks") return;
  const items = res.data?.items || [];
  main.replaceChildren(h("h2", {}, t("tasks.title")), res.fresh ? null : h("p", { class: "muted" }, t("mine.cached")),
    items.length ? h("ul", { class: "list" }, items.map((it) => h("li", { class: "item task", testid: "task-item", "data-case": it.id, onclick: () => go("detail", it.id) },
      h("div", { class: "line" }, h("b", { class: `tag ${it.task}` }, t(`task.${it.task}`)), " ", it.number, " ", className(it.class_code),
        h("span", { class: "state" }, statusName(it.status))),
      h("div", { class: "muted" }, it.deadline_at ? `${t("tasks.deadline")} ${fmtTime(it.deadline_at)}` : "",
        it.distance_m != null ? ` · ${t("tasks.distance", { m: Math.round(it.distance_m) })}` : ""),
      it.description ? h("div", {}, it.description) : null)))
      : h("p", { class: "muted", testid: "tasks-empty" }, t("tasks.empty")));
}

async function authImage(url) {
  const img = h("img", { alt: "", class: "photo" });
  api.blob = api.blob || {};
  try {
    const r = await fetch(url, { headers: { Authorization: `Bearer ${S.session?.token}` } });
    if (r.ok) img.src = URL.createObjectURL(await r.blob());
  } catch { /* offline: no picture */ }
  return img;
}

async function renderDetail(caseId) {
  const seq = S.seq;
  const here = S.here || await position(5000);
  const q = here ? `?lon=${here.lon}&lat=${here.lat}` : "";
  let res;
  try { res = await cached(`case:${caseId}`, `/mobile/v1/tasks/${caseId}${q}`); } catch (e) { main.replaceChildren(h("p", { class: "error" }, errorText(e.detail))); return; }
  const d = res.data;
  if (seq !== S.seq) return;
  if (!d || S.view !== "detail") { if (!d) main.replaceChildren(h("p", { class: "muted" }, t("offline"))); return; }
  S.detail = d;
  const dist = here ? Math.round(haversine(here, d)) : null;
  const far = dist !== null && dist > d.onsite_radius_m;
  const rule = h("div", { class: far ? "rule far" : "rule", testid: "onsite-rule" },
    t("task.onsite", { r: d.onsite_radius_m }), " ",
    dist === null ? t("task.unknown_pos") : far ? t("task.too_far", { m: dist, r: d.onsite_radius_m }) : t("task.here", { m: dist }));
  const photos = h("div", { class: "thumbs" });
  for (const p of d.photos || []) authImage(p.thumb_url).then((img) => photos.append(img));
  const history = h("ol", { class: "timeline", testid: "timeline" }, (d.events || []).map((e) => h("li", {},
    h("b", {}, actionName(e.action)), " → ", statusName(e.to_status), " ", h("span", { class: "muted" }, fmtTime(e.at)),
    e.note ? h("div", {}, e.note) : null)));
  const back = h("button", { class: "link", onclick: () => go(d.task ? "tasks" : "mine") }, "← ", t("back"));
  const caseMap = h("div", { class: "minimap", testid: "case-map" });
  createMiniMap(caseMap, { lon: d.lon, lat: d.lat, token: S.session?.token, lang: getLang() }).then((m) => {
    if (S.view !== "detail" || S.detail !== d) m?.remove();
  });
  main.replaceChildren(back,
    h("h2", {}, d.task ? h("span", { class: `tag ${d.task}` }, t(`task.${d.task}`)) : null, " ", d.number),
    h("p", {}, h("b", {}, d.class_name || d.class_code), " · ", h("span", { testid: "case-status" }, statusName(d.status)),
      d.component_id ? ` · ${t("task.component")} ${d.component_id}` : ""),
    d.description ? h("p", {}, d.description) : null,
    d.address ? h("p", { class: "muted" }, d.address) : null,
    h("p", { class: "muted" }, `${d.lat.toFixed(6)}, ${d.lon.toFixed(6)}`, d.deadline_at ? ` · ${t("tasks.deadline")} ${fmtTime(d.deadline_at)}` : ""),
    caseMap,
    d.task ? rule : null,
    d.task ? answerPanel(d, dist) : null,
    h("h3", {}, t("task.photos_case")), photos,
    h("h3", {}, t("task.history")), history);
}

function answerPanel(d, dist) {
  const files = [];
  const note = h("textarea", { testid: "result-note", placeholder: t("task.note") });
  const msg = h("p", { class: "error", testid: "answer-error" });
  const queue = async (item) => {
    await outbox.enqueue({ id: item.key, created_at: new Date().toISOString(), ...item });
    toast(t("task.queued"));
    go("outbox");
  };
  const result = async (outcome) => {
    msg.textContent = "";
    if (!files.length) { msg.textContent = t("report.need_photo"); return; }
    if (outcome === "fail" && !note.value.trim()) { msg.textContent = t("task.need_note"); return; }
    const here = await position(10000) || S.here;
    if (here) {
      const m = Math.round(haversine(here, d));
      if (m > d.onsite_radius_m) { msg.textContent = t("task.too_far", { m, r: d.onsite_radius_m }); return; }
    }
    const key = store.newKey();
    await queue({ key, kind: "result", path: `/mobile/v1/tasks/${d.id}/result`, field: "result",
      payload: { outcome, lon: here ? here.lon : d.lon, lat: here ? here.lat : d.lat, coord_system: "wgs84", note: note.value.trim() || null, captured_at: new Date().toISOString() },
      files: { photos: files.slice() }, summary: `${d.number} ${t(outcome === "done" ? "task.done" : `task.${outcome}_${d.task}`)}` });
  };
  const action = async (name, body = {}) => {
    msg.textContent = "";
    if (name !== "accept" && !note.value.trim()) { msg.textContent = t("task.need_note"); return; }
    const key = store.newKey();
    await queue({ key, kind: "action", path: `/mobile/v1/tasks/${d.id}/action`,
      json: { action: name, note: note.value.trim() || null, ...body }, summary: `${d.number} ${actionName(name)}` });
  };
  const picker = photoPicker(files, { testid: "result-photo-input", label: t("task.photos") });
  if (d.task === "verify" || d.task === "check") {
    return h("div", { class: "answer" }, picker, note, msg, h("div", { class: "row" },
      h("button", { class: "primary", testid: "task-pass", onclick: () => result("pass") }, t(`task.pass_${d.task}`)),
      h("button", { class: "danger", testid: "task-fail", onclick: () => result("fail") }, t(`task.fail_${d.task}`))));
  }
  const allowed = new Set(d.allowed_actions || []);
  const value = h("input", { type: "number", min: "0.5", step: "0.5", value: "1", testid: "extension-value" });
  const unit = h("select", { testid: "extension-unit" }, (d.extension_units || []).map((u) => h("option", { value: u }, t(`unit.${u}`))));
  const canFeedBack = allowed.has("feedback") || allowed.has("accept"); // feedback accepts on the spot
  return h("div", { class: "answer" },
    d.handle_limit ? h("p", { class: "muted" }, t("task.limit", { l: d.handle_limit.replace(/[a-z_]+$/, (u) => t(`unit.${u}`)) })) : null,
    allowed.has("accept") ? h("button", { class: "primary", testid: "task-accept", onclick: () => action("accept") }, t("task.accept")) : null,
    canFeedBack ? picker : null, note, msg,
    h("div", { class: "row" },
      canFeedBack ? h("button", { class: "primary", testid: "task-done", onclick: () => result("done") }, t("task.done")) : null,
      allowed.has("request_sendback") ? h("button", { testid: "task-sendback", onclick: () => action("request_sendback") }, t("task.sendback")) : null),
    allowed.has("request_extension") || allowed.has("accept") ? h("div", { class: "row" }, t("task.ext_value"), value, unit,
      h("button", { testid: "task-extension", onclick: () => action("request_extension", { extension: { value: Number(value.value), unit: unit.value } }) }, t("task.extension"))) : null);
}

// ---- my reports ----------------------------------------------------------------------------------------------

async function renderMine() {
  const seq = S.seq;
  let res;
  try { res = await cached("mine", "/mobile/v1/reports?limit=100"); } catch (e) { main.replaceChildren(h("p", { class: "error" }, errorText(e.detail))); return; }
  if (seq !== S.seq || S.view !== "mine") return;
  const items = res.data?.items || [];
  main.replaceChildren(h("h2", {}, t("mine.title")), res.fresh ? null : h("p", { class: "muted" }, t("mine.cached")),
    items.length ? h("ul", { class: "list" }, items.map((it) => h("li", { class: "item", testid: "report-item", "data-case": it.id, "data-status": it.status, onclick: () => go("detail", it.id) },
      h("div", { class: "line" }, h("b", {}, it.number), " ", className(it.class_code), h("span", { class: "state", testid: "report-status" }, statusName(it.status))),
      h("div", { class: "muted" }, fmtTime(it.created_at)))))
      : h("p", { class: "muted" }, t("mine.empty")));
}

// ---- patrol ------------------------------------------------------------------------------------------------

let patrolDrawn = null;
/** After a patrol change: the button is drawn again only when duty changed; the counts change in place. */
function updatePatrol() {
  if (patrolDrawn !== patrol.state.on) { renderPatrol(); return; }
  const count = main?.querySelector("[data-testid=track-count]");
  if (count) count.textContent = t("patrol.points", { n: patrol.state.recorded, u: patrol.state.unsent });
}

async function renderPatrol() {
  if (S.view !== "patrol") return;
  const st = patrol.state;
  patrolDrawn = st.on;
  const cov = h("p", { testid: "coverage" });
  main.replaceChildren(h("h2", {}, t("nav.patrol")),
    h("button", { class: st.on ? "danger" : "primary", onclick: () => (st.on ? patrol.stop() : patrol.start()) }, st.on ? t("patrol.stop") : t("patrol.off")),
    h("p", { testid: "track-count" }, t("patrol.points", { n: st.recorded, u: st.unsent })), cov);
  const today = new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
  try {
    const { data } = await cached("coverage", `/mobile/v1/tracks/coverage?inspector_id=${S.session.user.id}&date=${today}`);
    if (!data) return;
    cov.textContent = data.grids_total ? t("patrol.coverage", { v: data.grids_visited, t: data.grids_total, p: Math.round((data.coverage || 0) * 100) }) : t("patrol.no_area");
  } catch { /* offline */ }
}

// ---- boot --------------------------------------------------------------------------------------------------

async function boot() {
  setLang(getLang());
  await loadErrors();
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/m/sw.js", { scope: "/m/" }).catch(() => {});
  if (navigator.storage?.persist) navigator.storage.persist().catch(() => {});
  S.session = (await store.meta("session")) || null;
  S.config = await store.meta("config");
  const cls = await store.meta("classes");
  if (cls) { S.classes = cls.items; S.recent = cls.recent || []; }
  // An expired login still lets the inspector work offline; the first answer 401 asks for a new login.
  if (!S.session?.token) return renderLogin(S.session ? t("login.expired") : null);
  start();
}
setInterval(() => outbox.kick(), 30000);
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") outbox.kick(); });
boot();

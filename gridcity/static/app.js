/* The web console: login, the live stream, the case queues (supervision, dispatch, department inbox), intake
   (受理登记) with the standard-address look-up, the case file, downloads and the admin screens. Plain
   JavaScript; map.js and minimap.js (MapLibre GL) and dashboard.js (ECharts) add the maps and charts. */
"use strict";
const App = (function () {
  const t = I18N.t;
  const S = {
    token: sessionStorage.getItem("gridcity.token"),
    user: JSON.parse(sessionStorage.getItem("gridcity.user") || "{}") || {},
    depts: {}, deptList: [], inspectors: [], classes: [], classByKey: {}, areas: [],
    lastId: null, lastAlertId: null, ws: null, wsRetry: 0, wsTimer: null,
    view: null, listeners: [], features: {},
  };
  if (!S.user.id) S.user = null;

  // ---- helpers -------------------------------------------------------------------------------------------
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "text") e.textContent = v;
      else if (k === "dataset") { for (const [dk, dv] of Object.entries(v)) if (dv !== null && dv !== undefined) e.dataset[dk] = dv; }
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of [].concat(children === undefined ? [] : children)) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const txt = (v) => (v === null || v === undefined ? "" : String(v));  // never "null" on screen
  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  }
  function fmtDuration(seconds) {
    const s = Math.abs(Math.round(seconds || 0));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return `${d}${t("unit.d")}${h}${t("unit.h")}`;
    if (h) return `${h}${t("unit.h")}${m}${t("unit.m")}`;
    return `${m}${t("unit.m")}`;
  }
  function toast(msg, kind) {
    const box = document.getElementById("toasts");
    const item = el("div", { class: "toast " + (kind || ""), text: msg, role: kind === "red" ? "alert" : null });
    box.append(item);
    setTimeout(() => item.remove(), 6000);
  }
  /* An API failure shown in the user's language: the catalogue message of each error code (never the raw
     body), with the field it concerns. */
  class ApiError extends Error {
    constructor(status, body) {
      const details = (body && Array.isArray(body.detail)) ? body.detail : [];
      const parts = details.map((d) => {
        const field = Array.isArray(d.loc) ? d.loc.filter((x) => !["body", "query", "path"].includes(x) && typeof x === "string").pop() : null;
        const label = field ? t("field." + field) : "";
        const colon = I18N.lang === "en" ? ": " : "：";
        return (label && label !== "field." + field ? label + colon : "") + I18N.err(d.type, status);
      });
      super(parts.length ? parts.join(I18N.lang === "en" ? "; " : "；") : I18N.err("http." + status, status));
      this.status = status; this.body = body; this.type = details[0] ? details[0].type : null;
    }
  }
  async function api(path, opts) {
    opts = opts || {};
    const headers = Object.assign({}, opts.headers || {});
    if (S.token) headers.Authorization = "Bearer " + S.token;
    let body = opts.body;
    if (body && !(body instanceof FormData) && !(body instanceof URLSearchParams)) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch(path, { method: opts.method || (body ? "POST" : "GET"), headers: headers, body: body });
    } catch (e) { throw new ApiError(0, null); }
    if (r.status === 401 && S.token && !opts.noLogout) {
      const data = await r.json().catch(() => null);
      logout();
      const err = new ApiError(401, data);
      toast(err.message, "red");
      throw err;
    }
    if (opts.blob) {
      if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
      return r.blob();
    }
    const data = r.status === 204 ? null : await r.json().catch(() => null);
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }
  // An optional endpoint (built by another package): null when it does not exist (404 on the route).
  async function optional(path, key) {
    if (S.features[key] === false) return null;
    try {
      const data = await api(path);
      S.features[key] = true;
      return data;
    } catch (e) {
      if (e.status === 404 && e.type === "http.not_found") S.features[key] = false;
      if (e.status === 404 || e.status === 405 || e.status === 501) return null;
      throw e;
    }
  }
  /* Download a file the API renders, with the session's token (a bare link would answer 401). */
  async function download(path, filename) {
    const blob = await api(path, { blob: true });
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: filename });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    return blob;
  }
  function downloadButton(label, pathFn, filenameFn, cls) {
    return el("button", { type: "button", class: "download " + (cls || ""), onclick: async (ev) => {
      ev.target.disabled = true;
      try { await download(pathFn(), filenameFn()); } catch (e) { toast(e.message, "red"); }
      ev.target.disabled = false;
    } }, label);
  }
  function deptName(id) { return id == null ? "" : (S.depts[id] ? S.depts[id].name : "#" + id); }
  function className(code) { const c = S.classByKey[code]; return c ? c.name : txt(code); }
  function lightDot(light) {
    return el("span", { class: "light " + (light || "none"), title: t("light." + (light || "none")) });
  }
  function statusText(s) { return t("status." + s); }
  function actionText(a) { return t("action." + a); }
  function userName(id) {
    const u = S.inspectors.find((x) => x.id === id) || (S.users || []).find((x) => x.id === id);
    return u ? u.display_name : (id == null ? "" : "#" + id);
  }

  // ---- session -------------------------------------------------------------------------------------------
  async function login(username, password) {
    const form = new URLSearchParams({ username: username, password: password });
    const data = await api("/api/v1/auth/token", { method: "POST", body: form, noLogout: true });
    S.token = data.access_token; S.user = data.user;
    sessionStorage.setItem("gridcity.token", S.token);
    sessionStorage.setItem("gridcity.user", JSON.stringify(S.user));
    await start();
  }
  function logout() {
    S.token = null; S.user = null;
    sessionStorage.removeItem("gridcity.token"); sessionStorage.removeItem("gridcity.user");
    if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
    setLive("off");
    showLogin();
  }
  function showLogin() {
    document.getElementById("nav").innerHTML = "";
    document.getElementById("who").textContent = "";
    document.getElementById("logout").hidden = true;
    showView("login");
  }

  const ROLE_VIEWS = {
    acceptor: ["intake", "supervision", "map"], shift_leader: ["supervision", "map"], dispatcher: ["dispatch", "map"],
    department: ["inbox", "map"], leader: ["dashboard", "map"], inspector: ["map"],
    admin: ["admin", "intake", "supervision", "dispatch", "inbox", "map", "dashboard"],
  };

  async function start() {
    try {
      S.user = await api("/api/v1/auth/me");
    } catch (e) { showLogin(); return; }
    const [depts, classes] = await Promise.all([
      api("/api/v1/departments").catch(() => []), api("/api/v1/case-classes").catch(() => []),
    ]);
    S.deptList = depts; S.depts = Object.fromEntries(depts.map((d) => [d.id, d]));
    S.classes = classes; S.classByKey = Object.fromEntries(classes.map((c) => [c.key, c]));
    if (["acceptor", "shift_leader", "dispatcher", "admin", "leader"].includes(S.user.role)) {
      S.inspectors = await api("/api/v1/users?role=inspector").catch(() => []);
    }
    document.getElementById("who").textContent =
      `${S.user.display_name} · ${t("role." + S.user.role)}${S.user.department_id ? " · " + deptName(S.user.department_id) : ""}`;
    document.getElementById("logout").hidden = false;
    const views = ROLE_VIEWS[S.user.role] || ["map"];
    const nav = document.getElementById("nav");
    nav.innerHTML = "";
    for (const v of views) {
      nav.append(el("a", { href: "#" + v, dataset: { view: v, i18n: "view." + v }, text: t("view." + v) }));
    }
    const wanted = location.hash.slice(1).split("?")[0];
    connectLive();
    showView(views.includes(wanted) ? wanted : views[0]);
  }

  const VIEW_HOOKS = {};
  function registerView(name, hooks) { VIEW_HOOKS[name] = hooks; }
  function hashParams() {
    const h = location.hash.slice(1), i = h.indexOf("?");
    return new URLSearchParams(i < 0 ? "" : h.slice(i + 1));
  }
  function showView(name) {
    document.querySelectorAll(".view").forEach((s) => { s.hidden = s.id !== "view-" + name; });
    document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === name));
    const changed = S.view !== name;
    S.view = name;
    if (name !== "login" && location.hash.slice(1).split("?")[0] !== name) history.replaceState(null, "", "#" + name);
    const hooks = VIEW_HOOKS[name];
    if (hooks && hooks.show) Promise.resolve().then(() => hooks.show(changed)).catch((e) => toast(e.message, "red"));
  }

  // ---- live stream ---------------------------------------------------------------------------------------
  function setLive(mode) {
    const dot = document.getElementById("live-dot");
    dot.className = "dot " + mode;
    const text = document.getElementById("live-text");
    text.dataset.i18n = "live." + mode;
    text.textContent = t("live." + mode);
    document.body.dataset.live = mode;
  }
  function connectLive() {
    if (!S.token) return;
    if (S.ws) { S.ws.onclose = null; S.ws.close(); }
    clearTimeout(S.wsTimer);
    setLive("connecting");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    // The token never goes in the URL (URLs reach access logs): it is the first frame the socket sends.
    const q = [];
    if (S.lastId !== null) q.push(`since=${S.lastId}`);
    if (S.lastAlertId !== null) q.push(`since_alert=${S.lastAlertId}`);
    const url = `${proto}//${location.host}/ws/live` + (q.length ? "?" + q.join("&") : "");
    const ws = new WebSocket(url);
    S.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: S.token }));
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (e) { return; }
      onLive(msg);
    };
    ws.onclose = (ev) => {
      S.ws = null;
      setLive("off");
      if (ev.code === 1008) { logout(); return; }
      const delay = Math.min(30000, 500 * Math.pow(2, S.wsRetry++));
      S.wsTimer = setTimeout(connectLive, ev.code === 1013 ? 100 : delay);
    };
  }
  function onLive(msg) {
    switch (msg.type) {
      case "hello":
        if (S.lastId === null) S.lastId = msg.last_id;
        if (S.lastAlertId === null) S.lastAlertId = msg.last_alert_id;
        break;
      case "synced":
        S.wsRetry = 0;
        S.lastId = Math.max(S.lastId || 0, msg.last_id);
        S.lastAlertId = Math.max(S.lastAlertId || 0, msg.last_alert_id);
        setLive("on");
        break;
      case "ping":
        S.lastId = Math.max(S.lastId || 0, msg.last_id);
        S.lastAlertId = Math.max(S.lastAlertId || 0, msg.last_alert_id);
        break;
      case "event":
        if (S.lastId !== null && msg.id <= S.lastId) return;  // already seen
        S.lastId = msg.id;
        for (const fn of S.listeners) fn(msg);
        break;
      case "alert":
        if (S.lastAlertId !== null && msg.alert_id <= S.lastAlertId) return;
        S.lastAlertId = msg.alert_id;
        toast(`${t("toast.alert." + msg.level)}: ${msg.case.number}`, msg.level);
        for (const fn of S.listeners) fn(msg);
        break;
      case "resync":
        S.lastId = msg.since; S.lastAlertId = msg.since_alert;  // the server closes; we reconnect from here
        break;
      case "reset":
        S.lastId = msg.last_id; S.lastAlertId = msg.last_alert_id;
        toast(t("toast.reset"));
        for (const h of Object.values(VIEW_HOOKS)) if (h.reset) h.reset();
        break;
      case "error":
        if (msg.code) toast(I18N.err(msg.code), "red");
        break;
      default:
        break;
    }
  }
  function onCaseEvent(fn) { S.listeners.push(fn); }

  // ---- queues --------------------------------------------------------------------------------------------
  const LIGHTS = ["red", "yellow", "green", "paused", "none"];
  const SORTS = ["overdue", "deadline", "-deadline", "-created", "created"];
  const PAGE_SIZES = [20, 50, 100, 200];
  async function loadAreas() {
    if (S.areasLoaded) return S.areas;
    S.areasLoaded = true;
    const got = [];
    for (const level of ["district", "street", "community"]) {
      const fc = await optional(`/api/v1/map/areas?level=${level}&limit=5000`, "areas").catch(() => null);
      if (!fc) break;
      for (const f of fc.features) got.push({ code: f.properties.code, name: f.properties.name, level: level });
    }
    S.areas = got.sort((a, b) => a.code.localeCompare(b.code));
    return S.areas;
  }
  function areaLabel(a) {
    const indent = { district: "", street: "　", community: "　　" }[a.level] || "";
    return `${indent}${a.name}（${a.code}）`;
  }
  function classOptions(selected, opts) {
    opts = opts || {};
    const groups = new Map();
    for (const c of S.classes) {
      const g = `${t("kind." + c.kind)} · ${c.major_name}`;
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(c);
    }
    const out = [el("option", { value: "", text: opts.placeholder || t("filter.any_class") })];
    for (const [g, list] of groups) {
      out.push(el("optgroup", { label: g }, list.map((c) => el("option", { value: c.key, text: c.name, selected: c.key === selected }))));
    }
    return out;
  }
  /* A queue: the cases of some statuses, paged, sorted and filtered on the server, with the total shown and
     its state kept in the URL (#view?status=…&sort=…&offset=…); the live stream reloads the page shown. */
  function queue(opts) {
    const section = document.getElementById("view-" + opts.view);
    const table = document.getElementById(opts.table);
    const bar = el("form", { class: "filters", dataset: { queue: opts.view } });
    const pager = el("div", { class: "pager" });
    section.querySelector(".toolbar").after(bar);
    table.after(pager);
    let state = null, loaded = false, timer = null, seen = new Set(), token = 0;
    const defaults = () => ({ status: [], class_code: "", department_id: "", area_code: "", light: "", q: "",
      from: "", to: "", sort: "overdue", offset: 0, limit: 50 });
    function readUrl() {
      const p = hashParams(), s = defaults();
      s.status = p.getAll("status").filter((x) => opts.statuses.includes(x));
      for (const k of ["class_code", "department_id", "area_code", "light", "q", "from", "to"]) s[k] = p.get(k) || "";
      if (SORTS.includes(p.get("sort"))) s.sort = p.get("sort");
      s.offset = Math.max(0, parseInt(p.get("offset") || "0", 10) || 0);
      const lim = parseInt(p.get("limit") || "50", 10);
      s.limit = PAGE_SIZES.includes(lim) ? lim : 50;
      return s;
    }
    function writeUrl() {
      const p = new URLSearchParams();
      for (const st of state.status) p.append("status", st);
      for (const k of ["class_code", "department_id", "area_code", "light", "q", "from", "to"]) if (state[k]) p.set(k, state[k]);
      if (state.sort !== "overdue") p.set("sort", state.sort);
      if (state.offset) p.set("offset", String(state.offset));
      if (state.limit !== 50) p.set("limit", String(state.limit));
      const qs = p.toString();
      history.replaceState(null, "", "#" + opts.view + (qs ? "?" + qs : ""));
    }
    function localIso(dateStr, endOfDay) {  // a yyyy-mm-dd in the browser's zone, as an ISO instant
      const [y, m, d] = dateStr.split("-").map(Number);
      return new Date(y, m - 1, d + (endOfDay ? 1 : 0)).toISOString();
    }
    function apiQuery(withPage) {
      const p = new URLSearchParams();
      for (const st of (state.status.length ? state.status : opts.statuses)) p.append("status", st);
      if (state.class_code) p.set("class_code", state.class_code);
      if (state.department_id) p.set("department_id", state.department_id);
      if (state.area_code) p.set("area_code", state.area_code);
      if (state.light) p.set("light", state.light);
      if (state.q.trim()) p.set("q", state.q.trim());
      if (state.from) p.set("created_from", localIso(state.from, false));
      if (state.to) p.set("created_to", localIso(state.to, true));
      p.set("sort", state.sort);
      if (withPage) { p.set("offset", String(state.offset)); p.set("limit", String(state.limit)); }
      return p.toString();
    }
    function field(labelKey, input) { return el("label", {}, [el("span", { text: t(labelKey) }), input]); }
    function renderBar() {
      const f = {};
      f.status = el("select", { name: "status" }, [el("option", { value: "", text: t("filter.all_status") })]
        .concat(opts.statuses.map((s) => el("option", { value: s, text: statusText(s), selected: state.status.length === 1 && state.status[0] === s }))));
      f.class_code = el("select", { name: "class_code" }, classOptions(state.class_code));
      f.department_id = el("select", { name: "department_id" }, [el("option", { value: "", text: t("filter.any_department") })]
        .concat(S.deptList.map((d) => el("option", { value: d.id, text: d.name, selected: String(d.id) === state.department_id }))));
      f.area_code = el("select", { name: "area_code" }, [el("option", { value: "", text: t("filter.any_area") })]
        .concat(S.areas.map((a) => el("option", { value: a.code, text: areaLabel(a), selected: a.code === state.area_code }))));
      if (state.area_code && !S.areas.some((a) => a.code === state.area_code)) {
        f.area_code.append(el("option", { value: state.area_code, text: state.area_code, selected: true }));
      }
      f.grid = el("input", { name: "grid", placeholder: t("filter.grid_code"), size: 15, maxlength: 15, pattern: "[0-9]{6,15}",
        value: state.area_code && state.area_code.length === 15 ? state.area_code : "" });
      f.light = el("select", { name: "light" }, [el("option", { value: "", text: t("filter.any_light") })]
        .concat(LIGHTS.map((l) => el("option", { value: l, text: t("light." + l), selected: l === state.light }))));
      f.from = el("input", { type: "date", name: "from", value: state.from });
      f.to = el("input", { type: "date", name: "to", value: state.to });
      f.q = el("input", { type: "search", name: "q", value: state.q, placeholder: t("filter.q_hint"), maxlength: 100 });
      f.sort = el("select", { name: "sort" }, SORTS.map((s) => el("option", { value: s, text: t("sort." + s), selected: s === state.sort })));
      const fields = [field("col.status", f.status), field("col.class", f.class_code)];
      if (opts.view !== "inbox") fields.push(field("col.department", f.department_id));
      fields.push(field("filter.area", f.area_code), field("filter.grid", f.grid), field("col.light", f.light),
        field("filter.from", f.from), field("filter.to", f.to), field("filter.q", f.q), field("filter.sort", f.sort),
        el("button", { type: "submit", class: "apply" }, t("filter.apply")),
        el("button", { type: "button", class: "clear secondary", onclick: () => { state = defaults(); go(); } }, t("filter.clear")),
        downloadButton(t("export.csv"), () => `/api/v1/cases/export.csv?${apiQuery(false)}`, () => `${opts.view}.csv`, "export-csv"),
        downloadButton(t("export.xlsx"), () => `/api/v1/cases/export.xlsx?${apiQuery(false)}`, () => `${opts.view}.xlsx`, "export-xlsx"));
      bar.replaceChildren(...fields);
      bar.onsubmit = (ev) => {
        ev.preventDefault();
        state.status = f.status.value ? [f.status.value] : [];
        state.class_code = f.class_code.value; state.department_id = f.department_id.value;
        state.area_code = f.grid.value.trim() || f.area_code.value;
        state.light = f.light.value; state.from = f.from.value; state.to = f.to.value; state.q = f.q.value;
        state.sort = f.sort.value; state.offset = 0;
        go();
      };
      f.sort.onchange = () => bar.requestSubmit();
    }
    function header() {
      table.tHead.replaceChildren(el("tr", {}, opts.columns.map((c) => el("th", { text: t(c.title) }))));
    }
    function renderPager(page) {
      const from = page.total ? page.offset + 1 : 0, to = page.offset + page.items.length;
      const size = el("select", { class: "page-size", onchange: (e) => { state.limit = Number(e.target.value); state.offset = 0; go(); } },
        PAGE_SIZES.map((n) => el("option", { value: n, text: `${n} ${t("pager.per_page")}`, selected: n === state.limit })));
      pager.replaceChildren(
        el("span", { class: "total", dataset: { total: page.total }, text: t("pager.total").replace("{n}", page.total) }),
        el("span", { class: "range", text: page.total ? t("pager.range").replace("{a}", from).replace("{b}", to) : t("pager.empty") }),
        el("button", { type: "button", class: "prev secondary", disabled: state.offset <= 0, onclick: () => { state.offset = Math.max(0, state.offset - state.limit); go(); } }, t("pager.prev")),
        el("button", { type: "button", class: "next secondary", disabled: to >= page.total, onclick: () => { state.offset += state.limit; go(); } }, t("pager.next")),
        size);
    }
    async function load() {
      const mine = ++token;
      const page = await api(`/api/v1/cases?${apiQuery(true)}`);
      if (mine !== token) return;  // a newer load was started
      if (page.total && state.offset >= page.total) { state.offset = Math.max(0, Math.floor((page.total - 1) / state.limit) * state.limit); writeUrl(); return load(); }
      header();
      table.tBodies[0].replaceChildren(...page.items.map((c) => el("tr", {
        dataset: { caseId: c.id, number: c.number, status: c.status, light: c.light || "none" },
      }, opts.columns.map((col) => el("td", { class: col.cls || "" }, col.cell(c))))));
      renderPager(page);
      for (const c of page.items) seen.add(c.id);
      loaded = true;
      section.dataset.loaded = String(Date.now());
    }
    function go() {
      writeUrl(); renderBar();
      load().catch((e) => toast(e.message, "red"));
    }
    function refresh() { load().catch((e) => toast(e.message, "red")); }
    onCaseEvent((msg) => {
      if (!loaded || msg.type !== "event" || S.view !== opts.view) return;
      const c = msg.case;
      const arrives = opts.statuses.includes(c.status) && (!opts.accept || opts.accept(c));
      if (arrives && !seen.has(msg.case_id) && opts.announce) toast(`${t(opts.announce)}: ${c.number}`);
      if (arrives) seen.add(msg.case_id);
      clearTimeout(timer);
      timer = setTimeout(refresh, 250);
    });
    async function show(changed) {
      if (changed || !state) {
        state = readUrl();
        await loadAreas().catch(() => []);
        renderBar();
        refresh();
      }
    }
    return { show: show, reset: () => { if (state) { renderBar(); refresh(); } }, refresh: refresh };
  }

  function actionButton(c, action, body, done) {
    return el("button", {
      type: "button", class: "act act-" + action, dataset: { action: action },
      onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          await api(`/api/v1/cases/${c.id}/actions`, { body: Object.assign({ action: action, version: c.version }, body ? body() : {}) });
          toast(`${actionText(action)} · ${c.number} · ${t("toast.done")}`);
          if (done) done();
        } catch (e) {
          toast(e.message, "red");
          ev.target.disabled = false;
        }
      },
    }, actionText(action));
  }
  function deadlineCell(c) {
    if (!c.deadline_at) return c.light === "paused" ? t("light.paused") : "";
    const left = (new Date(c.deadline_at) - Date.now()) / 1000;
    return [fmtTime(c.deadline_at), el("div", { class: "muted small " + (left < 0 ? "overdue" : ""),
      text: left < 0 ? t("clock.overdue_by").replace("{d}", fmtDuration(-left)) : t("clock.left").replace("{d}", fmtDuration(left)) })];
  }
  const commonCols = [
    { title: "col.light", cell: (c) => lightDot(c.light) },
    { title: "col.number", cell: (c) => el("a", { href: "#", class: "case-link", onclick: (e) => { e.preventDefault(); openCase(c.id); } }, c.number) },
    { title: "col.class", cls: "class-name", cell: (c) => c.class_name || className(c.class_code) },
    { title: "col.address", cls: "address", cell: (c) => [txt(c.address), c.description ? el("div", { class: "muted small", text: c.description.slice(0, 60) }) : null] },
    { title: "col.status", cls: "status", cell: (c) => statusText(c.status) },
    { title: "col.created", cls: "created", cell: (c) => fmtTime(c.created_at) },
    { title: "col.deadline", cls: "deadline", cell: deadlineCell },
  ];
  function detailButton(c) { return el("button", { type: "button", class: "detail", onclick: () => openCase(c.id) }, t("btn.detail")); }

  // Supervision: new reports, public reports to verify, feedback to check, checked to close, self-handled to review.
  const supervision = queue({
    view: "supervision", table: "supervision-table", announce: "toast.new_case",
    statuses: ["reported", "public_reported", "feedback", "checked", "self_handled", "verifying", "checking"],
    columns: commonCols.concat([{ title: "col.actions", cell: (c) => {
      const quick = { reported: "file", checked: "close", self_handled: "approve_self_handled" }[c.status];
      const role = S.user && S.user.role;
      const can = role === "shift_leader";
      return [detailButton(c), quick && can ? actionButton(c, quick, null, () => supervision.refresh()) : null];
    } }]),
  });
  registerView("supervision", supervision);

  // Dispatch desk: filed cases (with the routing recommendation) and the departments' requests.
  const recCache = new Map();
  function recommendationCell(c) {
    const box = el("div", { class: "rec" });
    if (c.status !== "filed") return box;
    const fill = (rec) => {
      box.replaceChildren();
      if (!rec) return;
      const deptId = rec.department_id || (rec.department && rec.department.id);
      box.append(el("strong", { text: deptName(deptId) || txt(rec.department_name) }));
      const why = rec.explanation || rec.reason || rec.reasons || rec.why;
      if (typeof why === "string" || Array.isArray(why)) box.append(el("div", { class: "why", text: Array.isArray(why) ? why.filter((x) => typeof x === "string").join("；") : why }));
      const sel = box.closest("tr") && box.closest("tr").querySelector("select.dept");
      if (sel && deptId && !sel.dataset.touched) sel.value = String(deptId);
    };
    if (recCache.has(c.id)) { setTimeout(() => fill(recCache.get(c.id))); return box; }
    optional(`/api/v1/cases/${c.id}/recommendation`, "recommendation").then((rec) => {
      recCache.set(c.id, rec); fill(rec);
    }).catch(() => {});
    return box;
  }
  function deptSelect(c, required) {
    const sel = el("select", { class: "dept", required: required || null, name: "department_id", onchange: (e) => { e.target.dataset.touched = "1"; } },
      [el("option", { value: "", text: t("form.choose") })].concat(S.deptList.filter((d) => d.active).map((d) => el("option", { value: d.id, text: d.name }))));
    const rec = c && recCache.get(c.id);
    if (rec && rec.department_id) sel.value = String(rec.department_id);
    return sel;
  }
  const dispatchDesk = queue({
    view: "dispatch", table: "dispatch-table", announce: "toast.new_case",
    statuses: ["filed", "sendback_requested", "extension_requested", "suspension_requested", "suspended"],
    columns: commonCols.concat([
      { title: "col.recommendation", cell: (c) => recommendationCell(c) },
      { title: "col.actions", cell: (c) => {
        if (c.status === "filed") {
          const sel = deptSelect(c);
          return [sel, actionButton(c, "dispatch", () => {
            if (!sel.value) throw new Error(t("form.need_department"));
            return { department_id: Number(sel.value) };
          }, () => dispatchDesk.refresh()), detailButton(c)];
        }
        const approve = { sendback_requested: "approve_sendback", extension_requested: "approve_extension",
          suspension_requested: "approve_suspension", suspended: "resume" }[c.status];
        return [el("span", { class: "dept-name", text: deptName(c.department_id) }), " ",
          approve === "approve_extension" ? null : actionButton(c, approve, null, () => dispatchDesk.refresh()), detailButton(c)];
      } },
    ]),
  });
  registerView("dispatch", dispatchDesk);

  // Department inbox: dispatched to us (accept), handling (feed back, requests).
  const inbox = queue({
    view: "inbox", table: "inbox-table", announce: "toast.dispatched",
    statuses: ["dispatched", "handling", "sendback_requested", "extension_requested", "suspension_requested", "suspended"],
    accept: (c) => !S.user || S.user.role !== "department" || c.department_id === S.user.department_id,
    columns: commonCols.concat([{ title: "col.actions", cell: (c) => [
      c.status === "dispatched" ? actionButton(c, "accept", null, () => inbox.refresh()) : null, detailButton(c)] }]),
  });
  registerView("inbox", inbox);

  // ---- case file -----------------------------------------------------------------------------------------
  /* What each action's form asks for; "!" marks a required field (as the lifecycle requires it). */
  const NEEDS = {
    send_verify: ["!inspector"], send_check: ["!inspector"], dispatch: ["!department"], void: ["!note"],
    verify_false: ["!note"], reject_sendback: ["!note"], reject_extension: ["!note"], reject_suspension: ["!note"],
    request_sendback: ["!note"], request_suspension: ["!note"], check_fail: ["!note"],
    request_extension: ["!extension", "!note"], approve_extension: ["granted"], feedback: ["!photos", "note"],
    self_handle: ["!photos"], merge: ["!target"], return_self_handled: ["!note"], file: ["note"], close: ["note"],
    approve_self_handled: ["note"],
  };
  let openToken = 0;
  async function openCase(id) {
    const mine = ++openToken;
    const panel = document.getElementById("detail");
    const body = document.getElementById("detail-body");
    panel.hidden = false;
    document.body.classList.add("detail-open");  // the queue narrows so the panel covers none of it
    body.replaceChildren(el("p", { text: t("map.loading") }));
    try {
      const [c, events] = await Promise.all([api(`/api/v1/cases/${id}`), api(`/api/v1/cases/${id}/events`)]);
      if (mine !== openToken) return;  // another case (or a newer state of this one) is being opened
      body.replaceChildren(...renderCase(c, events));
      panel.dataset.caseId = id;
      panel.dataset.status = c.status;
      drawMiniMap(c, body.querySelector(".case-map"));
      // These fill parts of this rendering later; a newer openCase may have replaced it by then.
      const current = body.firstElementChild;
      const still = () => body.firstElementChild === current;
      loadDuplicates(c, body, still).catch(() => {});
      loadComponent(c, body, still).catch(() => {});
    } catch (e) { if (mine === openToken) body.replaceChildren(el("p", { class: "error", text: e.message })); }
  }
  function drawMiniMap(c, box) {
    if (!box) return;
    if (window.MiniMap && typeof window.MiniMap.show === "function") {
      try { window.MiniMap.show(box, c); return; } catch (e) { /* fall through */ }
    }
    box.classList.add("placeholder");
    box.replaceChildren(el("span", { text: `${t("detail.map_pending")} · ${c.lon.toFixed(6)}, ${c.lat.toFixed(6)}` }));
  }
  function flagText(f) {
    let msg = I18N.err(f.code);
    if (f.code === "photo.far_from_claim" && f.value != null) msg += `（${Math.round(f.value)} m）`;
    else if ((f.code === "photo.old" || f.code === "photo.taken_after_claim") && f.value != null) msg += `（${fmtDuration(f.value)}）`;
    return msg;
  }
  function photoFigure(att) {
    const img = el("img", { class: "thumb", alt: t("photo.role." + att.role) });
    api(att.thumb_url, { blob: true }).then((b) => { img.src = URL.createObjectURL(b); }).catch(() => {});
    img.addEventListener("click", () => {
      api(att.display_url, { blob: true }).then((b) => window.open(URL.createObjectURL(b), "_blank")).catch((e) => toast(e.message, "red"));
    });
    const flags = att.flags || [];
    return el("figure", { class: "photo" + (flags.length ? " flagged" : ""), dataset: { attachment: att.id, flags: flags.length } }, [
      img,
      el("figcaption", {}, [
        el("span", { class: "role", text: t("photo.role." + att.role) }),
        att.taken_at ? el("span", { class: "muted small", text: " · " + t("photo.taken") + " " + fmtTime(att.taken_at) }) : null,
        flags.length ? el("ul", { class: "flags" }, flags.map((f) => el("li", { class: "flag", dataset: { code: f.code }, text: "⚠ " + flagText(f) }))) : null,
      ]),
    ]);
  }
  function unitText(u) { return t("unit." + u); }
  function limitText(lim) {
    if (!lim) return "";
    const [v, u] = lim.split(" ");
    return `${v} ${unitText(u)}`;
  }
  function kv(label, value, cls) {
    if (value === null || value === undefined || value === "") return null;
    return el("div", { class: "kv " + (cls || "") }, [el("span", { class: "k", text: t(label) }), el("span", { class: "v" }, value)]);
  }
  function renderCase(c, events) {
    const out = [
      el("h3", {}, [lightDot(c.light), ` ${c.number} · `, el("span", { class: "class-name", text: c.class_name || className(c.class_code) })]),
      el("div", { class: "facts" }, [
        kv("col.status", statusText(c.status), "status"),
        kv("col.class", `${c.class_name || className(c.class_code)}（${c.class_code}）`),
        kv("detail.urgency", t("urgency." + c.urgency)),
        kv("col.department", deptName(c.department_id)),
        kv("col.address", txt(c.address), "address"),
        kv("detail.description", txt(c.description)),
        kv("detail.grid", txt(c.grid_code)),
        kv("detail.source", t("source." + c.source)),
        kv("col.created", fmtTime(c.created_at)),
        c.assigned_inspector_id ? kv("detail.inspector", userName(c.assigned_inspector_id)) : null,
        c.component_id ? kv("detail.component", el("span", { class: "component", text: c.component_id })) : null,
        c.reporter ? kv("detail.caller", `${txt(c.reporter.name)} ${txt(c.reporter.phone)} ${txt(c.reporter.email)}`.trim(), "private") : null,
      ]),
      el("div", { class: "case-map", id: "case-minimap", dataset: { lon: c.lon, lat: c.lat } }),
    ];
    if (c.requested_extension && c.status === "extension_requested") {
      out.push(el("p", { class: "extension-asked" }, [el("b", { text: t("detail.extension_asked") + "：" }),
        `${c.requested_extension.value} ${unitText(c.requested_extension.unit)}`]));
    }
    if (c.clocks.length) {
      out.push(el("h4", { text: t("detail.clocks") }), el("table", { class: "clocks" }, [
        el("thead", {}, el("tr", {}, ["clock.stage", "clock.limit", "clock.started", "col.deadline", "col.light"].map((k) => el("th", { text: t(k) })))),
        el("tbody", {}, c.clocks.map((k) => el("tr", { dataset: { stage: k.stage, light: k.light } }, [
          el("td", { text: t("stage." + k.stage) }),
          el("td", {}, [limitText(k.limit), ...k.extensions.map((x) => el("div", { class: "muted small", text: `+${x.value} ${unitText(x.unit)}` }))]),
          el("td", { text: fmtTime(k.started_at) }),
          el("td", {}, [fmtTime(k.deadline), k.ended_at ? el("div", { class: "muted small", text: t("clock.ended") + " " + fmtTime(k.ended_at) }) : null,
            !k.ended_at && k.overdue_seconds > 0 ? el("div", { class: "small overdue", text: t("clock.overdue_by").replace("{d}", fmtDuration(k.overdue_seconds)) }) : null]),
          el("td", {}, [lightDot(k.light), " ", t("light." + k.light)]),
        ]))),
      ]));
    }
    const photos = events.flatMap((e) => e.attachments);
    if (photos.length) out.push(el("h4", { text: t("detail.photos") }), el("div", { class: "photos" }, photos.map(photoFigure)));
    if (c.allowed_actions.length) {
      out.push(el("h4", { text: t("detail.actions") }), el("div", { class: "actions" }, c.allowed_actions.map((a) => actionForm(c, a))));
    }
    out.push(el("div", { id: "dups" }));
    out.push(el("h4", { text: t("detail.timeline") }), el("ol", { class: "timeline" }, events.map((e) =>
      el("li", { dataset: { action: e.action } }, [el("b", { text: actionText(e.action) }),
        ` ${fmtTime(e.at)} · ${e.actor_role ? t("role." + e.actor_role) : t("role.system")} → ${statusText(e.to_status)}`,
        eventDetail(e), e.note ? el("div", { class: "muted", text: e.note }) : null]))));
    return out;
  }
  function eventDetail(e) {
    const d = e.data || {}, bits = [];
    if (d.department_id) bits.push(`${t("col.department")}：${deptName(d.department_id)}`);
    if (d.inspector_id) bits.push(`${t("detail.inspector")}：${userName(d.inspector_id)}`);
    if (d.extension) bits.push(`${t("detail.extension")}：${d.extension.value} ${unitText(d.extension.unit)}`);
    if (d.target_case_id) bits.push(`${t("action.merge")} → #${d.target_case_id}`);
    if (d.merged_case_number) bits.push(`${t("action.merge")}：${d.merged_case_number}`);
    return bits.length ? el("div", { class: "small", text: bits.join(" · ") }) : null;
  }
  function labelled(key, input, required) {
    return el("label", { class: required ? "required" : null }, [el("span", { text: t(key) + (required ? " *" : "") }), input]);
  }
  function actionForm(c, action) {
    const needs = NEEDS[action] || [];
    const has = (n) => needs.includes(n) || needs.includes("!" + n);
    const req = (n) => needs.includes("!" + n);
    const form = el("form", { class: "action-form", dataset: { action: action } });
    form.append(el("b", { class: "action-name", text: actionText(action) }));
    const fields = {};
    if (has("department")) {
      fields.department = deptSelect(c, req("department"));
      form.append(labelled("detail.department", fields.department, req("department")));
    }
    if (has("inspector")) {
      fields.inspector = el("select", { name: "inspector_id", required: true }, [el("option", { value: "", text: t("form.choose") })]
        .concat(S.inspectors.filter((u) => u.active).map((u) => el("option", { value: u.id, text: u.display_name }))));
      if (c.assigned_inspector_id) fields.inspector.value = String(c.assigned_inspector_id);
      form.append(labelled("detail.inspector", fields.inspector, true));
    }
    if (has("extension")) {
      const units = c.extension_units && c.extension_units.length ? c.extension_units : ["work_day", "work_hour"];
      fields.ext = el("input", { type: "number", name: "extension_value", min: "0.5", max: "10000", step: "0.5", value: "1", required: true });
      fields.unit = el("select", { name: "extension_unit", required: true }, units.map((u) => el("option", { value: u, text: unitText(u) })));
      form.append(labelled("detail.extension", el("span", { class: "inline" }, [fields.ext, fields.unit]), true));
    }
    if (has("granted") && c.requested_extension) {
      form.append(el("span", { class: "granted" }, `${t("detail.extension_asked")}：${c.requested_extension.value} ${unitText(c.requested_extension.unit)}`));
    }
    if (has("photos")) {
      fields.photos = el("input", { type: "file", accept: "image/jpeg,image/png,image/webp", multiple: true, name: "photos", required: req("photos") });
      form.append(labelled("detail.photos", fields.photos, req("photos")));
    }
    if (has("target")) {
      fields.target = el("input", { type: "number", min: "1", name: "target", required: true });
      form.append(labelled("detail.target", fields.target, true));
    }
    if (has("note")) {
      fields.note = el("input", { type: "text", name: "note", maxlength: "4000", required: req("note") });
      form.append(labelled("detail.note", fields.note, req("note")));
    }
    form.append(el("button", { type: "submit", class: "act act-" + action }, actionText(action)));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!form.reportValidity()) return;
      const body = { action: action, version: c.version };
      const btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      try {
        if (fields.department) body.department_id = Number(fields.department.value);
        if (fields.inspector) body.inspector_id = Number(fields.inspector.value);
        if (fields.ext) body.extension = { value: Number(fields.ext.value), unit: fields.unit.value };
        if (fields.note && fields.note.value.trim()) body.note = fields.note.value.trim();
        if (fields.target) body.target_case_id = Number(fields.target.value);
        if (fields.photos && fields.photos.files.length) {
          const fd = new FormData();
          for (const f of fields.photos.files) fd.append("files", f);
          const atts = await api("/api/v1/attachments", { method: "POST", body: fd });
          body.attachment_ids = atts.map((a) => a.id);
        }
        await api(`/api/v1/cases/${c.id}/actions`, { body: body });
        toast(`${actionText(action)} · ${c.number} · ${t("toast.done")}`);
        openCase(c.id);
        const h = VIEW_HOOKS[S.view]; if (h && h.refresh) h.refresh();
      } catch (e) { toast(e.message, "red"); btn.disabled = false; }
    });
    return form;
  }
  async function loadComponent(c, body, still) {
    if (!c.component_id) return;
    const comp = await optional(`/api/v1/components/${encodeURIComponent(c.component_id)}`, "components").catch(() => null);
    const span = body.querySelector(".component");
    if (!comp || !span || !still()) return;
    const p = comp.feature.properties || {};
    span.textContent = `${c.component_id} · ${className(p.class_code)} · ${txt(p.state)}${p.main_department_id ? " · " + deptName(p.main_department_id) : ""}`;
  }
  async function loadDuplicates(c, body, still) {
    if (!["reported", "public_reported"].includes(c.status)) return;
    const dups = await optional(`/api/v1/cases/${c.id}/duplicates`, "duplicates").catch(() => null);
    const items = dups && (Array.isArray(dups) ? dups : dups.items);
    if (!items || !items.length || !still()) return;
    const box = body.querySelector("#dups");
    if (!box) return;
    box.append(el("h4", { text: t("detail.duplicates") }), el("ul", {}, items.map((d) => {
      const other = { id: d.case_id || (d.case && d.case.id) || d.id, number: d.number || (d.case && d.case.number) };
      const li = el("li", {}, [`${other.number || "#" + other.id} · ${className(d.class_code)} ${d.distance_m != null ? Math.round(d.distance_m) + " m" : ""} `]);
      if (c.allowed_actions.includes("merge")) {
        li.append(actionButton(c, "merge", () => ({ target_case_id: other.id }), () => openCase(c.id)));
      }
      return li;
    })));
  }

  // ---- wiring --------------------------------------------------------------------------------------------
  document.getElementById("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    document.getElementById("login-error").textContent = "";
    try { await login(f.username.value, f.password.value); } catch (e) {
      document.getElementById("login-error").textContent = e.status === 401 ? t("login.failed") : e.message;
    }
  });
  document.getElementById("logout").addEventListener("click", logout);
  document.getElementById("detail-close").addEventListener("click", () => {
    document.getElementById("detail").hidden = true;
    document.body.classList.remove("detail-open");
  });
  document.getElementById("lang").addEventListener("click", () => {
    I18N.set(I18N.lang === "zh" ? "en" : "zh");
    document.getElementById("lang").textContent = I18N.lang === "zh" ? "EN" : "中文";
    if (S.view && VIEW_HOOKS[S.view] && VIEW_HOOKS[S.view].reset) VIEW_HOOKS[S.view].reset();
    const panel = document.getElementById("detail");
    if (!panel.hidden && panel.dataset.caseId) openCase(panel.dataset.caseId);
  });
  document.getElementById("nav").addEventListener("click", (ev) => {
    const a = ev.target.closest("a[data-view]");
    if (!a) return;
    ev.preventDefault();
    showView(a.dataset.view);
  });
  document.querySelectorAll("button.reload").forEach((b) => b.addEventListener("click", () => {
    const h = VIEW_HOOKS[S.view]; if (h && h.refresh) h.refresh();
  }));
  window.addEventListener("DOMContentLoaded", async () => {
    await I18N.loadErrors();
    I18N.apply();
    document.getElementById("lang").textContent = I18N.lang === "zh" ? "EN" : "中文";
    if (S.token) start(); else showLogin();
  });

  return { api: api, optional: optional, el: el, t: t, S: S, registerView: registerView, onCaseEvent: onCaseEvent,
    openCase: openCase, toast: toast, fmtTime: fmtTime, deptName: deptName, showView: showView, download: download,
    downloadButton: downloadButton, className: className, classOptions: classOptions, txt: txt, labelled: labelled,
    hashParams: hashParams, ApiError: ApiError };
})();

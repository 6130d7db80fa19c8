/* The web console: login, the live stream, the case desks (supervision, dispatch, department inbox) and the
   case detail panel. Plain JavaScript, no third-party code; map.js and dashboard.js add the other views. */
"use strict";
const App = (function () {
  const t = I18N.t;
  const S = {
    token: sessionStorage.getItem("gridcity.token"),
    user: JSON.parse(sessionStorage.getItem("gridcity.user") || "null"),
    depts: {}, deptList: [], inspectors: [],
    lastId: null, lastAlertId: null, ws: null, wsRetry: 0, wsTimer: null,
    view: null, listeners: [], features: {},
  };

  // ---- helpers -------------------------------------------------------------------------------------------
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "text") e.textContent = v;
      else if (k === "dataset") Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of [].concat(children || [])) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  }
  function toast(msg, kind) {
    const box = document.getElementById("toasts");
    const item = el("div", { class: "toast " + (kind || "") , text: msg });
    box.append(item);
    setTimeout(() => item.remove(), 6000);
  }
  class ApiError extends Error {
    constructor(status, body) {
      const d = body && body.detail && body.detail[0];
      super(d ? `${d.msg} (${d.type})` : `HTTP ${status}`);
      this.status = status; this.body = body; this.type = d ? d.type : null;
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
    const r = await fetch(path, { method: opts.method || (body ? "POST" : "GET"), headers: headers, body: body });
    if (r.status === 401 && S.token && !opts.noLogout) { logout(); throw new ApiError(401, null); }
    if (opts.blob) { if (!r.ok) throw new ApiError(r.status, null); return r.blob(); }
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
  function deptName(id) { return id == null ? "" : (S.depts[id] ? S.depts[id].name : "#" + id); }
  function lightDot(light) {
    return el("span", { class: "light " + (light || "none"), title: t("light." + (light || "none")) });
  }
  function statusText(s) { return t("status." + s); }
  function actionText(a) { return t("action." + a); }

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
    acceptor: ["supervision", "map"], shift_leader: ["supervision", "map"], dispatcher: ["dispatch", "map"],
    department: ["inbox", "map"], leader: ["dashboard", "map"], inspector: ["map"],
    admin: ["supervision", "dispatch", "inbox", "map", "dashboard"],
  };

  async function start() {
    try {
      S.user = await api("/api/v1/auth/me");
    } catch (e) { showLogin(); return; }
    const depts = await api("/api/v1/departments").catch(() => []);
    S.deptList = depts; S.depts = Object.fromEntries(depts.map((d) => [d.id, d]));
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
    const wanted = location.hash.slice(1);
    connectLive();
    showView(views.includes(wanted) ? wanted : views[0]);
  }

  const VIEW_HOOKS = {};
  function registerView(name, hooks) { VIEW_HOOKS[name] = hooks; }
  function showView(name) {
    document.querySelectorAll(".view").forEach((s) => { s.hidden = s.id !== "view-" + name; });
    document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === name));
    S.view = name;
    if (name !== "login" && location.hash.slice(1) !== name) history.replaceState(null, "", "#" + name);
    const hooks = VIEW_HOOKS[name];
    if (hooks && hooks.show) hooks.show();
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
      default:
        break;
    }
  }
  function onCaseEvent(fn) { S.listeners.push(fn); }

  // ---- case tables ---------------------------------------------------------------------------------------
  /* A desk: a table of the cases in some statuses, kept current by the live stream. */
  function caseDesk(opts) {
    const table = document.getElementById(opts.table);
    const rows = new Map();  // case id -> row data
    let loaded = false;
    function header() {
      const tr = el("tr", {}, opts.columns.map((c) => el("th", { text: t(c.title) })));
      table.tHead.replaceChildren(tr);
    }
    function render() {
      const list = [...rows.values()].sort((a, b) => b.id - a.id);
      table.tBodies[0].replaceChildren(...list.map((c) => el("tr", {
        dataset: { caseId: c.id, number: c.number, status: c.status, light: c.light || "none" },
      }, opts.columns.map((col) => el("td", { class: col.cls || "" }, col.cell(c, refresh))))));
    }
    async function load() {
      const q = opts.statuses.map((s) => "status=" + s).join("&");
      const page = await api(`/api/v1/cases?${q}&limit=200`);
      rows.clear();
      for (const c of page.items) rows.set(c.id, c);
      loaded = true;
      header(); render();
    }
    function refresh() { load().catch((e) => toast(e.message, "red")); }
    onCaseEvent((msg) => {
      if (!loaded || msg.type !== "event") return;
      const c = msg.case;
      const row = Object.assign({}, rows.get(msg.case_id) || { created_at: msg.at }, {
        id: msg.case_id, number: c.number, status: c.status, version: c.version, class_code: c.class_code,
        urgency: c.urgency, lon: c.lon, lat: c.lat, grid_code: c.grid_code, department_id: c.department_id,
        stage: c.stage, deadline_at: c.deadline_at, light: c.light,
      });
      const wanted = opts.statuses.includes(c.status) && (!opts.accept || opts.accept(row));
      const had = rows.has(msg.case_id);
      if (wanted) rows.set(msg.case_id, row); else rows.delete(msg.case_id);
      if (wanted && !had && opts.announce) toast(`${t(opts.announce)}: ${c.number}`);
      if (wanted || had) render();
    });
    return { show: () => { if (!loaded) refresh(); }, reset: () => { if (loaded) refresh(); }, refresh: refresh };
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
  const commonCols = [
    { title: "col.light", cell: (c) => lightDot(c.light) },
    { title: "col.number", cell: (c) => el("a", { href: "#", class: "case-link", onclick: (e) => { e.preventDefault(); openCase(c.id); } }, c.number) },
    { title: "col.class", cell: (c) => c.class_code },
    { title: "col.status", cls: "status", cell: (c) => statusText(c.status) },
    { title: "col.created", cell: (c) => fmtTime(c.created_at) },
    { title: "col.deadline", cell: (c) => fmtTime(c.deadline_at) },
  ];
  function detailButton(c) { return el("button", { type: "button", class: "detail", onclick: () => openCase(c.id) }, t("btn.detail")); }

  // Supervision: new reports, public reports to verify, feedback to check, checked to close.
  const supervision = caseDesk({
    table: "supervision-table", announce: "toast.new_case",
    statuses: ["reported", "public_reported", "feedback", "checked", "self_handled", "verifying", "checking"],
    columns: commonCols.concat([{ title: "col.actions", cell: (c, refresh) => {
      const quick = { reported: "file", checked: "close", self_handled: "approve_self_handled" }[c.status];
      const role = S.user && S.user.role;
      const can = role === "shift_leader" || role === "admin";
      return [detailButton(c), quick && can ? actionButton(c, quick) : null];
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
      box.append(el("strong", { text: deptName(deptId) || rec.department_name || "" }));
      const why = rec.explanation || rec.reason || rec.reasons || rec.why;
      if (why) box.append(el("div", { class: "why", text: Array.isArray(why) ? why.join("；") : (typeof why === "string" ? why : JSON.stringify(why)) }));
      const sel = box.closest("tr") && box.closest("tr").querySelector("select.dept");
      if (sel && deptId && !sel.dataset.touched) sel.value = String(deptId);
    };
    if (recCache.has(c.id)) { setTimeout(() => fill(recCache.get(c.id))); return box; }
    optional(`/api/v1/cases/${c.id}/recommendation`, "recommendation").then((rec) => {
      recCache.set(c.id, rec); fill(rec);
    }).catch(() => {});
    return box;
  }
  function deptSelect(c) {
    const sel = el("select", { class: "dept", onchange: (e) => { e.target.dataset.touched = "1"; } },
      [el("option", { value: "", text: "—" })].concat(S.deptList.filter((d) => d.active).map((d) => el("option", { value: d.id, text: d.name }))));
    const rec = recCache.get(c.id);
    if (rec && rec.department_id) sel.value = String(rec.department_id);
    return sel;
  }
  const dispatchDesk = caseDesk({
    table: "dispatch-table", announce: "toast.new_case",
    statuses: ["filed", "sendback_requested", "extension_requested", "suspension_requested", "suspended"],
    columns: commonCols.concat([
      { title: "col.recommendation", cell: (c) => recommendationCell(c) },
      { title: "col.actions", cell: (c) => {
        if (c.status === "filed") {
          const sel = deptSelect(c);
          return [sel, actionButton(c, "dispatch", () => {
            if (!sel.value) throw new Error("department?");
            return { department_id: Number(sel.value) };
          }), detailButton(c)];
        }
        const approve = { sendback_requested: "approve_sendback", extension_requested: "approve_extension",
          suspension_requested: "approve_suspension", suspended: "resume" }[c.status];
        return [el("span", { class: "dept-name", text: deptName(c.department_id) }), actionButton(c, approve), detailButton(c)];
      } },
    ]),
  });
  registerView("dispatch", dispatchDesk);

  // Department inbox: dispatched to us (accept), handling (feed back, requests).
  const inbox = caseDesk({
    table: "inbox-table", announce: "toast.dispatched",
    statuses: ["dispatched", "handling", "sendback_requested", "extension_requested", "suspension_requested", "suspended"],
    accept: (c) => !S.user || S.user.role !== "department" || c.department_id === S.user.department_id,
    columns: commonCols.concat([{ title: "col.actions", cell: (c) => [
      c.status === "dispatched" ? actionButton(c, "accept") : null, detailButton(c)] }]),
  });
  registerView("inbox", inbox);

  // ---- case detail ---------------------------------------------------------------------------------------
  const NEEDS = {
    send_verify: ["inspector"], send_check: ["inspector"], dispatch: ["department"], void: ["note"],
    verify_false: ["note"], reject_sendback: ["note"], reject_extension: ["note"], reject_suspension: ["note"],
    request_sendback: ["note"], request_suspension: ["note"], check_fail: ["note"],
    request_extension: ["extension", "note"], approve_extension: [], feedback: ["photos", "note"],
    self_handle: ["photos"], merge: ["target"],
  };
  async function openCase(id) {
    const panel = document.getElementById("detail");
    const body = document.getElementById("detail-body");
    panel.hidden = false;
    body.replaceChildren(el("p", { text: t("map.loading") }));
    try {
      const [c, events] = await Promise.all([api(`/api/v1/cases/${id}`), api(`/api/v1/cases/${id}/events`)]);
      body.replaceChildren(...renderCase(c, events));
      panel.dataset.caseId = id;
      loadDuplicates(c, body);
    } catch (e) { body.replaceChildren(el("p", { class: "error", text: e.message })); }
  }
  function thumb(att) {
    const img = el("img", { class: "thumb", alt: att.role });
    api(att.thumb_url, { blob: true }).then((b) => { img.src = URL.createObjectURL(b); }).catch(() => {});
    return img;
  }
  function renderCase(c, events) {
    const out = [
      el("h3", {}, [lightDot(c.light), ` ${c.number} · ${c.class_name || c.class_code}`]),
      el("p", {}, [statusText(c.status), " · ", deptName(c.department_id)]),
      c.description ? el("p", { text: c.description }) : null,
      c.address ? el("p", { class: "muted", text: c.address }) : null,
    ];
    const photos = events.flatMap((e) => e.attachments);
    if (photos.length) out.push(el("h4", { text: t("detail.photos") }), el("div", { class: "photos" }, photos.map(thumb)));
    out.push(el("div", { class: "actions" }, c.allowed_actions.map((a) => actionForm(c, a))));
    out.push(el("div", { id: "dups" }));
    out.push(el("h4", { text: t("detail.timeline") }), el("ol", { class: "timeline" }, events.map((e) =>
      el("li", {}, [el("b", { text: actionText(e.action) }), ` ${fmtTime(e.at)} → ${statusText(e.to_status)}`,
        e.note ? el("div", { class: "muted", text: e.note }) : null]))));
    return out;
  }
  function actionForm(c, action) {
    const needs = NEEDS[action] || [];
    const form = el("form", { class: "action-form", dataset: { action: action } });
    const fields = {};
    if (needs.includes("department")) {
      fields.department = deptSelect(c);
      form.append(el("label", {}, [t("detail.department"), fields.department]));
    }
    if (needs.includes("inspector")) {
      fields.inspector = el("select", {}, S.inspectors.map((u) => el("option", { value: u.id, text: u.display_name })));
      form.append(el("label", {}, [t("detail.inspector"), fields.inspector]));
    }
    if (needs.includes("extension")) {
      fields.ext = el("input", { type: "number", min: "0.5", step: "0.5", value: "1" });
      fields.unit = el("select", {}, ["work_day", "work_hour", "day", "hour"].map((u) => el("option", { value: u, text: u })));
      form.append(el("label", {}, [t("detail.extension"), fields.ext, fields.unit]));
    }
    if (needs.includes("photos")) {
      fields.photos = el("input", { type: "file", accept: "image/jpeg,image/png,image/webp", multiple: true, name: "photos" });
      form.append(el("label", {}, [t("detail.photos"), fields.photos]));
    }
    if (needs.includes("target")) {
      fields.target = el("input", { type: "number", min: "1", name: "target" });
      form.append(el("label", {}, ["#", fields.target]));
    }
    if (needs.includes("note")) {
      fields.note = el("input", { type: "text", name: "note", maxlength: "4000" });
      form.append(el("label", {}, [t("detail.note"), fields.note]));
    }
    form.append(el("button", { type: "submit", class: "act act-" + action }, actionText(action)));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { action: action, version: c.version };
      try {
        if (fields.department) body.department_id = Number(fields.department.value);
        if (fields.inspector) body.inspector_id = Number(fields.inspector.value);
        if (fields.ext) body.extension = { value: Number(fields.ext.value), unit: fields.unit.value };
        if (fields.note && fields.note.value) body.note = fields.note.value;
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
      } catch (e) { toast(e.message, "red"); }
    });
    return form;
  }
  async function loadDuplicates(c, body) {
    if (!["reported", "public_reported"].includes(c.status)) return;
    const dups = await optional(`/api/v1/cases/${c.id}/duplicates`, "duplicates").catch(() => null);
    const items = dups && (Array.isArray(dups) ? dups : dups.items);
    if (!items || !items.length) return;
    const box = body.querySelector("#dups");
    box.append(el("h4", { text: t("detail.duplicates") }), el("ul", {}, items.map((d) => {
      const other = { id: d.case_id || (d.case && d.case.id) || d.id, number: d.number || (d.case && d.case.number) };
      const li = el("li", {}, [`${other.number || "#" + other.id} · ${d.class_code || ""} ${d.distance_m != null ? Math.round(d.distance_m) + " m" : ""} `]);
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
      document.getElementById("login-error").textContent = t("login.failed");
    }
  });
  document.getElementById("logout").addEventListener("click", logout);
  document.getElementById("detail-close").addEventListener("click", () => { document.getElementById("detail").hidden = true; });
  document.getElementById("lang").addEventListener("click", () => {
    I18N.set(I18N.lang === "zh" ? "en" : "zh");
    document.getElementById("lang").textContent = I18N.lang === "zh" ? "EN" : "中文";
    if (S.view && VIEW_HOOKS[S.view] && VIEW_HOOKS[S.view].reset) VIEW_HOOKS[S.view].reset();
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
  window.addEventListener("DOMContentLoaded", () => {
    I18N.apply();
    document.getElementById("lang").textContent = I18N.lang === "zh" ? "EN" : "中文";
    if (S.token) start(); else showLogin();
  });

  return { api: api, optional: optional, el: el, t: t, S: S, registerView: registerView, onCaseEvent: onCaseEvent,
    openCase: openCase, toast: toast, fmtTime: fmtTime, deptName: deptName, showView: showView };
})();

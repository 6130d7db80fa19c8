/* Administration: departments as a tree, users (create, role, department, password reset, deactivate) and
   inspectors' supervision areas (监督员责任区). */
"use strict";
(function () {
  const { api, el, t, S, toast, labelled } = App;
  const $ = (id) => document.getElementById(id);
  const ROLES = ["inspector", "acceptor", "shift_leader", "dispatcher", "department", "leader", "admin"];

  async function reloadDepartments() {
    S.deptList = await api("/api/v1/departments");
    S.depts = Object.fromEntries(S.deptList.map((d) => [d.id, d]));
  }
  function deptOptions(selected, emptyKey) {
    return [el("option", { value: "", text: t(emptyKey || "form.none") })]
      .concat(S.deptList.filter((d) => d.active || d.id === selected).map((d) => el("option", { value: d.id, text: `${d.name}（${d.code}）`, selected: d.id === selected })));
  }
  async function run(fn, okKey) {
    try { await fn(); if (okKey) toast(t(okKey)); await render(); } catch (e) { toast(e.message, "red"); }
  }

  function departmentTree() {
    const kids = new Map();
    for (const d of S.deptList) { const p = d.parent_id || 0; if (!kids.has(p)) kids.set(p, []); kids.get(p).push(d); }
    const node = (d) => {
      const parent = el("select", { class: "parent", onchange: (e) => run(() => api(`/api/v1/departments/${d.id}`, { method: "PATCH",
        body: e.target.value ? { parent_id: Number(e.target.value) } : { clear_parent: true } }), "toast.saved") },
        deptOptions(d.parent_id, "admin.top_level").filter((o) => o.value !== String(d.id)));
      return el("li", { dataset: { deptId: d.id, code: d.code } }, [
        el("span", { class: "name" + (d.active ? "" : " inactive"), text: `${d.name}（${d.code}）` }),
        el("span", { class: "muted small", text: ` ${t("admin.parent")}` }), parent,
        el("button", { type: "button", class: "secondary small", onclick: () => run(() => api(`/api/v1/departments/${d.id}`, {
          method: "PATCH", body: { active: !d.active } }), "toast.saved") }, d.active ? t("admin.deactivate") : t("admin.activate")),
        kids.has(d.id) ? el("ul", {}, kids.get(d.id).map(node)) : null,
      ]);
    };
    const f = { code: el("input", { name: "code", required: true, maxlength: 32 }), name: el("input", { name: "name", required: true, maxlength: 100 }),
      parent: el("select", { name: "parent_id" }, deptOptions(null, "admin.top_level")) };
    const form = el("form", { class: "inline-form", id: "dept-create" }, [labelled("admin.code", f.code, true), labelled("admin.name", f.name, true),
      labelled("admin.parent", f.parent), el("button", { type: "submit" }, t("admin.add"))]);
    form.onsubmit = (ev) => { ev.preventDefault(); run(() => api("/api/v1/departments", { body: { code: f.code.value.trim(), name: f.name.value.trim(),
      parent_id: f.parent.value ? Number(f.parent.value) : null } }), "toast.saved"); };
    return [el("ul", { class: "tree", id: "dept-tree" }, (kids.get(0) || []).map(node)), form];
  }

  function usersTable() {
    const rows = S.users.map((u) => {
      const role = el("select", { class: "role" }, ROLES.map((r) => el("option", { value: r, text: t("role." + r), selected: r === u.role })));
      const dept = el("select", { class: "dept" }, deptOptions(u.department_id));
      const save = el("button", { type: "button", class: "save small", onclick: () => run(() => api(`/api/v1/users/${u.id}`, { method: "PATCH",
        body: Object.assign({ role: role.value }, dept.value ? { department_id: Number(dept.value) } : { clear_department: true }) }), "toast.saved") }, t("admin.save"));
      const pw = el("input", { type: "password", class: "pw", minlength: 8, maxlength: 200, placeholder: t("admin.new_password"), autocomplete: "new-password" });
      const reset = el("button", { type: "button", class: "reset small secondary", onclick: () => {
        if (pw.value.length < 8) { toast(I18N.err("string_too_short") + "（8）", "red"); return; }
        run(() => api(`/api/v1/users/${u.id}/password`, { body: { password: pw.value } }), "admin.password_reset");
      } }, t("admin.reset_password"));
      const act = el("button", { type: "button", class: (u.active ? "deactivate" : "activate") + " small secondary",
        onclick: () => run(() => api(`/api/v1/users/${u.id}/${u.active ? "deactivate" : "activate"}`, { method: "POST" }), "toast.saved") },
        u.active ? t("admin.deactivate") : t("admin.activate"));
      return el("tr", { dataset: { userId: u.id, username: u.username, active: String(u.active) }, class: u.active ? "" : "inactive" }, [
        el("td", { text: u.username }), el("td", { text: u.display_name }), el("td", {}, role), el("td", {}, dept),
        el("td", { text: u.active ? t("admin.active") : t("admin.inactive") }), el("td", {}, [save, " ", pw, reset, " ", act]),
      ]);
    });
    const f = { username: el("input", { name: "username", required: true, minlength: 2, maxlength: 64, pattern: "[A-Za-z0-9_.\\-]+", autocomplete: "off" }),
      display: el("input", { name: "display_name", maxlength: 100 }),
      password: el("input", { name: "password", type: "password", required: true, minlength: 8, maxlength: 200, autocomplete: "new-password" }),
      role: el("select", { name: "role", required: true }, ROLES.map((r) => el("option", { value: r, text: t("role." + r) }))),
      dept: el("select", { name: "department_id" }, deptOptions(null)) };
    const sync = () => { f.dept.required = f.role.value === "department"; f.dept.closest("label").classList.toggle("required", f.dept.required); };
    f.role.addEventListener("change", sync);
    const form = el("form", { class: "inline-form", id: "user-create" }, [labelled("admin.username", f.username, true), labelled("admin.display_name", f.display),
      labelled("login.password", f.password, true), labelled("admin.role", f.role, true), labelled("col.department", f.dept),
      el("button", { type: "submit" }, t("admin.add"))]);
    form.onsubmit = (ev) => {
      ev.preventDefault();
      if (!form.reportValidity()) return;
      run(() => api("/api/v1/users", { body: { username: f.username.value.trim(), password: f.password.value, role: f.role.value,
        display_name: f.display.value.trim() || null, department_id: f.dept.value ? Number(f.dept.value) : null } }), "admin.user_created");
    };
    setTimeout(sync);
    return [form, el("table", { class: "cases", id: "users-table" }, [
      el("thead", {}, el("tr", {}, ["admin.username", "admin.display_name", "admin.role", "col.department", "admin.state", "col.actions"].map((k) => el("th", { text: t(k) })))),
      el("tbody", {}, rows)])];
  }

  function areasTable() {
    const inspectors = S.users.filter((u) => u.role === "inspector" && u.active);
    const inspSelect = (sel) => el("select", { class: "inspector" }, [el("option", { value: "", text: t("form.none") })]
      .concat(inspectors.map((u) => el("option", { value: u.id, text: u.display_name, selected: u.id === sel }))));
    const rows = S.supAreas.map((a) => {
      const sel = inspSelect(a.inspector_id);
      const grids = el("textarea", { class: "grids", rows: 1, text: a.grid_codes.join(" ") });
      return el("tr", { dataset: { areaId: a.id, code: a.code } }, [el("td", { text: a.code }), el("td", { text: a.name }), el("td", {}, sel),
        el("td", {}, [grids, el("div", { class: "muted small", text: `${a.grid_codes.length} ${t("admin.grids")}` })]),
        el("td", {}, el("button", { type: "button", class: "small", onclick: () => run(() => api(`/api/v1/supervision-areas/${a.id}`, { method: "PATCH",
          body: Object.assign(sel.value ? { inspector_id: Number(sel.value) } : { clear_inspector: true },
            { grid_codes: grids.value.split(/[\s,，]+/).filter(Boolean) }) }), "toast.saved") }, t("admin.save")))]);
    });
    const f = { code: el("input", { name: "code", required: true, maxlength: 32 }), name: el("input", { name: "name", required: true, maxlength: 100 }),
      insp: inspSelect(null), grids: el("input", { name: "grid_codes", placeholder: t("admin.grid_hint") }) };
    const form = el("form", { class: "inline-form", id: "area-create" }, [labelled("admin.code", f.code, true), labelled("admin.name", f.name, true),
      labelled("detail.inspector", f.insp), labelled("admin.grids", f.grids), el("button", { type: "submit" }, t("admin.add"))]);
    form.onsubmit = (ev) => { ev.preventDefault(); run(() => api("/api/v1/supervision-areas", { body: { code: f.code.value.trim(), name: f.name.value.trim(),
      inspector_id: f.insp.value ? Number(f.insp.value) : null, grid_codes: f.grids.value.split(/[\s,，]+/).filter(Boolean) } }), "toast.saved"); };
    return [form, el("table", { class: "cases", id: "areas-table" }, [
      el("thead", {}, el("tr", {}, ["admin.code", "admin.name", "detail.inspector", "admin.grids", "col.actions"].map((k) => el("th", { text: t(k) })))),
      el("tbody", {}, rows)])];
  }

  async function render() {
    const [users, areas] = await Promise.all([api("/api/v1/users"), api("/api/v1/supervision-areas").catch(() => [])]);
    await reloadDepartments();
    S.users = users; S.supAreas = areas;
    S.inspectors = users.filter((u) => u.role === "inspector");
    $("admin-departments").replaceChildren(...departmentTree());
    $("admin-users").replaceChildren(...usersTable());
    $("admin-areas").replaceChildren(...areasTable());
    document.getElementById("view-admin").dataset.ready = String(Date.now());
  }
  App.registerView("admin", { show: () => render().catch((e) => toast(e.message, "red")), reset: () => render().catch(() => {}),
    refresh: () => render().catch((e) => toast(e.message, "red")) });
})();

/* Intake (受理登记): the acceptor registers a complaint from the 12319/12345 hotline, a walk-in, a letter or
   another channel. The place comes from the standard-address look-up (门牌/地点/道路), a click on the map
   (when the map component is present) or typed coordinates. The report is a public report (公众举报) that
   waits for on-site verification (核实): the form then offers 发核实 to an inspector straight away. */
"use strict";
(function () {
  const { api, el, t, S, toast, labelled } = App;
  const $ = (id) => document.getElementById(id);
  const CHANNELS = ["hotline_12345", "hotline_12319", "walk_in", "letter", "other"];
  let built = false, picked = null, lookupTimer = null, lookupToken = 0;

  function build() {
    const form = $("intake-form");
    const f = {
      channel: el("select", { name: "channel", required: true }, CHANNELS.map((c) => el("option", { value: c, text: t("channel." + c) }))),
      name: el("input", { name: "caller_name", maxlength: 100, autocomplete: "off" }),
      phone: el("input", { name: "caller_phone", maxlength: 40, type: "tel", autocomplete: "off" }),
      cls: el("select", { name: "class_code", required: true }, App.classOptions("", { placeholder: t("form.choose") })),
      urgency: el("select", { name: "urgency" }, ["normal", "urgent"].map((u) => el("option", { value: u, text: t("urgency." + u) }))),
      description: el("textarea", { name: "description", rows: 3, maxlength: 4000, required: true }),
      address: el("input", { name: "address_q", type: "search", autocomplete: "off", placeholder: t("intake.address_hint"), maxlength: 100 }),
      lon: el("input", { name: "lon", type: "number", step: "0.000001", min: "-180", max: "180" }),
      lat: el("input", { name: "lat", type: "number", step: "0.000001", min: "-90", max: "90" }),
    };
    const suggestions = el("ul", { id: "address-suggestions", class: "suggestions", role: "listbox" });
    const chosen = el("div", { id: "address-chosen", class: "chosen muted" });
    const map = el("div", { id: "intake-map", class: "case-map" });
    form.replaceChildren(
      el("fieldset", {}, [el("legend", { text: t("intake.caller") }),
        labelled("intake.channel", f.channel, true), labelled("intake.caller_name", f.name), labelled("intake.caller_phone", f.phone),
        el("p", { class: "muted small", text: t("intake.private") })]),
      el("fieldset", {}, [el("legend", { text: t("intake.problem") }),
        labelled("col.class", f.cls, true), labelled("detail.urgency", f.urgency), labelled("detail.description", f.description, true)]),
      el("fieldset", {}, [el("legend", { text: t("intake.place") + " *" }),
        labelled("intake.address", f.address), suggestions, chosen,
        el("div", { class: "inline" }, [labelled("intake.lon", f.lon), labelled("intake.lat", f.lat)]), map]),
      el("button", { type: "submit", class: "submit" }, t("intake.submit")),
      el("div", { id: "intake-result" }));
    // Map click picks a point when the map component offers a picker; otherwise the box says how to give one.
    if (window.MiniMap && typeof window.MiniMap.pick === "function") {
      try {
        window.MiniMap.pick(map, { lon: 107.17, lat: 34.36 }, (lon, lat) => {
          picked = null; f.lon.value = lon.toFixed(6); f.lat.value = lat.toFixed(6);
          chosen.textContent = `${t("intake.map_point")}：${lon.toFixed(6)}, ${lat.toFixed(6)}`;
        });
      } catch (e) { map.textContent = t("detail.map_pending"); }
    } else {
      map.classList.add("placeholder");
      map.textContent = t("intake.map_pending");
    }
    f.address.addEventListener("input", () => {
      clearTimeout(lookupTimer);
      lookupTimer = setTimeout(() => lookup(f, suggestions, chosen), 200);
    });
    for (const k of ["lon", "lat"]) f[k].addEventListener("input", () => { if (picked) { picked = null; chosen.textContent = ""; } });
    form.onsubmit = (ev) => { ev.preventDefault(); submit(f, form, chosen, suggestions); };
  }

  async function lookup(f, list, chosen) {
    const q = f.address.value.trim();
    const mine = ++lookupToken;
    if (!q) { list.replaceChildren(); return; }
    try {
      const res = await api(`/api/v1/addresses?q=${encodeURIComponent(q)}&limit=10`);
      if (mine !== lookupToken) return;
      list.replaceChildren(...(res.items.length ? res.items.map((a) => el("li", {
        role: "option", class: "suggestion", dataset: { addressId: a.id, code: a.code },
        onclick: () => {
          picked = a;
          f.lon.value = a.lon.toFixed(6); f.lat.value = a.lat.toFixed(6);
          f.address.value = a.name;
          chosen.textContent = `${a.full_name}${a.community_name ? " · " + a.community_name : ""}${a.grid_code ? " · " + t("detail.grid") + " " + a.grid_code : ""}`;
          chosen.dataset.addressId = a.id;
          list.replaceChildren();
        },
      }, [el("b", { text: a.name }), el("span", { class: "muted small", text: ` ${t("addr.kind." + a.kind)} · ${a.full_name}${a.community_name ? " · " + a.community_name : ""}` })]))
        : [el("li", { class: "muted", text: t("intake.no_address") })]));
    } catch (e) { list.replaceChildren(el("li", { class: "error", text: e.message })); }
  }

  async function submit(f, form, chosen, list) {
    if (!form.reportValidity()) return;
    const body = { action: "public_report", class_code: f.cls.value, urgency: f.urgency.value, channel: f.channel.value,
      description: f.description.value.trim() };
    if (picked) { body.address_id = picked.id; body.address = picked.full_name; }
    else if (f.lon.value && f.lat.value) { body.lon = Number(f.lon.value); body.lat = Number(f.lat.value); if (f.address.value.trim()) body.address = f.address.value.trim(); }
    else { toast(I18N.err("case.no_location"), "red"); return; }
    if (f.name.value.trim() || f.phone.value.trim()) body.reporter = { name: f.name.value.trim() || null, phone: f.phone.value.trim() || null };
    const btn = form.querySelector("button.submit");
    btn.disabled = true;
    try {
      const c = await api("/api/v1/cases", { body: body });
      toast(`${t("intake.registered")}：${c.number}`);
      showResult(c);
      for (const k of ["name", "phone", "description", "address", "lon", "lat"]) f[k].value = "";
      picked = null; chosen.textContent = ""; list.replaceChildren();
    } catch (e) { toast(e.message, "red"); }
    btn.disabled = false;
  }

  function showResult(c) {
    const box = $("intake-result");
    const sel = el("select", { name: "inspector_id", required: true }, [el("option", { value: "", text: t("form.choose") })]
      .concat(S.inspectors.filter((u) => u.active).map((u) => el("option", { value: u.id, text: u.display_name }))));
    const form = el("form", { class: "action-form", dataset: { action: "send_verify", caseId: c.id } }, [
      el("b", { text: `${c.number} · ${c.class_name || App.className(c.class_code)} · ${t("status." + c.status)}` }),
      labelled("detail.inspector", sel, true),
      el("button", { type: "submit", class: "act act-send_verify" }, t("action.send_verify")),
    ]);
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      if (!form.reportValidity()) return;
      try {
        const after = await api(`/api/v1/cases/${c.id}/actions`, { body: { action: "send_verify", version: c.version, inspector_id: Number(sel.value) } });
        box.replaceChildren(el("p", { class: "done", dataset: { number: after.number, status: after.status },
          text: `${after.number} · ${t("status." + after.status)} · ${t("detail.inspector")} ${sel.selectedOptions[0].textContent}` }));
        toast(`${t("action.send_verify")} · ${after.number} · ${t("toast.done")}`);
      } catch (e) { toast(e.message, "red"); }
    };
    box.replaceChildren(form, el("button", { type: "button", class: "detail", onclick: () => App.openCase(c.id) }, t("btn.detail")));
  }

  App.registerView("intake", {
    show: () => { if (!built) { built = true; build(); } },
    reset: () => { built = true; build(); },
  });
})();

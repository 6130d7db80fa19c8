/* The leaders' dashboard: rankings with grades (from /api/v1/evaluation/{type} when present), monthly trends
   (SVG), a hot-spot map (canvas, aggregated by the server) and overdue counts; printable through the print style sheet. */
"use strict";
(function () {
  const { api, optional, el, t } = App;
  const $ = (id) => document.getElementById(id);
  const REGION_LEVELS = ["district", "street", "community", "grid"];
  const POSITIONS = ["inspector", "acceptor", "shift_leader", "dispatcher"];
  const LEVEL_NAMES = { district: "区", street: "街道", community: "社区", grid: "网格" };
  let started = false;

  function ym(d) { return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`; }
  function months(from, to) {
    const out = [];
    let [y, m] = from.split("-").map(Number);
    const [y2, m2] = to.split("-").map(Number);
    while (y < y2 || (y === y2 && m <= m2)) { out.push(`${y}-${String(m).padStart(2, "0")}`); m++; if (m > 12) { m = 1; y++; } }
    return out;
  }
  function monthStart(s) { const [y, m] = s.split("-").map(Number); return new Date(Date.UTC(y, m - 1, 1) - 8 * 3600e3); }
  function monthEnd(s) { const [y, m] = s.split("-").map(Number); return new Date(Date.UTC(y, m, 1) - 8 * 3600e3); }
  function lastDay(s) { const [y, m] = s.split("-").map(Number); return new Date(Date.UTC(y, m, 0)).toISOString().slice(0, 10); }
  // The evaluation API's period: one month as 2026-10, else an inclusive date range.
  function period(from, to) { return from === to ? from : `${from}-01..${lastDay(to)}`; }
  async function countCases(q) { return (await api(`/api/v1/cases?${q}&limit=1`)).total; }
  function range(from, to) {
    return `created_from=${encodeURIComponent(monthStart(from).toISOString())}&created_to=${encodeURIComponent(monthEnd(to).toISOString())}`;
  }

  async function kpis(from, to) {
    const r = range(from, to);
    const [total, closed, overdue, open] = await Promise.all([
      countCases(r), countCases(r + "&status=closed"), countCases("overdue=true"),
      countCases(["public_reported", "verifying", "reported", "filed", "dispatched", "handling", "sendback_requested",
        "extension_requested", "suspension_requested", "suspended", "feedback", "checking", "checked", "self_handled"]
        .map((s) => "status=" + s).join("&")),
    ]);
    const box = $("dash-kpis");
    box.replaceChildren(...[["dash.total", total, "total"], ["dash.closed", closed, "closed"], ["dash.open", open, "open"],
      ["dash.overdue", overdue, "overdue"]].map(([k, v, id]) =>
      el("div", { class: "kpi kpi-" + id, dataset: { kpi: id, value: v } }, [el("b", { text: v }), el("span", { text: t(k) })])));
  }

  // Every table of the dashboard shows the period of the inputs at the time it is drawn (a subject-type change
  // reads the inputs again, so it never shows a period other than the others').
  function currentPeriod() { return period($("dash-from").value, $("dash-to").value); }
  async function ranking(boxId, types) {
    const box = $(boxId);
    let sel = box.querySelector("select");
    if (!sel && types.length > 1) {
      sel = el("select", { class: "subject", onchange: () => ranking(boxId, types).catch((e) => App.toast(e.message, "red")) },
        types.map((x) => el("option", { value: x, text: LEVEL_NAMES[x] || t("role." + x) })));
    }
    const type = sel ? sel.value : types[0];
    const per = currentPeriod();
    const data = await optional(`/api/v1/evaluation/${type}?period=${encodeURIComponent(per)}`, "evaluation")
      .catch((e) => ({ error: e.message }));
    const content = [];
    if (sel) content.push(sel);
    if (!data) content.push(el("p", { class: "muted", text: t("dash.no_eval") }));
    else if (data.error) content.push(el("p", { class: "error", text: data.error }));
    else {
      const q = `period=${encodeURIComponent(per)}`, fname = `${type}_${per.replace("..", "_")}`;
      content.push(el("div", { class: "downloads noprint" }, [
        App.downloadButton(t("export.xlsx"), () => `/api/v1/evaluation/${type}/export.xlsx?${q}`, () => `${fname}.xlsx`, "export-xlsx"),
        App.downloadButton(t("export.csv"), () => `/api/v1/evaluation/${type}/export.csv?${q}`, () => `${fname}.csv`, "export-csv")]));
      // Two subjects of one name (two 新华社区 in different streets) are told apart by their code.
      const counts = new Map();
      for (const r of data.rows) counts.set(r.name, (counts.get(r.name) || 0) + 1);
      content.push(el("table", { class: "ranking", dataset: { subjectType: type, period: data.period } }, [
        el("thead", {}, el("tr", {}, ["dash.rank", "dash.name", "dash.code", "dash.score", "dash.grade", "dash.cases", "dash.note"].map((k) => el("th", { text: t(k) })))),
        el("tbody", {}, data.rows.map((r) => el("tr", { dataset: { subject: r.subject_id } }, [
          el("td", { class: "rank", text: r.rank + (r.tied ? "=" : "") }),
          el("td", { class: "name" + (counts.get(r.name) > 1 ? " same-name" : ""), text: r.name }),
          el("td", { class: "code muted small", text: r.subject_id }),
          el("td", { class: "score", text: Number(r.composite).toFixed(2) }),
          el("td", { class: "grade grade-" + r.grade, text: r.grade }),
          el("td", { class: "cases", text: r.case_count != null ? String(r.case_count) : "" }),
          el("td", { class: "note" }, (r.flags || []).map((f) => el("span", { class: "flag", dataset: { flag: f }, text: t("dash.flag." + f) }))),
        ]))),
      ]));
    }
    box.replaceChildren(...content);
  }

  // Monthly trend: reported and closed cases per month, as an SVG line chart.
  async function trend(from, to) {
    // At least the twelve months up to the end of the period, at most 24.
    const [toY, toM] = to.split("-").map(Number);
    const first = ym(new Date(toY, toM - 12, 1));
    const ms = months(first < from ? first : from, to).slice(-24);
    const series = await Promise.all(ms.map(async (m) => {
      const r = range(m, m);
      const [n, closed] = await Promise.all([countCases(r), countCases(r + "&status=closed")]);
      return { m: m, n: n, closed: closed };
    }));
    const W = 520, H = 220, P = 34;
    const max = Math.max(1, ...series.map((s) => s.n));
    const x = (i) => P + (series.length === 1 ? (W - 2 * P) / 2 : i * (W - 2 * P) / (series.length - 1));
    const y = (v) => H - P - v * (H - 2 * P) / max;
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("class", "chart");
    const add = (tag, attrs, text) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text != null) e.textContent = text; svg.append(e); return e; };
    add("line", { x1: P, y1: H - P, x2: W - P, y2: H - P, class: "axis" });
    add("line", { x1: P, y1: P, x2: P, y2: H - P, class: "axis" });
    add("text", { x: 2, y: P, class: "tick" }, max);
    for (const [key, cls] of [["n", "s-reported"], ["closed", "s-closed"]]) {
      add("polyline", { points: series.map((s, i) => `${x(i)},${y(s[key])}`).join(" "), class: "series " + cls });
      series.forEach((s, i) => add("circle", { cx: x(i), cy: y(s[key]), r: 3, class: cls, "data-month": s.m, "data-value": s[key] }));
    }
    series.forEach((s, i) => { if (series.length <= 12 || i % 2 === 0) add("text", { x: x(i) - 14, y: H - 12, class: "tick" }, s.m.slice(2)); });
    $("dash-trend").replaceChildren(svg, el("div", { class: "legend" }, [
      el("span", { class: "s-reported", text: "■ " + t("dash.total") }), " ", el("span", { class: "s-closed", text: "■ " + t("dash.closed") })]));
  }

  // Hot spots: case counts by unit grid and major class for the period, aggregated by the server
  // (/api/v1/map/hotspots); one disc per grid, sized and shaded by its count, coloured by its main class.
  async function hotspots(from, to) {
    const [hot, legend] = await Promise.all([
      api(`/api/v1/map/hotspots?${range(from, to)}`),
      optional("/api/v1/map/legend", "map_legend").catch(() => null),
    ]);
    const colors = new Map(((legend && legend.majors) || []).map((m) => [m.major, m.color]));
    const names = new Map(((legend && legend.majors) || []).map((m) => [m.major, m.name]));
    const feats = hot.features;
    const cv = $("hot-canvas"), ctx = cv.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, cv.width, cv.height);
    if (feats.length) {
      const lons = feats.map((f) => f.geometry.coordinates[0]), lats = feats.map((f) => f.geometry.coordinates[1]);
      const x0 = Math.min(...lons), x1 = Math.max(...lons), y0 = Math.min(...lats), y1 = Math.max(...lats);
      const pad = 30, w = cv.width - 2 * pad, h = cv.height - 2 * pad;
      const sx = (v) => pad + (x1 > x0 ? (v - x0) / (x1 - x0) * w : w / 2);
      const sy = (v) => pad + (y1 > y0 ? (y1 - v) / (y1 - y0) * h : h / 2);
      const top = Math.max(1, hot.max_count);
      for (const f of feats.slice().reverse()) {  // largest last, on top
        const n = f.properties.count, main = Object.keys(f.properties.classes)[0];
        ctx.beginPath();
        ctx.arc(sx(f.geometry.coordinates[0]), sy(f.geometry.coordinates[1]), 3 + 14 * Math.sqrt(n / top), 0, 2 * Math.PI);
        ctx.globalAlpha = 0.35 + 0.6 * n / top;
        ctx.fillStyle = colors.get(main) || "#d22f2f";
        ctx.fill();
      }
      ctx.globalAlpha = 1;
    }
    cv.dataset.cells = String(feats.length);
    cv.dataset.total = String(hot.total);
    const list = (title, rows) => el("div", { class: "tally" }, [el("h4", { text: title }),
      el("ol", {}, rows.map(([k, n]) => el("li", { text: `${k}: ${n}` })))]);
    $("hot-classes").replaceChildren(
      list(t("col.class"), hot.by_class.slice(0, 8).map((c) => [`${c.major} ${names.get(c.major) || c.name || ""}`, c.count])),
      list("grid", feats.slice(0, 8).map((f) => [f.properties.grid_code, f.properties.count])),
      el("div", { id: "hot-legend", class: "legend" }, hot.by_class.slice(0, 12).map((c) =>
        el("span", { class: "key", dataset: { major: c.major } }, [el("i", { style: `background:${colors.get(c.major) || c.color || "#999"}` }),
          `${c.major} ${names.get(c.major) || ""}`]))),
      el("p", { class: "muted", dataset: { hotTotal: hot.total }, text: `n = ${hot.total} ${t("dash.hot_total")}` }));
  }

  async function load() {
    const from = $("dash-from").value, to = $("dash-to").value;
    if (!from || !to || from > to) return;
    await Promise.all([
      kpis(from, to), trend(from, to), hotspots(from, to),
      ranking("rank-department", ["department"]),
      ranking("rank-region", REGION_LEVELS),
      ranking("rank-position", POSITIONS),
    ]).catch((e) => App.toast(e.message, "red"));
    document.body.dataset.dashboard = "ready";
  }

  function show() {
    if (!started) {
      started = true;
      const now = new Date();
      $("dash-to").value = ym(now);
      $("dash-from").value = ym(now);  // rankings of the current month; the trend shows the year up to it
      $("dash-load").addEventListener("click", load);
      $("dash-print").addEventListener("click", () => window.print());
    }
    load();
  }
  App.registerView("dashboard", { show: show, reset: () => { if (started) load(); }, refresh: load });
})();

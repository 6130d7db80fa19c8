/* The leaders' dashboard on Apache ECharts: KPIs, ranking bars coloured by grade (with their tables) from
   /api/v1/evaluation/{type}, the monthly trend, the class breakdown and the hot spots on the city map
   (MapLibre, the server's aggregate /api/v1/map/hotspots); a full-screen command-centre view (大屏) that
   refreshes from the live stream; printable through the print style sheet. */
"use strict";
(function () {
  const { api, optional, el, t } = App;
  const $ = (id) => document.getElementById(id);
  const REGION_LEVELS = ["district", "street", "community", "grid"];
  const POSITIONS = ["inspector", "acceptor", "shift_leader", "dispatcher"];
  const LEVEL_NAMES = { district: "区", street: "街道", community: "社区", grid: "网格" };
  const GRADE_COLOURS = { A: "#2ca02c", 优秀: "#2ca02c", B: "#1f77b4", 良好: "#1f77b4", C: "#f2b701", 合格: "#f2b701",
    D: "#d62728", 差: "#d62728", 不合格: "#d62728" };
  const charts = new Map();  // element id -> echarts instance
  let started = false, hotMap = null, liveTimer = null;

  function chart(box) {
    let c = echarts.getInstanceByDom(box);
    if (!c) { c = echarts.init(box, document.body.classList.contains("bigscreen") ? "dark" : null, { renderer: "canvas" }); charts.set(box.id || box.dataset.chart, c); }
    return c;
  }
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
    $("dash-kpis").replaceChildren(...[["dash.total", total, "total"], ["dash.closed", closed, "closed"], ["dash.open", open, "open"],
      ["dash.overdue", overdue, "overdue"]].map(([k, v, id]) =>
      el("div", { class: "kpi kpi-" + id, dataset: { kpi: id, value: v } }, [el("b", { text: v }), el("span", { text: t(k) })])));
  }

  // Ranking: bars of the composite score, coloured by grade, best on top; the table below has every figure.
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
    const old = echarts.getInstanceByDom(box.querySelector(".rank-chart") || document.createElement("div"));
    if (old) old.dispose();
    const content = [];
    if (sel) content.push(sel);
    if (!data) content.push(el("p", { class: "muted", text: t("dash.no_eval") }));
    else if (data.error) content.push(el("p", { class: "error", text: data.error }));
    else {
      const rows = data.rows.slice(0, 15);
      const q = `period=${encodeURIComponent(per)}`, fname = `${type}_${per.replace("..", "_")}`;
      content.push(el("div", { class: "downloads noprint" }, [
        App.downloadButton(t("export.xlsx"), () => `/api/v1/evaluation/${type}/export.xlsx?${q}`, () => `${fname}.xlsx`, "export-xlsx"),
        App.downloadButton(t("export.csv"), () => `/api/v1/evaluation/${type}/export.csv?${q}`, () => `${fname}.csv`, "export-csv")]));
      // Two subjects of one name (two 新华社区 in different streets) are told apart by their code.
      const counts = new Map();
      for (const r of data.rows) counts.set(r.name, (counts.get(r.name) || 0) + 1);
      const bars = el("div", { class: "rank-chart", dataset: { chart: boxId + "-chart", subjectType: type },
        style: `height:${Math.max(120, 26 * rows.length + 40)}px` });
      content.push(bars, el("table", { class: "ranking", dataset: { subjectType: type, period: data.period } }, [
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
      box.replaceChildren(...content);
      const shown = rows.slice().reverse();
      chart(bars).setOption({
        animation: false, grid: { left: 8, right: 40, top: 8, bottom: 8, containLabel: true },
        tooltip: { trigger: "item", formatter: (p) => `${p.name}<br>${t("dash.score")} ${p.value}<br>${t("dash.grade")} ${shown[p.dataIndex].grade}` },
        xAxis: { type: "value", max: (v) => Math.max(100, Math.ceil(v.max)) },
        yAxis: { type: "category", data: shown.map((r) => `${r.rank}. ${r.name}`), axisLabel: { width: 120, overflow: "truncate" } },
        series: [{ type: "bar", name: t("dash.score"), data: shown.map((r) => ({ value: Number(Number(r.composite).toFixed(2)),
          itemStyle: { color: GRADE_COLOURS[r.grade] || "#7f7f7f" }, grade: r.grade, subject: r.subject_id })),
          label: { show: true, position: "right", formatter: (p) => shown[p.dataIndex].grade } }],
      });
      return;
    }
    box.replaceChildren(...content);
  }

  // Monthly trend: reported and closed cases per month (the year up to the end of the period, at most 24 months).
  async function trend(from, to) {
    const [toY, toM] = to.split("-").map(Number);
    const first = ym(new Date(toY, toM - 12, 1));
    const ms = months(first < from ? first : from, to).slice(-24);
    const series = await Promise.all(ms.map(async (m) => {
      const r = range(m, m);
      const [n, closed] = await Promise.all([countCases(r), countCases(r + "&status=closed")]);
      return { m: m, n: n, closed: closed };
    }));
    chart($("dash-trend")).setOption({
      animation: false, tooltip: { trigger: "axis" }, legend: { data: [t("dash.total"), t("dash.closed")] },
      grid: { left: 40, right: 16, top: 36, bottom: 28 },
      xAxis: { type: "category", data: series.map((s) => s.m) }, yAxis: { type: "value", minInterval: 1 },
      series: [
        { name: t("dash.total"), type: "line", smooth: true, data: series.map((s) => s.n), itemStyle: { color: "#1f5fa8" } },
        { name: t("dash.closed"), type: "line", smooth: true, data: series.map((s) => s.closed), itemStyle: { color: "#2e9d4f" } },
      ],
    });
  }

  // Hot spots: the server's aggregate by unit grid for the period, as a heat layer and discs on the city map;
  // the class breakdown beside it.
  async function hotspots(from, to) {
    const [hot, legend] = await Promise.all([
      api(`/api/v1/map/hotspots?${range(from, to)}`),
      optional("/api/v1/map/legend", "map_legend").catch(() => null),
    ]);
    const names = new Map(((legend && legend.majors) || []).map((m) => [m.major, m.name]));
    const colours = new Map(((legend && legend.majors) || []).map((m) => [m.major, m.color]));
    const box = $("hot-map");
    box.dataset.total = String(hot.total);
    box.dataset.cells = String(hot.features.length);
    chart($("hot-classes")).setOption({
      animation: false, tooltip: { trigger: "item", formatter: "{b}: {c} ({d}%)" },
      series: [{ type: "pie", name: t("col.class"), radius: ["35%", "70%"],
        data: hot.by_class.map((c) => ({ name: names.get(c.major) || c.name || c.major, value: c.count, major: c.major,
          itemStyle: { color: colours.get(c.major) || c.color || "#999" } })) }],
    }, true);
    const data = { type: "FeatureCollection", features: hot.features.map((f) => Object.assign({}, f,
      { properties: { grid_code: f.properties.grid_code, count: f.properties.count } })) };
    if (!hotMap) {
      const { hotspotMap } = await import("/console/static/minimap.js").then((m) => ({ hotspotMap: m.hotspotMap }));
      hotMap = await hotspotMap(box, data);
    } else hotMap.getSource("hot").setData(data);
    if (hot.features.length) {
      const xs = hot.features.map((f) => f.geometry.coordinates[0]), ys = hot.features.map((f) => f.geometry.coordinates[1]);
      hotMap.fitBounds([[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]], { padding: 30, animate: false, maxZoom: 15 });
    }
    $("hot-list").replaceChildren(el("h4", { text: "网格 Top 8" }), el("ol", {}, hot.features.slice(0, 8).map((f) =>
      el("li", { text: `${f.properties.grid_code}: ${f.properties.count}` }))),
    el("p", { class: "muted", dataset: { hotTotal: hot.total }, text: `n = ${hot.total} ${t("dash.hot_total")}` }));
  }

  async function load(opts) {
    const from = $("dash-from").value, to = $("dash-to").value;
    if (!from || !to || from > to) return;
    document.body.dataset.dashboard = "loading";
    const jobs = [kpis(from, to), hotspots(from, to)];
    if (!opts || !opts.live) {
      jobs.push(trend(from, to), ranking("rank-department", ["department"]),
        ranking("rank-region", REGION_LEVELS), ranking("rank-position", POSITIONS));
    }
    await Promise.all(jobs).catch((e) => App.toast(e.message, "red"));
    document.body.dataset.dashboard = "ready";
  }

  // 大屏: the dashboard full screen, dark, refreshed from the live stream (KPIs and hot spots at once).
  function bigscreen(on) {
    document.body.classList.toggle("bigscreen", on);
    if (on && document.documentElement.requestFullscreen) document.documentElement.requestFullscreen().catch(() => {});
    if (!on && document.fullscreenElement) document.exitFullscreen().catch(() => {});
    $("dash-big").textContent = on ? "退出大屏" : "大屏";
    for (const c of charts.values()) if (!c.isDisposed()) c.resize();
    if (hotMap) hotMap.resize();
  }
  App.onCaseEvent((msg) => {
    if (!started || App.S.view !== "dashboard" || msg.type !== "event") return;
    clearTimeout(liveTimer);
    liveTimer = setTimeout(() => load({ live: true }), document.body.classList.contains("bigscreen") ? 1000 : 5000);
  });
  window.addEventListener("resize", () => { for (const c of charts.values()) if (!c.isDisposed()) c.resize(); });

  function show() {
    if (!started) {
      started = true;
      const now = new Date();
      $("dash-to").value = ym(now);
      $("dash-from").value = ym(now);  // rankings of the current month; the trend shows the year up to it
      $("dash-load").addEventListener("click", () => load());
      $("dash-print").addEventListener("click", () => window.print());
      const big = el("button", { type: "button", id: "dash-big", onclick: () => bigscreen(!document.body.classList.contains("bigscreen")) }, "大屏");
      $("dash-print").after(big);
    }
    load();
  }
  App.dashboardCharts = () => Object.fromEntries([...charts.entries()].filter(([, c]) => !c.isDisposed()).map(([k, c]) => [k, c.getOption()]));
  App.registerView("dashboard", { show: show, reset: () => { if (started) load(); }, refresh: () => load() });
})();

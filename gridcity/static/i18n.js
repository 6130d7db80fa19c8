/* A small dictionary: Chinese by default, English on request. t(key) falls back to the key itself. */
"use strict";
(function () {
  const zh = {
    "app.title": "数字化城管 · 监督指挥中心", "logout": "退出", "reload": "刷新",
    "live.on": "实时连接", "live.off": "未连接", "live.connecting": "连接中…",
    "login.title": "登录", "login.username": "用户名", "login.password": "密码", "login.submit": "登录",
    "login.failed": "用户名或密码错误",
    "view.supervision": "监督受理", "view.dispatch": "指挥派遣", "view.inbox": "部门待办",
    "view.map": "实时地图", "view.dashboard": "领导驾驶舱",
    "col.number": "案卷号", "col.class": "类别", "col.status": "状态", "col.created": "上报时间",
    "col.deadline": "时限", "col.light": "灯", "col.department": "部门", "col.actions": "操作",
    "col.photos": "照片", "col.recommendation": "推荐部门",
    "btn.detail": "详情", "btn.dispatch": "派遣", "btn.accept": "签收", "btn.ok": "确定", "btn.cancel": "取消",
    "detail.timeline": "处置过程", "detail.duplicates": "疑似重复", "detail.recommendation": "派遣建议",
    "detail.note": "说明", "detail.photos": "照片", "detail.inspector": "监督员", "detail.department": "部门",
    "detail.extension": "延期", "detail.none": "无",
    "toast.new_case": "新案卷", "toast.dispatched": "案卷已派遣", "toast.done": "已完成",
    "toast.alert.yellow": "预警：即将超时", "toast.alert.red": "超时告警", "toast.reset": "数据已刷新",
    "map.layers": "图层", "map.cases": "案件", "map.unavailable": "地图图层接口暂不可用，仅显示案件。",
    "map.loading": "加载中…", "map.zoom_in": "放大后显示", "dash.hot_total": "案件", "map.count": "显示案件",
    "dash.period": "统计期", "dash.load": "统计", "dash.print": "打印",
    "dash.rank.department": "部门排名", "dash.rank.region": "区域排名", "dash.rank.position": "岗位排名",
    "dash.trend": "月度趋势", "dash.hotspots": "热点分布", "dash.overdue": "超时案件", "dash.open": "在办案件",
    "dash.closed": "已结案", "dash.total": "案件总数", "dash.no_eval": "考核评价接口暂不可用",
    "dash.rank": "名次", "dash.name": "名称", "dash.score": "得分", "dash.grade": "等级", "dash.cases": "案件数",
    "light.green": "正常", "light.yellow": "预警", "light.red": "超时", "light.none": "—", "light.paused": "挂账",
    "status.public_reported": "公众举报", "status.verifying": "核实中", "status.reported": "待立案",
    "status.filed": "待派遣", "status.dispatched": "待签收", "status.handling": "处置中",
    "status.sendback_requested": "回退申请", "status.extension_requested": "延期申请",
    "status.suspension_requested": "挂账申请", "status.suspended": "挂账", "status.feedback": "已反馈",
    "status.checking": "核查中", "status.checked": "核查通过", "status.self_handled": "自处理待审",
    "status.closed": "已结案", "status.voided": "作废", "status.merged": "已合并",
    "action.report": "上报", "action.public_report": "登记举报", "action.self_handle": "自处理",
    "action.send_verify": "发核实", "action.verify_true": "核实属实", "action.verify_false": "核实不属实",
    "action.file": "立案", "action.void": "作废", "action.merge": "合并", "action.dispatch": "派遣",
    "action.accept": "签收", "action.request_sendback": "申请回退", "action.approve_sendback": "同意回退",
    "action.reject_sendback": "驳回回退", "action.request_extension": "申请延期",
    "action.approve_extension": "同意延期", "action.reject_extension": "驳回延期",
    "action.request_suspension": "申请挂账", "action.approve_suspension": "同意挂账",
    "action.reject_suspension": "驳回挂账", "action.resume": "恢复", "action.feedback": "处置反馈",
    "action.send_check": "发核查", "action.check_pass": "核查通过", "action.check_fail": "核查不通过",
    "action.close": "结案", "action.approve_self_handled": "自处理审核通过",
    "role.inspector": "监督员", "role.acceptor": "受理员", "role.shift_leader": "值班长",
    "role.dispatcher": "派遣员", "role.department": "专业部门", "role.leader": "领导", "role.admin": "管理员",
  };
  const en = {
    "app.title": "Grid City · Command Centre", "logout": "Log out", "reload": "Reload",
    "live.on": "Live", "live.off": "Offline", "live.connecting": "Connecting…",
    "login.title": "Log in", "login.username": "Username", "login.password": "Password", "login.submit": "Log in",
    "login.failed": "Wrong username or password",
    "view.supervision": "Supervision", "view.dispatch": "Dispatch", "view.inbox": "Inbox",
    "view.map": "Live map", "view.dashboard": "Dashboard",
    "col.number": "Case", "col.class": "Class", "col.status": "Status", "col.created": "Reported",
    "col.deadline": "Deadline", "col.light": "Light", "col.department": "Department", "col.actions": "Actions",
    "col.photos": "Photos", "col.recommendation": "Recommended",
    "btn.detail": "Details", "btn.dispatch": "Dispatch", "btn.accept": "Accept", "btn.ok": "OK", "btn.cancel": "Cancel",
    "detail.timeline": "Timeline", "detail.duplicates": "Possible duplicates", "detail.recommendation": "Routing",
    "detail.note": "Note", "detail.photos": "Photos", "detail.inspector": "Inspector", "detail.department": "Department",
    "detail.extension": "Extension", "detail.none": "none",
    "toast.new_case": "New case", "toast.dispatched": "Case dispatched", "toast.done": "Done",
    "toast.alert.yellow": "Warning: deadline near", "toast.alert.red": "Overdue", "toast.reset": "Views reloaded",
    "map.layers": "Layers", "map.cases": "Cases", "map.unavailable": "Map layers are not available; showing cases only.",
    "map.loading": "Loading…", "map.zoom_in": "zoom in to show", "dash.hot_total": "cases", "map.count": "cases shown",
    "dash.period": "Period", "dash.load": "Compute", "dash.print": "Print",
    "dash.rank.department": "Departments", "dash.rank.region": "Regions", "dash.rank.position": "Positions",
    "dash.trend": "Monthly trend", "dash.hotspots": "Hot spots", "dash.overdue": "Overdue", "dash.open": "Open",
    "dash.closed": "Closed", "dash.total": "Cases", "dash.no_eval": "Evaluation API not available",
    "dash.rank": "Rank", "dash.name": "Name", "dash.score": "Score", "dash.grade": "Grade", "dash.cases": "Cases",
    "light.green": "on time", "light.yellow": "warning", "light.red": "overdue", "light.none": "—", "light.paused": "paused",
  };
  const dicts = { zh: zh, en: en };
  let lang = localStorage.getItem("gridcity.lang") || "zh";
  function t(key) {
    const d = dicts[lang] || zh;
    if (key in d) return d[key];
    if (key in zh) return lang === "en" ? key.split(".").pop().replace(/_/g, " ") : zh[key];
    return key;
  }
  function apply(root) {
    (root || document).querySelectorAll("[data-i18n]").forEach(function (el) { el.textContent = t(el.dataset.i18n); });
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  }
  window.I18N = {
    t: t, apply: apply,
    get lang() { return lang; },
    set: function (l) { lang = l; localStorage.setItem("gridcity.lang", l); apply(); },
  };
})();

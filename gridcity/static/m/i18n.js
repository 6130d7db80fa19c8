// Chinese first, English on request. Only UI labels live here: every error message comes from the one
// catalogue the console uses too (gridcity/static/errors.json, keyed by the API's error codes), loaded at start
// and kept by the service worker for offline use.
const zh = {
  "app": "城管通", "lang": "EN", "logout": "退出", "online": "在线", "offline": "离线",
  "login.title": "登录", "login.username": "用户名", "login.password": "密码", "login.submit": "登录",
  "login.expired": "登录已过期，请重新登录。待发送的内容都还在，登录后继续发送。",
  "login.offline": "无网络，无法登录", "login.other": "待发送内容属于 {u}，需 {u} 登录后发送",
  "nav.report": "上报", "nav.tasks": "任务", "nav.mine": "我的上报", "nav.outbox": "待发送", "nav.patrol": "巡查",
  "report.title": "问题上报", "report.photos": "照片（1–9 张）", "report.camera": "拍照", "report.gallery": "相册",
  "report.self": "自处理（现场已处理）", "report.before": "处理前照片", "report.after": "处理后照片",
  "report.position": "位置", "report.locating": "正在定位…", "report.accuracy": "精度 ±{m} 米",
  "report.pin_moved": "已手动调整位置", "report.no_position": "未获得位置：请允许定位或在地图上放置图钉",
  "report.outside": "无法上报，请确认定位或移动图钉。",
  "report.class": "问题类别", "report.class_ph": "输入类别名称搜索，如：井盖", "report.recent": "最近使用",
  "report.components": "附近部件（{m} 米内）", "report.no_component": "不指定部件（由系统匹配）",
  "report.components_none": "{m} 米内没有该类部件", "report.components_offline": "离线：发送时由系统匹配最近部件",
  "report.description": "问题描述", "report.urgency": "紧急程度", "urgency.normal": "一般", "urgency.urgent": "紧急",
  "report.note": "处理说明", "report.submit": "提交", "report.queued": "已保存到待发送，联网后自动发送",
  "report.need_photo": "请至少拍一张照片", "report.need_class": "请选择问题类别",
  "report.need_before_after": "自处理需要处理前和处理后照片", "report.too_many": "最多 9 张照片",
  "photo.remove": "删除", "photo.file": "“{n}”：{m}", "photo.size": "（{s} MB，上限 {l} MB）",
  "photo.pixels": "（{p} 万像素，上限 {l} 万）", "ctx.distance": "（距案件 {distance_m} 米，须在 {radius_m} 米内）",
  "net.down": "网络中断，稍后自动重试",
  "outbox.title": "待发送", "outbox.empty": "没有待发送的内容",
  "state.queued": "等待发送", "state.sending": "发送中", "state.sent": "已发送", "state.refused": "被拒收",
  "state.login": "等待登录", "state.retry": "稍后重试",
  "outbox.edit": "修改", "outbox.delete": "删除", "outbox.retry": "重新发送", "outbox.confirm_delete": "确定删除这条内容？",
  "outbox.clear_sent": "清除已发送", "outbox.photos": "{n} 张照片", "outbox.case": "案卷 {n}",
  "kind.report": "问题上报", "kind.result": "任务结果", "kind.action": "案卷办理",
  "tasks.title": "我的任务", "tasks.empty": "暂无任务", "tasks.deadline": "时限", "tasks.distance": "距离 {m} 米",
  "task.verify": "核实", "task.check": "核查", "task.handle": "处置",
  "task.onsite": "须在案件位置 {r} 米内提交结果。", "task.here": "您当前距案件 {m} 米。",
  "task.too_far": "您距案件 {m} 米，超过 {r} 米：请走到现场后再提交，否则会被拒收。",
  "task.unknown_pos": "尚未获得您的位置，提交时将记录当前位置。",
  "task.pass_verify": "属实", "task.fail_verify": "不属实", "task.pass_check": "通过", "task.fail_check": "不通过",
  "task.note": "说明", "task.photos": "现场照片", "task.history": "处置过程", "task.photos_case": "案卷照片",
  "task.accept": "签收", "task.done": "处置反馈", "task.extension": "申请延期", "task.sendback": "申请回退",
  "task.ext_value": "延期", "task.need_note": "请填写说明", "task.queued": "已保存到待发送",
  "task.limit": "处置时限 {l}", "task.component": "部件",
  "mine.title": "我的上报", "mine.empty": "还没有上报", "mine.cached": "离线：显示上次同步的内容",
  "patrol.on": "在岗巡查中", "patrol.off": "开始巡查", "patrol.stop": "结束巡查",
  "patrol.points": "已记录 {n} 个轨迹点，{u} 个待上传", "patrol.coverage": "今日责任区覆盖 {v}/{t} 个网格（{p}%）",
  "patrol.no_area": "未分配责任区",
  "unit.work_hour": "工作小时", "unit.work_day": "工作日", "unit.hour": "小时", "unit.day": "天", "unit.minute": "分钟",
  "back": "返回", "save": "保存", "cancel": "取消", "loading": "加载中…", "meters": "米",
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
  "action.reject_sendback": "驳回回退", "action.request_extension": "申请延期", "action.approve_extension": "同意延期",
  "action.reject_extension": "驳回延期", "action.request_suspension": "申请挂账", "action.approve_suspension": "同意挂账",
  "action.reject_suspension": "驳回挂账", "action.resume": "恢复", "action.feedback": "处置反馈",
  "action.send_check": "发核查", "action.check_pass": "核查通过", "action.check_fail": "核查不通过",
  "action.close": "结案", "action.approve_self_handled": "自处理审核通过",
};
const en = {
  "app": "Chengguantong", "lang": "中文", "logout": "Log out", "online": "Online", "offline": "Offline",
  "login.title": "Log in", "login.username": "Username", "login.password": "Password", "login.submit": "Log in",
  "login.expired": "Your login expired. Log in again; nothing waiting to be sent was lost.",
  "login.offline": "No network: cannot log in", "login.other": "Items waiting belong to {u}; they are sent when {u} logs in",
  "nav.report": "Report", "nav.tasks": "Tasks", "nav.mine": "My reports", "nav.outbox": "Outbox", "nav.patrol": "Patrol",
  "report.title": "Report a problem", "report.photos": "Photos (1–9)", "report.camera": "Camera", "report.gallery": "Gallery",
  "report.self": "Self-handled (fixed on the spot)", "report.before": "Before", "report.after": "After",
  "report.position": "Position", "report.locating": "Locating…", "report.accuracy": "accuracy ±{m} m",
  "report.pin_moved": "Position moved by hand", "report.no_position": "No position: allow location or place the pin",
  "report.outside": "Check the location or move the pin.",
  "report.class": "Class", "report.class_ph": "Search by name, e.g. 井盖", "report.recent": "Recent",
  "report.components": "Nearby components (within {m} m)", "report.no_component": "No component (the system matches)",
  "report.components_none": "No component of this class within {m} m", "report.components_offline": "Offline: the server matches the nearest component",
  "report.description": "Description", "report.urgency": "Urgency", "urgency.normal": "Normal", "urgency.urgent": "Urgent",
  "report.note": "What was done", "report.submit": "Submit", "report.queued": "Saved to the outbox; sent when online",
  "report.need_photo": "Take at least one photo", "report.need_class": "Choose a class",
  "report.need_before_after": "Self-handled needs before and after photos", "report.too_many": "At most 9 photos", "photo.remove": "Remove", "photo.file": "“{n}”: {m}", "photo.size": " ({s} MB, limit {l} MB)",
  "photo.pixels": " ({p}0k pixels, limit {l}0k)", "ctx.distance": " ({distance_m} m from the case, must be within {radius_m} m)",
  "net.down": "Network dropped; retrying",
  "outbox.title": "Outbox", "outbox.empty": "Nothing waiting",
  "state.queued": "Waiting", "state.sending": "Sending", "state.sent": "Sent", "state.refused": "Refused",
  "state.login": "Needs login", "state.retry": "Retrying later",
  "outbox.edit": "Edit", "outbox.delete": "Delete", "outbox.retry": "Send again", "outbox.confirm_delete": "Delete this item?",
  "outbox.clear_sent": "Clear sent", "outbox.photos": "{n} photos", "outbox.case": "Case {n}",
  "kind.report": "Report", "kind.result": "Task result", "kind.action": "Case action",
  "tasks.title": "My tasks", "tasks.empty": "No tasks", "tasks.deadline": "Due", "tasks.distance": "{m} m away",
  "task.verify": "Verify", "task.check": "Check", "task.handle": "Handle",
  "task.onsite": "Results must be sent within {r} m of the case.", "task.here": "You are {m} m from the case.",
  "task.too_far": "You are {m} m away, more than {r} m: go to the site first or it will be refused.",
  "task.unknown_pos": "No position yet; your position is recorded when you send.",
  "task.pass_verify": "True", "task.fail_verify": "Not true", "task.pass_check": "Pass", "task.fail_check": "Fail",
  "task.note": "Note", "task.photos": "Site photos", "task.history": "History", "task.photos_case": "Case photos",
  "task.accept": "Accept", "task.done": "Feed back", "task.extension": "Ask for extension", "task.sendback": "Send back",
  "task.ext_value": "Extension", "task.need_note": "Write a note", "task.queued": "Saved to the outbox",
  "task.limit": "Handling limit {l}", "task.component": "Component",
  "mine.title": "My reports", "mine.empty": "No reports yet", "mine.cached": "Offline: last synced list",
  "patrol.on": "On patrol", "patrol.off": "Start patrol", "patrol.stop": "End patrol",
  "patrol.points": "{n} points recorded, {u} to upload", "patrol.coverage": "Today's coverage {v}/{t} grids ({p}%)",
  "patrol.no_area": "No supervision area",
  "unit.work_hour": "work hours", "unit.work_day": "work days", "unit.hour": "hours", "unit.day": "days", "unit.minute": "minutes",
  "back": "Back", "save": "Save", "cancel": "Cancel", "loading": "Loading…", "meters": "m",
  "status.public_reported": "Public report", "status.verifying": "Verifying", "status.reported": "To file",
  "status.filed": "To dispatch", "status.dispatched": "To accept", "status.handling": "Handling",
  "status.sendback_requested": "Send-back asked", "status.extension_requested": "Extension asked",
  "status.suspension_requested": "Suspension asked", "status.suspended": "Suspended", "status.feedback": "Fed back",
  "status.checking": "Checking", "status.checked": "Checked", "status.self_handled": "Self-handled",
  "status.closed": "Closed", "status.voided": "Void", "status.merged": "Merged",
  "action.report": "Reported", "action.public_report": "Public report", "action.self_handle": "Self-handled",
  "action.send_verify": "Sent to verify", "action.verify_true": "Verified true", "action.verify_false": "Verified not true",
  "action.file": "Filed", "action.void": "Voided", "action.merge": "Merged", "action.dispatch": "Dispatched",
  "action.accept": "Accepted", "action.request_sendback": "Send-back asked", "action.approve_sendback": "Send-back approved",
  "action.reject_sendback": "Send-back refused", "action.request_extension": "Extension asked",
  "action.approve_extension": "Extension approved", "action.reject_extension": "Extension refused",
  "action.request_suspension": "Suspension asked", "action.approve_suspension": "Suspension approved",
  "action.reject_suspension": "Suspension refused", "action.resume": "Resumed", "action.feedback": "Fed back",
  "action.send_check": "Sent to check", "action.check_pass": "Check passed", "action.check_fail": "Check failed",
  "action.close": "Closed", "action.approve_self_handled": "Self-handling approved",
};
let lang = localStorage.getItem("cgt.lang") || "zh";
export function getLang() { return lang; }
export function setLang(l) { lang = l; localStorage.setItem("cgt.lang", l); document.documentElement.lang = l === "zh" ? "zh-CN" : "en"; }
export function t(key, vars) {
  let s = (lang === "en" ? en[key] : undefined) ?? zh[key] ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
  return s;
}
export const ERRORS_URL = "/console/static/errors.json";
let catalogue = {};
/** Load the error catalogue (from the network, or the service worker's copy when offline). */
export async function loadErrors() {
  try {
    const r = await fetch(ERRORS_URL);
    if (r.ok) catalogue = await r.json();
  } catch { /* offline before the first load: the generic label is shown */ }
}
/** The catalogue's message for an error code (null when the code is not in it). */
export function errorMessage(code) {
  const e = catalogue[code];
  return e ? (e[lang] || e.zh) : null;
}
/** A refusal in words: the catalogue message for its code (else for its HTTP status), with its context. */
export function errorText(err) {
  if (!err) return "";
  if (err.type === "network") return t("net.down"); // not a refusal: the phone's own state
  const status = err.status || (err.type === "server" ? 503 : null);
  const msg = errorMessage(err.type) || (status ? errorMessage(`http.${status}`) : null) || errorMessage("error") || "⚠";
  const ctx = err.ctx && err.ctx.distance_m != null && err.ctx.radius_m != null ? t("ctx.distance", err.ctx) : "";
  return msg + ctx;
}
export function statusName(s) { return t("status." + s); }
export function actionName(a) { return t("action." + a); }

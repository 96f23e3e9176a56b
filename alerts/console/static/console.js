// Duty console single-page app. Plain JS, no build step, no libraries, nothing fetched from the internet.
// Everything shown comes from the console's own API, which has already cut it to the user's scope; text from the
// server is only ever set with textContent, never parsed as HTML.
"use strict";
(() => {
  const T = {
    zh: {
      app_title: "重大危险源监测预警 值班台", user_name: "用户名", password: "密码", log_in: "登录", log_out: "退出",
      lang_other: "English", alert_queue: "报警队列", col_level: "级别", col_state: "状态", col_text: "报警内容",
      col_raised: "发生时间", col_tier: "升级层级", col_next: "下一步", col_actions: "操作", no_alerts: "当前无报警",
      overlay_list: "已搁置 / 维护抑制 / 停用", closed_list: "近期已关闭", map: "危险源分布", trend_range: "时间范围",
      timeline: "报警时间线", shelve_for: "搁置时长", authorised_by: "批准人", reason: "原因", comment_text: "备注内容",
      cancel: "取消", submit: "提交", ack: "确认", comment: "备注", shelve: "搁置", unshelve: "取消搁置", reset: "复位",
      escalate: "升级", oos: "停用", return_to_service: "恢复使用", suppress: "维护抑制", unsuppress: "解除抑制",
      sent: "指令已发送，等待系统确认", rejected: "指令被拒绝", login_failed: "登录失败", live: "实时", lost: "连接中断，重连中",
      connecting: "连接中", stopped: "已停止", due: "即将升级", next_to: "升级至", none: "—", shelved_until: "搁置至",
      suppressed: "维护抑制中", out_of_service: "已停用", sensors: "传感器", grade: "危险源等级", level_none: "正常",
      no_data: "该时段无数据", loading: "加载中…", flood: "报警泛滥：", flood_text: "{pos} 在 {min} 分钟内产生 {n} 条报警。首发报警：{first}",
      dismiss: "关闭", scope_city: "全市", comments: "条备注", by: "操作人", scale_km: "公里", no_sources: "管辖范围内无危险源",
      unit_min: "分", unit_s: "秒", legend_normal: "正常", repeat: "第{n}次重复",
    },
    en: {
      app_title: "Major hazard monitoring — duty console", user_name: "User name", password: "Password", log_in: "Log in",
      log_out: "Log out", lang_other: "中文", alert_queue: "Alert queue", col_level: "Level", col_state: "State",
      col_text: "Alert", col_raised: "Raised (CST)", col_tier: "Escalation", col_next: "Next step", col_actions: "Actions",
      no_alerts: "No alerts", overlay_list: "Shelved / suppressed / out of service", closed_list: "Recently closed",
      map: "Hazard sources", trend_range: "Range", timeline: "Alert timeline", shelve_for: "Shelve for",
      authorised_by: "Authorised by", reason: "Reason", comment_text: "Comment", cancel: "Cancel", submit: "Submit",
      ack: "Ack", comment: "Comment", shelve: "Shelve", unshelve: "Unshelve", reset: "Reset", escalate: "Escalate",
      oos: "Out of service", return_to_service: "Return to service", suppress: "Suppress (maintenance)",
      unsuppress: "Unsuppress", sent: "Command sent; waiting for the system", rejected: "Command rejected",
      login_failed: "Login failed", live: "live", lost: "connection lost, reconnecting", connecting: "connecting",
      stopped: "stopped", due: "escalating now", next_to: "to", none: "—", shelved_until: "shelved until",
      suppressed: "suppressed (maintenance)", out_of_service: "out of service", sensors: "Sensors", grade: "Grade",
      level_none: "normal", no_data: "no data in this range", loading: "loading…", flood: "Alert flood: ",
      flood_text: "{pos}: {n} alerts within {min} min. First out: {first}", dismiss: "Dismiss", scope_city: "(city-wide)",
      comments: "comments", by: "by", scale_km: "km", no_sources: "no hazard sources in your scope", unit_min: "min",
      unit_s: "s", legend_normal: "normal", repeat: "repeat {n}",
    },
  };
  const ACTIONS = {
    raise: ["报警产生", "raised"], upgrade: ["级别升高", "upgraded"], downgrade: ["级别降低", "downgraded"],
    clear: ["条件消失", "condition cleared"], rtn: ["恢复正常", "returned to normal"], realarm: ["再次报警", "re-alarmed"],
    close: ["报警关闭", "closed"], ack: ["确认", "acknowledged"], comment: ["备注", "comment"], shelve: ["搁置", "shelved"],
    unshelve: ["取消搁置", "unshelved"], auto_unshelve: ["搁置到期", "shelve expired"], reset: ["复位", "reset"],
    suppress: ["维护抑制", "suppressed"], unsuppress: ["解除抑制", "unsuppressed"], oos: ["停用", "out of service"],
    return_to_service: ["恢复使用", "returned to service"], escalate: ["手动升级", "escalated by hand"],
    reescalate: ["自动升级", "escalated"], repeat: ["重复通知", "repeated"], cleared_notice: ["解除通知", "all-clear sent"],
  };
  const STOP_REASONS = {
    acked: ["已确认", "acknowledged"], ack: ["已确认", "acknowledged"], shelved: ["已搁置", "shelved"],
    suppressed: ["维护抑制", "suppressed"], out_of_service: ["已停用", "out of service"], closed: ["已关闭", "closed"],
    cleared: ["已恢复", "cleared"], rtn: ["已恢复", "returned to normal"], top: ["已至最高层级", "top tier reached"],
  };
  const LEVEL_COLOURS = { 1: "#d7191c", 2: "#fd8d3c", 3: "#fed300", 4: "#2c7bb6" };
  const GREY = "#9aa0a6";
  const OVERLAY = (a) => a.state !== "NORMAL" && (a.shelved || a.suppressed || a.out_of_service);

  const state = {
    lang: localStorage.getItem("hw-lang") === "en" ? "en" : "zh",
    me: null, csrf: "", offset: 0, alerts: new Map(), levels: {}, floods: [], sources: [],
    selectedSource: null, selectedSensor: null, timelineAlert: null, es: null, floodDismissed: null,
  };
  const $ = (id) => document.getElementById(id);

  // ---- helpers --------------------------------------------------------------------------------------------
  const t = (k) => (T[state.lang][k] ?? T.zh[k] ?? k);
  const pick = (zh, en) => (state.lang === "zh" ? zh : en) ?? zh ?? en ?? "";
  const pair = (p) => (Array.isArray(p) ? pick(p[0], p[1]) : "");
  const fill = (s, vars) => s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
  const nowMs = () => Date.now() + state.offset;
  function cst(ms, withDate) {
    // China Standard Time whatever the browser's zone: duty logs and phone calls all use CST.
    const iso = new Date(ms + 8 * 3600e3).toISOString();
    return withDate ? `${iso.slice(5, 10)} ${iso.slice(11, 19)}` : iso.slice(11, 19);
  }
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  const SVGNS = "http://www.w3.org/2000/svg";
  function sv(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function errText(data, fallback) {
    const e = data && data.error;
    return e ? pick(e.zh, e.en) : fallback;
  }
  async function api(method, path, body) {
    const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method === "POST") {
      opts.headers["Content-Type"] = "application/json";
      opts.headers["X-CSRF-Token"] = state.csrf || "";
      opts.body = JSON.stringify(body || {});
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (err) {
      return { status: 0, data: { error: { zh: "网络错误", en: "network error" } }, headers: new Headers() };
    }
    let data = null;
    try { data = await res.json(); } catch (err) { data = null; }
    if (res.status === 401 && path !== "/login" && state.me) showLogin();
    return { status: res.status, data, headers: res.headers };
  }
  let toastTimer = 0;
  function toast(text, bad) {
    const box = $("toast");
    box.textContent = text;
    box.classList.toggle("bad", !!bad);
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, bad ? 8000 : 3500);
  }
  const can = (perm) => !!state.me && state.me.permissions.includes(perm);
  const canDo = (action) => can(state.me.commands[action]);

  // ---- language -------------------------------------------------------------------------------------------
  function applyLang() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.title = t("app_title");
    for (const e of document.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
    for (const b of document.querySelectorAll(".lang-toggle")) b.textContent = t("lang_other");
    if (state.me) renderAll();
  }
  function toggleLang() {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("hw-lang", state.lang);
    applyLang();
  }

  // ---- login ------------------------------------------------------------------------------------------------
  function showLogin(message) {
    if (state.es) { state.es.close(); state.es = null; }
    state.me = null;
    state.csrf = "";
    $("app-view").hidden = true;
    $("login-view").hidden = false;
    $("login-error").textContent = message || "";
    $("login-password").value = "";
  }
  async function onLogin(ev) {
    ev.preventDefault();
    $("login-error").textContent = "";
    const r = await api("POST", "/login", { user: $("login-user").value.trim(), password: $("login-password").value });
    if (r.status !== 200) {
      $("login-error").textContent = errText(r.data, t("login_failed"));
      return;
    }
    await boot();
  }
  async function boot() {
    const r = await api("GET", "/api/me");
    if (r.status !== 200) { showLogin(); return; }
    state.me = r.data;
    state.csrf = r.data.csrf;
    state.offset = r.data.server_ms - Date.now();
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    renderMe();
    const s = await api("GET", "/api/sources");
    state.sources = s.status === 200 ? s.data.sources : [];
    for (const src of state.sources) state.levels[src.id] = src.level;
    connect();
    applyLang();
  }
  async function onLogout() {
    await api("POST", "/logout", {});
    showLogin();
  }

  // ---- live stream ------------------------------------------------------------------------------------------
  function setConn(which) {
    const c = $("conn-status");
    c.dataset.state = which;
    c.textContent = t(which);
  }
  function connect() {
    if (state.es) state.es.close();
    setConn("connecting");
    const es = new EventSource("/api/events");
    state.es = es;
    es.addEventListener("snapshot", (e) => {
      const d = JSON.parse(e.data);
      state.alerts = new Map(d.alerts.map((a) => [a.alert_id, a]));
      state.levels = d.levels || {};
      state.floods = d.floods || [];
      state.offset = d.server_ms - Date.now();
      setConn("live");
      renderAll();
    });
    es.addEventListener("event", (e) => {
      const d = JSON.parse(e.data);
      if (d.alert) state.alerts.set(d.alert.alert_id, d.alert);
      if (d.source) state.levels[d.source] = d.source_level;
      if (d.server_ms) state.offset = d.server_ms - Date.now();
      const ev = d.event || {};
      if (ev.kind === "rejected" && state.me && ev.actor === state.me.user) {
        toast(`${t("rejected")}: ${ev.reason || ""}`, true);
      }
      renderQueue();
      renderMap();
      if (state.timelineAlert && ev.alert_id === state.timelineAlert) openTimeline(state.timelineAlert);
    });
    es.addEventListener("flood", (e) => {
      const d = JSON.parse(e.data);
      state.floods.push(d.flood);
      state.floodDismissed = null;
      renderFlood();
      renderQueue();
    });
    es.addEventListener("ping", (e) => { state.offset = JSON.parse(e.data).server_ms - Date.now(); setConn("live"); });
    es.addEventListener("logout", () => { es.close(); showLogin(); });
    es.onerror = async () => {
      setConn("lost");
      if (es.readyState !== EventSource.CLOSED) return; // the browser retries by itself
      const r = await api("GET", "/api/me");
      if (r.status === 200 && state.es === es) setTimeout(connect, 3000);
    };
  }

  // ---- header -----------------------------------------------------------------------------------------------
  function renderMe() {
    const m = state.me;
    if (!m) return;
    const scope = m.scope ? pick(m.scope_name.zh, m.scope_name.en) : `${pick(m.city.zh, m.city.en)} ${t("scope_city")}`;
    $("me").textContent = `${m.display_name} (${m.user}) · ${scope}`;
  }
  function tick() {
    $("clock").textContent = `${cst(nowMs(), true)} CST`;
    for (const td of document.querySelectorAll("td.next[data-next-ms]")) nextCell(td);
  }

  // ---- queue ------------------------------------------------------------------------------------------------
  function levelName(level) {
    const l = state.me.names.levels[String(level)];
    return l ? pick(`${l[0]} ${l[1]}`, `${l[2]} ${l[3]}`) : String(level);
  }
  function sourceName(id) {
    const s = state.sources.find((x) => x.id === id);
    return s ? pick(s.name_zh, s.name_en) : id;
  }
  function sortAlerts(list) {
    return list.sort((a, b) => (a.state === "NORMAL") - (b.state === "NORMAL") || (a.level || 9) - (b.level || 9)
      || (b.raised_ms || 0) - (a.raised_ms || 0));
  }
  function escalationCells(a) {
    const esc = a.escalation || {};
    const names = state.me.names;
    const tierKey = esc.tier >= 0 ? names.tier_order[esc.tier] : null;
    const tier = el("td", { class: "tier", "data-testid": "alert-tier", "data-tier": esc.tier ?? -1,
      text: tierKey ? pair(names.tiers[tierKey]) : t("none") });
    const next = el("td", { class: "next", "data-testid": "alert-next" });
    if (esc.stopped) {
      next.dataset.stopped = "1";
      next.textContent = `${t("stopped")} (${pair(STOP_REASONS[esc.stopped]) || esc.stopped})`;
    } else if (esc.next_ms && a.state !== "NORMAL") {
      next.dataset.nextMs = String(esc.next_ms);
      const nextKey = names.tier_order[(esc.tier ?? -1) + 1];
      next.dataset.nextTier = nextKey ? pair(names.tiers[nextKey]) : "";
      nextCell(next);
    } else {
      next.textContent = t("none");
    }
    return [tier, next];
  }
  function nextCell(td) {
    const left = Math.round((Number(td.dataset.nextMs) - nowMs()) / 1000);
    const target = td.dataset.nextTier ? `${t("next_to")} ${td.dataset.nextTier} ` : "";
    if (left <= 0) { td.dataset.overdue = "1"; td.textContent = `${target}${t("due")}`; return; }
    td.dataset.overdue = "0";
    const mm = String(Math.floor(left / 60)).padStart(2, "0");
    const ss = String(left % 60).padStart(2, "0");
    td.textContent = `${target}${mm}:${ss}`;
  }
  function actionButton(action, a, label) {
    if (!canDo(action)) return null;
    const direct = ["ack", "reset", "unshelve", "return_to_service"].includes(action);
    return el("button", {
      type: "button", class: `${action}-button`, "data-testid": `${action.replace(/_/g, "-")}-button`,
      "data-alert-id": a.alert_id, text: label || t(action),
      onclick: (ev) => {
        ev.stopPropagation();
        if (direct) sendAlertCommand(a.alert_id, action, {});
        else openAction(action, a, null);
      },
    });
  }
  function alertRow(a, mode) {
    const firstOut = state.floods.some((f) => f.first_out === a.alert_id);
    const tr = el("tr", {
      class: `lvl-${a.level} state-${a.state}${firstOut ? " first-out" : ""}${state.timelineAlert === a.alert_id ? " selected" : ""}`,
      "data-testid": mode === "queue" ? "alert-row" : `${mode}-row`, "data-alert-id": a.alert_id,
      "data-level": a.level, "data-source": a.source,
    });
    const cat = state.me.names.categories[a.category];
    const sub = [cat ? pair(cat) : a.category, sourceName(a.source), a.sensor];
    if (a.comments) sub.push(`${a.comments} ${t("comments")}`);
    if (a.shelved) sub.push(`${t("shelved_until")} ${cst(a.shelved.until_ms, true)} · ${a.shelved.by}`);
    if (a.suppressed) sub.push(`${t("suppressed")} · ${a.suppressed.by}`);
    if (a.out_of_service) sub.push(`${t("out_of_service")} · ${a.out_of_service.by}/${a.out_of_service.authorised_by}`);
    const stateName = state.me.names.states[a.state];
    tr.append(
      el("td", { class: `band lvl-${a.level}` }),
      el("td", {}, el("span", { class: `level-tag lvl-${a.level}`, "data-testid": "alert-level", text: levelName(a.level) })),
      el("td", { class: "state", "data-testid": "alert-state", "data-state": a.state, text: stateName ? pair(stateName) : a.state }),
      el("td", { class: "text" }, el("div", { "data-testid": "alert-text", text: pick(a.text_zh, a.text_en) }),
        el("div", { class: "sub", text: sub.filter(Boolean).join(" · ") })),
      el("td", { class: "when", text: a.raised_ms ? cst(a.raised_ms, true) : "" }),
      ...escalationCells(a),
    );
    const acts = el("td", { class: "actions" });
    if (mode === "queue") {
      if (a.state === "UNACK" || a.state === "RTN_UNACK") acts.append(actionButton("ack", a) || "");
      if (a.state === "LATCHED" || (a.state === "RTN_UNACK" && a.latching)) acts.append(actionButton("reset", a) || "");
      acts.append(actionButton("comment", a) || "", actionButton("shelve", a) || "");
      if (a.state === "UNACK" || a.state === "ACKED") acts.append(actionButton("escalate", a) || "");
      acts.append(actionButton("oos", a) || "");
    } else if (mode === "overlay") {
      if (a.state === "UNACK" || a.state === "RTN_UNACK") acts.append(actionButton("ack", a) || "");
      if (a.shelved) acts.append(actionButton("unshelve", a) || "");
      if (a.out_of_service) acts.append(actionButton("return_to_service", a) || "");
      acts.append(actionButton("comment", a) || "");
    }
    tr.append(acts);
    tr.addEventListener("click", () => openTimeline(a.alert_id));
    return tr;
  }
  function renderQueue() {
    if (!state.me) return;
    const all = sortAlerts([...state.alerts.values()]);
    const open = all.filter((a) => a.state !== "NORMAL" && !OVERLAY(a));
    const overlay = all.filter(OVERLAY);
    const closed = all.filter((a) => a.state === "NORMAL").slice(0, 100);
    $("queue-body").replaceChildren(...open.map((a) => alertRow(a, "queue")));
    $("overlay-body").replaceChildren(...overlay.map((a) => alertRow(a, "overlay")));
    $("closed-body").replaceChildren(...closed.map((a) => alertRow(a, "closed")));
    $("queue-empty").hidden = open.length > 0;
    const unack = open.filter((a) => a.state === "UNACK" || a.state === "RTN_UNACK").length;
    $("queue-count").textContent = `(${open.length} / ${unack} ${pick("未确认", "unacknowledged")})`;
    $("overlay-count").textContent = `(${overlay.length})`;
    $("closed-count").textContent = `(${closed.length})`;
  }
  function renderFlood() {
    const f = state.floods[state.floods.length - 1];
    const banner = $("flood-banner");
    // A flood stays on the banner for half an hour after it started, unless dismissed.
    if (!f || state.floodDismissed === f.event_id || nowMs() - (f.started_ms || f.ts_ms || 0) > 1800e3) {
      banner.hidden = true;
      return;
    }
    const ent = state.sources.find((s) => s.enterprise === f.position);
    const pos = ent ? pick(ent.enterprise_zh, ent.enterprise_en) : f.position;
    const text = fill(t("flood_text"), { pos, n: f.count, min: Math.round((f.window_s || 600) / 60),
      first: pick(f.first_out_text_zh, f.first_out_text_en) });
    banner.replaceChildren(el("span", { text: `⚠ ${t("flood")}${text}` }), " ",
      el("button", { type: "button", class: "link", text: t("dismiss"), onclick: () => {
        state.floodDismissed = f.event_id; renderFlood();
      } }));
    banner.dataset.firstOut = f.first_out || "";
    banner.hidden = false;
  }

  // ---- commands ---------------------------------------------------------------------------------------------
  async function postCommand(path, action, body, quiet) {
    const r = await api("POST", path, body);
    if (r.status === 202) toast(`${t(action)}: ${t("sent")}`);
    else if (!quiet) toast(errText(r.data, `HTTP ${r.status}`), true);
    return r;
  }
  const sendAlertCommand = (alertId, action, body, quiet) =>
    postCommand(`/api/alerts/${encodeURIComponent(alertId)}/${action}`, action, body, quiet);
  const sendSourceCommand = (source, action, body, quiet) =>
    postCommand(`/api/sources/${encodeURIComponent(source)}/${action}`, action, body, quiet);
  let pending = null;
  function openAction(action, alert, source) {
    pending = { action, alert, source };
    $("action-title").textContent = t(action);
    $("action-target").textContent = alert ? pick(alert.text_zh, alert.text_en) : sourceName(source);
    $("duration-row").hidden = action !== "shelve";
    $("authorised-row").hidden = action !== "oos";
    $("reason-label").textContent = action === "comment" ? t("comment_text") : t("reason");
    $("action-reason").value = "";
    $("action-authorised").value = "";
    $("action-error").textContent = "";
    $("action-dialog").showModal();
    $("action-reason").focus();
  }
  async function submitAction(ev) {
    ev.preventDefault();
    if (!pending) return;
    const body = { reason: $("action-reason").value };
    if (pending.action === "shelve") body.duration_s = Number($("action-duration").value);
    if (pending.action === "oos") body.authorised_by = $("action-authorised").value;
    const r = pending.alert
      ? await sendAlertCommand(pending.alert.alert_id, pending.action, body, true)
      : await sendSourceCommand(pending.source, pending.action, body, true);
    if (r.status === 202) { $("action-dialog").close(); pending = null; }
    else $("action-error").textContent = errText(r.data, `HTTP ${r.status}`);
  }

  // ---- timeline ---------------------------------------------------------------------------------------------
  async function openTimeline(alertId) {
    state.timelineAlert = alertId;
    const r = await api("GET", `/api/alerts/${encodeURIComponent(alertId)}`);
    if (r.status !== 200) { $("timeline-panel").hidden = true; return; }
    const a = r.data.alert;
    $("timeline-head").replaceChildren(el("p", { text: pick(a.text_zh, a.text_en) }));
    const items = r.data.timeline.slice().reverse().map((e) => {
      const bits = [pair(ACTIONS[e.action]) || e.action || e.kind];
      if (e.page) bits.push(`→ ${pair(state.me.names.tiers[e.page.tier_name]) || e.page.tier_name}` +
        (e.page.repeat ? ` (${fill(t("repeat"), { n: e.page.repeat })})` : "") +
        (e.page.recipients && e.page.recipients.length ? `: ${e.page.recipients.join("、")}` : ""));
      if (e.notify) bits.push(`${e.notify.channel} → ${e.notify.recipient}: ${e.notify.ok ? "OK" : "✗"} ${e.notify.status || ""}`);
      if (e.actor && e.actor !== "system") bits.push(`${t("by")} ${e.actor}`);
      if (e.reason) bits.push(`“${e.reason}”`);
      return el("li", { "data-testid": "timeline-item" }, el("span", { class: "t", text: cst(e.ts_ms || 0, true) }),
        el("span", { text: bits.join(" · ") }));
    });
    $("timeline-list").replaceChildren(...items);
    $("timeline-panel").hidden = false;
    for (const tr of document.querySelectorAll("tr[data-alert-id]")) {
      tr.classList.toggle("selected", tr.dataset.alertId === alertId);
    }
  }

  // ---- map ----------------------------------------------------------------------------------------------------
  function hull(points) {
    // Andrew's monotone chain; district outlines are the hull of their sources (no boundary files offline).
    const p = points.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    if (p.length < 3) return p;
    const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
    const lower = [];
    for (const q of p) {
      while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], q) <= 0) lower.pop();
      lower.push(q);
    }
    const upper = [];
    for (const q of p.slice().reverse()) {
      while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], q) <= 0) upper.pop();
      upper.push(q);
    }
    return lower.slice(0, -1).concat(upper.slice(0, -1));
  }
  function renderMap() {
    const map = $("map");
    if (!state.me) return;
    const W = 800, H = 500, M = 60;
    const srcs = state.sources;
    map.replaceChildren();
    if (!srcs.length) {
      map.append(sv("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "district-label" }, t("no_sources")));
      return;
    }
    // Equirectangular: longitude shrunk by cos(mean latitude) so a city-sized map keeps its shape.
    const lat0 = srcs.reduce((s, x) => s + x.lat, 0) / srcs.length;
    const k = Math.cos((lat0 * Math.PI) / 180);
    const xs = srcs.map((s) => s.lon * k), ys = srcs.map((s) => s.lat);
    const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
    const spanX = Math.max(maxX - minX, 0.02), spanY = Math.max(maxY - minY, 0.02);
    const scale = Math.min((W - 2 * M) / spanX, (H - 2 * M) / spanY); // px per degree of latitude
    const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
    const proj = (s) => [W / 2 + (s.lon * k - cx) * scale, H / 2 - (s.lat - cy) * scale];
    const byDistrict = new Map();
    for (const s of srcs) {
      if (!byDistrict.has(s.district)) byDistrict.set(s.district, []);
      byDistrict.get(s.district).push(s);
    }
    for (const [did, list] of byDistrict) {
      const pts = hull(list.map(proj));
      const poly = pts.map((p) => p.map((v) => v.toFixed(1)).join(",")).join(" ");
      map.append(sv("polygon", { class: "hull", points: poly, "stroke-linecap": "round", "data-district": did }));
      if (pts.length >= 3) map.append(sv("polygon", { class: "hull-edge", points: poly }));
      const x = pts.reduce((s, p) => s + p[0], 0) / pts.length;
      const y = Math.min(...pts.map((p) => p[1])) - 26;
      map.append(sv("text", { class: "district-label", x: x.toFixed(1), y: Math.max(y, 14).toFixed(1),
        "data-testid": "map-district" }, pick(list[0].district_zh, list[0].district_en)));
    }
    // Labels: alarmed and selected sources first; a label that would overlap one already placed is left out
    // (the name stays in the tooltip and the source panel), so a dense district stays readable.
    const placed = [];
    const labelFits = (x, y, text) => {
      const box = [x + 12, y - 12, x + 14 + text.length * (state.lang === "zh" ? 17 : 9), y + 6];
      if (placed.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) return false;
      placed.push(box);
      return true;
    };
    const order = srcs.slice().sort((a, b) => (b.id === state.selectedSource) - (a.id === state.selectedSource)
      || (state.levels[a.id] || 9) - (state.levels[b.id] || 9));
    const labelled = new Set(order.filter((s) => labelFits(...proj(s), pick(s.name_zh, s.name_en))).map((s) => s.id));
    for (const s of srcs) {
      const [x, y] = proj(s);
      const level = state.levels[s.id] ?? null;
      const g = sv("g", {});
      const c = sv("circle", {
        class: `source${state.selectedSource === s.id ? " selected" : ""}`, cx: x.toFixed(1), cy: y.toFixed(1),
        r: level ? 10 : 7, fill: level ? LEVEL_COLOURS[level] : GREY, "data-testid": "map-source",
        "data-source-id": s.id, "data-level": level ?? "",
      });
      c.append(sv("title", {}, `${pick(s.name_zh, s.name_en)} · ${pick(s.enterprise_zh, s.enterprise_en)} · ${
        level ? levelName(level) : t("level_none")}`));
      c.addEventListener("click", () => selectSource(s.id));
      g.append(c);
      if (labelled.has(s.id)) {
        g.append(sv("text", { class: "source-label", x: (x + 12).toFixed(1), y: (y + 5).toFixed(1) },
          pick(s.name_zh, s.name_en)));
      }
      map.append(g);
    }
    // Scale bar: one degree of latitude is ~111.32 km everywhere.
    const pxPerKm = scale / 111.32;
    const nice = [0.5, 1, 2, 5, 10, 20, 50, 100, 200].filter((km) => km * pxPerKm <= 160).pop() || 0.5;
    const len = nice * pxPerKm;
    const sb = sv("g", { class: "scale", "data-testid": "map-scale" });
    sb.append(sv("line", { x1: 20, y1: H - 20, x2: 20 + len, y2: H - 20 }),
      sv("line", { x1: 20, y1: H - 26, x2: 20, y2: H - 14 }),
      sv("line", { x1: 20 + len, y1: H - 26, x2: 20 + len, y2: H - 14 }),
      sv("text", { x: 20 + len / 2, y: H - 30, "text-anchor": "middle" }, `${nice} ${t("scale_km")}`));
    map.append(sb, sv("text", { class: "north", x: W - 24, y: 24, "text-anchor": "middle" }, "N ↑"));
    renderLegend();
  }
  function renderLegend() {
    const items = [1, 2, 3, 4].map((l) => [LEVEL_COLOURS[l], levelName(l)]).concat([[GREY, t("legend_normal")]]);
    $("legend").replaceChildren(...items.map(([c, label]) => {
      const dot = el("i");
      dot.style.background = c;
      return el("span", {}, dot, label);
    }));
  }
  function selectSource(id) {
    state.selectedSource = id;
    renderMap();
    renderSourcePanel();
  }
  function renderSourcePanel() {
    const s = state.sources.find((x) => x.id === state.selectedSource);
    const panel = $("source-panel");
    if (!s) { panel.hidden = true; return; }
    const level = state.levels[s.id] ?? null;
    const head = el("h3", { "data-testid": "source-name", text: `${pick(s.name_zh, s.name_en)} (${s.id})` });
    const info = el("p", { class: "muted", text: `${pick(s.enterprise_zh, s.enterprise_en)} · ${pick(s.district_zh, s.district_en)} · ${
      t("grade")} ${s.grade} · ${level ? levelName(level) : t("level_none")}` });
    const list = el("ul", { class: "sensor-list", "data-testid": "sensor-list" }, ...s.sensors.map((x) => el("li", {},
      el("button", { type: "button", "data-testid": "sensor-item", "data-sensor-id": x.id,
        class: state.selectedSensor === x.id ? "selected" : "",
        text: `${pick(x.name_zh, x.name_en)} (${x.unit})`, onclick: () => selectSensor(x.id) }))));
    const buttons = el("div", {});
    if (canDo("suppress")) {
      buttons.append(el("button", { type: "button", "data-testid": "suppress-button", text: t("suppress"),
        onclick: () => openAction("suppress", null, s.id) }), " ",
      el("button", { type: "button", "data-testid": "unsuppress-button", text: t("unsuppress"),
        onclick: () => sendSourceCommand(s.id, "unsuppress", {}) }));
    }
    panel.replaceChildren(head, info, buttons, el("h3", { text: t("sensors") }), list);
    panel.hidden = false;
  }

  // ---- trend ----------------------------------------------------------------------------------------------
  function selectSensor(id) {
    state.selectedSensor = id;
    renderSourcePanel();
    loadTrend();
  }
  async function loadTrend() {
    const id = state.selectedSensor;
    if (!id) return;
    $("trend-panel").hidden = false;
    $("trend-msg").textContent = t("loading");
    const minutes = $("trend-minutes").value;
    const r = await api("GET", `/api/trend?sensor=${encodeURIComponent(id)}&minutes=${minutes}`);
    if (id !== state.selectedSensor) return;
    if (r.status !== 200) {
      $("trend").replaceChildren();
      $("trend-msg").textContent = errText(r.data, `HTTP ${r.status}`);
      return;
    }
    state.trend = r.data;
    renderTrend();
  }
  function renderTrend() {
    const d = state.trend;
    if (!d) return;
    $("trend-title").textContent = `${pick(d.name_zh, d.name_en)} (${d.sensor}, ${d.unit})`;
    const W = 800, H = 260, L = 64, R = 84, TP = 12, B = 34;
    const svgEl = $("trend");
    svgEl.replaceChildren();
    const vals = d.points.map((p) => p[1]).concat(d.limits.map((l) => l.value));
    let lo = vals.length ? Math.min(...vals) : d.range[0], hi = vals.length ? Math.max(...vals) : d.range[1];
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.06;
    lo -= pad; hi += pad;
    const x = (ms) => L + ((ms - d.start_ms) / (d.stop_ms - d.start_ms)) * (W - L - R);
    const y = (v) => TP + (1 - (v - lo) / (hi - lo)) * (H - TP - B);
    for (let i = 0; i <= 4; i++) {
      const v = lo + ((hi - lo) * i) / 4;
      svgEl.append(sv("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
        sv("text", { class: "tick", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, Number(v.toPrecision(4)).toString()));
    }
    const span = d.stop_ms - d.start_ms;
    for (let i = 0; i <= 6; i++) {
      const ms = d.start_ms + (span * i) / 6;
      const label = span > 86400e3 ? cst(ms, true).slice(0, 11) : cst(ms).slice(0, 5);
      svgEl.append(sv("line", { class: "axis", x1: x(ms), x2: x(ms), y1: H - B, y2: H - B + 4 }),
        sv("text", { class: "tick", x: x(ms), y: H - B + 20, "text-anchor": "middle" }, label));
    }
    svgEl.append(sv("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }),
      sv("text", { class: "tick", x: W - R, y: H - 4, "text-anchor": "end" }, "CST"));
    for (const lim of d.limits) {
      const colour = LEVEL_COLOURS[lim.level] || GREY;
      svgEl.append(sv("line", { class: "thr", "data-testid": "trend-limit", "data-limit": lim.name, x1: L, x2: W - R,
        y1: y(lim.value), y2: y(lim.value), stroke: colour }),
      sv("text", { class: "thr-label", x: W - R + 4, y: y(lim.value) + 4, fill: colour }, `${lim.name} ${lim.value}`));
    }
    if (d.points.length) {
      const pts = d.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
      svgEl.append(sv("polyline", { class: "line", points: pts, "data-testid": "trend-line" }));
      $("trend-msg").textContent = "";
    } else {
      $("trend-msg").textContent = t("no_data");
    }
  }

  function renderAll() {
    if (!state.me) return;
    renderMe();
    renderQueue();
    renderFlood();
    renderMap();
    renderSourcePanel();
    renderTrend();
    setConn($("conn-status").dataset.state || "connecting");
    if (state.timelineAlert && !$("timeline-panel").hidden) openTimeline(state.timelineAlert);
  }

  // ---- start ------------------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    for (const b of document.querySelectorAll(".lang-toggle")) b.addEventListener("click", toggleLang);
    $("action-form").addEventListener("submit", submitAction);
    $("action-cancel").addEventListener("click", () => { $("action-dialog").close(); pending = null; });
    $("trend-minutes").addEventListener("change", loadTrend);
    $("timeline-close").addEventListener("click", () => {
      state.timelineAlert = null;
      $("timeline-panel").hidden = true;
      renderQueue();
    });
    applyLang();
    setInterval(tick, 1000);
    boot();
  });
})();

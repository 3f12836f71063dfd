// Vitals dashboard: one small script, no framework, no build step (docs/dashboard.md).
// Views by hash route: #/board, #/inbox/{workerId}, #/patient/{id}, #/village/{id},
// #/emergencies, #/emergency/{id}. Every API call carries the signed-in person's access
// token; charts are inline SVG drawn below (lineChart, barChart).
"use strict";

const CONFIG = Object.assign(
  { apiUrl: "", auth: "local", pollSeconds: 3 },
  window.VITALS_CONFIG || {}
);
const API = CONFIG.apiUrl.replace(/\/$/, "");
const TOKEN_KEY = "vitals.token";
const METRICS = {
  heart_rate: "Heart rate",
  spo2: "SpO₂",
  temperature: "Temperature",
  blood_pressure_systolic: "BP systolic",
  blood_pressure_diastolic: "BP diastolic",
  respiratory_rate: "Respiratory rate",
};
const OPEN = new Set(["raised", "routed", "escalated"]);

// ---------------------------------------------------------------- DOM helpers
function h(tag, attrs, ...children) {
  const svg = ["svg", "path", "line", "rect", "circle", "text", "g", "polyline", "title"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (sel) => document.querySelector(sel);
function show(...nodes) {
  const main = $("#main");
  main.replaceChildren(...nodes);
}
function banner(text, kind) {
  const b = $("#banner");
  b.textContent = text || "";
  b.className = "banner " + (kind || "");
  b.hidden = !text;
}
function ago(iso) {
  if (!iso) return "—";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (!isFinite(s)) return iso;
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}
function clock(iso) {
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

// ---------------------------------------------------------------- sign-in
function b64urlDecode(s) {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  return atob(s + "===".slice((s.length + 3) % 4));
}
function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function claims(token) {
  try { return JSON.parse(b64urlDecode(token.split(".")[1])); } catch (_) { return null; }
}
function session() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const c = token && claims(token);
  if (!c || (c.exp && c.exp * 1000 < Date.now())) return null;
  const groups = Array.isArray(c["cognito:groups"]) ? c["cognito:groups"] : [];
  const role = ["operator", "supervisor", "health-worker"].find((g) => groups.includes(g)) || "none";
  return { token, username: c.username || c.sub, role };
}
function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  if (CONFIG.auth === "cognito" && CONFIG.cognitoDomain) {
    location.href = `${CONFIG.cognitoDomain}/logout?client_id=${encodeURIComponent(CONFIG.clientId)}&logout_uri=${encodeURIComponent(CONFIG.redirectUri)}`;
    return;
  }
  location.hash = "#/signin";
  route();
}

// Cognito hosted UI: authorization code with PKCE (public client, no secret).
async function cognitoSignIn() {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem("vitals.pkce", JSON.stringify({ verifier, state }));
  const q = new URLSearchParams({
    response_type: "code", client_id: CONFIG.clientId, redirect_uri: CONFIG.redirectUri,
    scope: CONFIG.scopes, state, code_challenge: challenge, code_challenge_method: "S256",
  });
  location.href = `${CONFIG.cognitoDomain}/oauth2/authorize?${q}`;
}
async function cognitoCallback() {
  const q = new URLSearchParams(location.search);
  const code = q.get("code");
  if (!code) return;
  const saved = JSON.parse(sessionStorage.getItem("vitals.pkce") || "{}");
  sessionStorage.removeItem("vitals.pkce");
  history.replaceState(null, "", location.pathname + "#/board");
  if (q.get("state") !== saved.state) { banner("Sign-in failed: state mismatch", "error"); return; }
  const res = await fetch(`${CONFIG.cognitoDomain}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code", client_id: CONFIG.clientId, code,
      redirect_uri: CONFIG.redirectUri, code_verifier: saved.verifier,
    }),
  });
  if (!res.ok) { banner("Sign-in failed (" + res.status + ")", "error"); return; }
  sessionStorage.setItem(TOKEN_KEY, (await res.json()).access_token);
}

function signInView() {
  if (CONFIG.auth === "cognito") {
    return show(h("section", { class: "card signin" },
      h("h1", {}, "Sign in"),
      h("p", {}, "Health workers, supervisors and operators sign in with their account."),
      h("button", { type: "button", class: "primary", onclick: cognitoSignIn }, "Sign in")));
  }
  // devstack only: the local token issuer signs a token for any demo identity.
  const user = h("input", { id: "username", name: "username", value: "w-01", required: true, autocomplete: "username" });
  const role = h("select", { id: "role", name: "role" },
    h("option", { value: "health-worker" }, "Health worker"),
    h("option", { value: "supervisor" }, "Supervisor"),
    h("option", { value: "operator" }, "Operator"));
  const form = h("form", { class: "card signin", onsubmit: async (e) => {
    e.preventDefault();
    const res = await fetch("/local/sign-in", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: user.value.trim(), role: role.value }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) { banner(body.message || "Sign-in refused", "error"); return; }
    sessionStorage.setItem(TOKEN_KEY, body.accessToken);
    banner("");
    location.hash = role.value === "health-worker" ? "#/inbox" : "#/board";
    route();
  } },
    h("h1", {}, "Sign in"),
    h("p", { class: "local-only" }, "LOCAL ONLY: devstack's sign-in. It signs a token for any demo identity (w-01…w-04, s-01, op-1). Deployed, this is Cognito's hosted UI."),
    h("label", { for: "username" }, "Username"), user,
    h("label", { for: "role" }, "Role"), role,
    h("button", { type: "submit", class: "primary", id: "signin" }, "Sign in"));
  show(form);
}

// ---------------------------------------------------------------- API
const etags = new Map(); // url -> {etag, body}
async function api(path, options) {
  const s = session();
  if (!s) { location.hash = "#/signin"; throw new Error("signed out"); }
  const opts = Object.assign({ method: "GET", cache: "no-store" }, options || {});
  opts.headers = Object.assign({ authorization: "Bearer " + s.token }, opts.headers || {});
  const cached = opts.method === "GET" ? etags.get(path) : null;
  if (cached) opts.headers["if-none-match"] = cached.etag;
  const res = await fetch(API + path, opts);
  if (res.status === 304 && cached) return { body: cached.body, changed: false, etag: cached.etag };
  if (res.status === 401) { sessionStorage.removeItem(TOKEN_KEY); location.hash = "#/signin"; throw new Error("session expired"); }
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { message: text }; }
  if (!res.ok) throw new Error((body && (body.message || body.error)) || `HTTP ${res.status}`);
  const etag = res.headers.get("etag");
  if (etag && opts.method === "GET") etags.set(path, { etag, body });
  return { body, changed: true, etag };
}
// Every page of a list (at most `max` pages).
async function all(path, max) {
  let items = [], cursor = null;
  for (let i = 0; i < (max || 10); i++) {
    const sep = path.includes("?") ? "&" : "?";
    const { body } = await api(path + sep + "limit=100" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    items = items.concat(body.items || []);
    cursor = body.nextCursor;
    if (!cursor) break;
  }
  return items;
}

// ---------------------------------------------------------------- alerts
function alertCard(a, onAck) {
  const open = OPEN.has(a.status);
  const btn = open ? h("button", { type: "button", class: "ack", "data-alert": a.alertId, onclick: async (e) => {
    e.target.disabled = true; e.target.textContent = "…";
    try {
      await api(`/alerts/${encodeURIComponent(a.alertId)}/ack`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      a.status = "acknowledged"; a.acknowledgedBy = session().username;
      e.target.closest("li").replaceWith(alertCard(a, onAck));
      if (onAck) onAck();
    } catch (err) { banner("Acknowledge failed: " + err.message, "error"); e.target.disabled = false; e.target.textContent = "Acknowledge"; }
  } }, "Acknowledge") : null;
  return h("li", { class: `alert sev-${a.severity} st-${a.status}`, "data-alert": a.alertId, "data-patient": a.patientId, "data-status": a.status },
    h("div", { class: "row" },
      h("span", { class: `badge sev-${a.severity}` }, a.severity),
      h("a", { href: `#/patient/${encodeURIComponent(a.patientId)}`, class: "patient" }, a.patientId),
      h("span", { class: "muted" }, a.village),
      h("span", { class: "status" }, a.status)),
    h("p", { class: "desc" }, a.description || a.ruleId),
    h("div", { class: "row meta" },
      h("span", { title: a.raisedAt }, ago(a.raisedAt)),
      a.routedTo ? h("span", {}, "→ " + a.routedTo) : null,
      a.escalationLevel ? h("span", { class: "esc" }, "escalated ×" + a.escalationLevel) : null,
      a.acknowledgedBy ? h("span", {}, "ack " + a.acknowledgedBy) : null,
      a.lateBySeconds ? h("span", {}, "late " + a.lateBySeconds + " s") : null,
      btn));
}

let poller = null;
function stopPolling() { if (poller) clearTimeout(poller); poller = null; }
function live(load) {
  stopPolling();
  const tick = async () => {
    try { await load(); banner(""); } catch (err) { if (session()) banner("Cannot reach the API: " + err.message, "error"); }
    if (session()) poller = setTimeout(tick, CONFIG.pollSeconds * 1000);
  };
  tick();
}

// A live list of alerts from one or more list requests (merged, newest first); each
// request keeps its ETag, so an unchanged list costs a 304 per poll.
function listView(title, paths, empty) {
  const list = h("ul", { class: "alerts", id: "alerts" });
  const stamp = h("span", { class: "muted small", id: "updated" });
  show(h("section", {}, h("div", { class: "row head" }, h("h1", {}, title), stamp), list));
  let shown = null; // the ETags of what the list shows
  live(async () => {
    const answers = await Promise.all(paths.map((p) => api(p)));
    stamp.textContent = "updated " + new Date().toLocaleTimeString();
    // Compare with what is shown, not with the last answers: a poll that failed half-way
    // may have taken new answers it never showed.
    const now = answers.map((a) => a.etag || Math.random()).join(" ");
    if (now === shown) return;
    shown = now;
    const items = answers.flatMap((a) => (a.body && a.body.items) || [])
      .sort((a, b) => String(b.raisedAt).localeCompare(String(a.raisedAt)));
    list.replaceChildren(...(items.length ? items.map((a) => alertCard(a)) : [h("li", { class: "empty" }, empty)]));
  });
}
// The open board: every status before "resolved" (the query API filters one status a
// request: GET /alerts?status=).
const BOARD_STATUSES = ["escalated", "routed", "raised", "acknowledged"];
const boardView = () => listView("Open alerts", BOARD_STATUSES.map((s) => `/alerts?status=${s}&limit=100`), "No open alerts.");
function inboxView(worker) {
  const id = worker || session().username;
  listView(`Inbox of ${id}`, [`/workers/${encodeURIComponent(id)}/inbox?limit=100`], "Nothing waiting.");
}

// ---------------------------------------------------------------- charts (inline SVG)
const W = 320, H = 120, PAD = 28;
function scale(d0, d1, r0, r1) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}
// Points [{t (ms), v}] from `from` to `to` (ms), with alert markers [{t, severity, label}].
function lineChart(points, from, to, markers, unit, span) {
  const vs = points.map((p) => p.v);
  let lo = Math.min(...vs), hi = Math.max(...vs);
  if (!vs.length) { lo = 0; hi = 1; }
  if (lo === hi) { lo -= 1; hi += 1; }
  const x = scale(from, to, PAD, W - 4), y = scale(lo, hi, H - 16, 6);
  const svg = h("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" },
    h("line", { x1: PAD, y1: H - 16, x2: W - 4, y2: H - 16, class: "axis" }),
    h("text", { x: PAD - 3, y: 12, class: "tick end" }, fmt(hi)),
    h("text", { x: PAD - 3, y: H - 16, class: "tick end" }, fmt(lo)),
    h("text", { x: PAD, y: H - 3, class: "tick" }, span + " ago"),
    h("text", { x: W - 4, y: H - 3, class: "tick end" }, "now"));
  for (const m of markers) {
    if (m.t < from || m.t > to) continue;
    svg.append(h("line", { x1: x(m.t), x2: x(m.t), y1: 4, y2: H - 16, class: `marker sev-${m.severity}` }, h("title", {}, m.label)));
  }
  if (points.length) {
    svg.append(h("polyline", { class: "line", points: points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ") }));
    if (points.length <= 60) for (const p of points) svg.append(h("circle", { cx: x(p.t), cy: y(p.v), r: 2, class: "dot" }, h("title", {}, `${fmt(p.v)} ${unit} at ${clock(new Date(p.t).toISOString())}`)));
  } else {
    svg.append(h("text", { x: W / 2, y: H / 2, class: "tick mid" }, "no readings"));
  }
  return svg;
}
function fmt(v) { return Math.abs(v) >= 100 ? Math.round(v) : Math.round(v * 10) / 10; }
// Stacked bars: rows [{label, parts: [{value, cls, name}]}].
function barChart(rows) {
  const max = Math.max(1, ...rows.map((r) => r.parts.reduce((s, p) => s + p.value, 0)));
  const bw = (W - PAD - 4) / Math.max(rows.length, 1);
  const y = scale(0, max, H - 16, 6);
  const svg = h("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" },
    h("line", { x1: PAD, y1: H - 16, x2: W - 4, y2: H - 16, class: "axis" }),
    h("text", { x: PAD - 3, y: 12, class: "tick end" }, max));
  rows.forEach((r, i) => {
    let base = 0;
    for (const p of r.parts) {
      if (!p.value) continue;
      const top = y(base + p.value);
      svg.append(h("rect", { x: PAD + i * bw + 1, width: Math.max(bw - 2, 1), y: top, height: y(base) - top, class: p.cls }, h("title", {}, `${r.label}: ${p.value} ${p.name}`)));
      base += p.value;
    }
    if (rows.length <= 8 || i % Math.ceil(rows.length / 7) === 0) svg.append(h("text", { x: PAD + i * bw + bw / 2, y: H - 3, class: "tick mid" }, r.label.slice(5)));
  });
  return svg;
}

// ---------------------------------------------------------------- patient
async function patientView(id) {
  stopPolling();
  const { body: p } = await api(`/patients/${encodeURIComponent(id)}`);
  const now = Date.now(), day = 86400000;
  const from7 = new Date(now - 7 * day).toISOString();
  let week = [];
  try { week = await all(`/patients/${encodeURIComponent(id)}/readings?from=${encodeURIComponent(from7)}&to=${encodeURIComponent(new Date(now).toISOString())}`, 20); }
  catch (err) { banner("7-day history unavailable: " + err.message, "error"); }
  const recent = p.readings24h || [];
  const markers = (p.openAlerts || []).map((a) => ({ t: Date.parse(a.raisedAt), severity: a.severity, label: `${a.severity}: ${a.description}` }));
  const metrics = [...new Set([...Object.keys(p.latest || {}), ...recent.map((r) => r.metric), ...week.map((r) => r.metric)])];
  const series = (rows, m) => rows.filter((r) => r.metric === m).map((r) => ({ t: Date.parse(r.at), v: r.value })).sort((a, b) => a.t - b.t);
  const tiles = metrics.map((m) => {
    const l = (p.latest || {})[m];
    return h("div", { class: "tile" }, h("div", { class: "muted small" }, METRICS[m] || m),
      h("div", { class: "big" }, l ? `${fmt(l.value)} ${l.unit}` : "—"), h("div", { class: "muted small" }, l ? ago(l.at) : ""));
  });
  const charts = metrics.map((m) => {
    const unit = ((p.latest || {})[m] || {}).unit || "";
    return h("section", { class: "card", "data-metric": m },
      h("h2", {}, `${METRICS[m] || m} ${unit ? "(" + unit + ")" : ""}`),
      h("div", { class: "charts" },
        h("figure", {}, lineChart(series(recent, m), now - day, now, markers, unit, "24 h"), h("figcaption", {}, "last 24 h")),
        h("figure", {}, lineChart(series(week, m), now - 7 * day, now, markers, unit, "7 days"), h("figcaption", {}, "last 7 days"))));
  });
  show(h("section", { id: "patient" },
    h("h1", {}, p.name || p.patientId, " ", h("span", { class: "muted" }, p.patientId)),
    h("p", {}, "Village ", h("a", { href: `#/village/${encodeURIComponent(p.village)}` }, p.village),
      p.worker ? [" · health worker ", h("a", { href: `#/inbox/${encodeURIComponent(p.worker.workerId)}` }, p.worker.name || p.worker.workerId)] : " · no worker assigned"),
    h("div", { class: "tiles" }, tiles),
    (p.openAlerts || []).length ? h("section", {}, h("h2", {}, "Open alerts"), h("ul", { class: "alerts" }, p.openAlerts.map((a) => alertCard(a)))) : null,
    charts.length ? charts : h("p", { class: "muted" }, "No readings in the last 7 days."),
    h("p", { class: "legend small" }, h("span", { class: "key line" }), " reading  ", h("span", { class: "key sev-critical" }), " critical alert  ", h("span", { class: "key sev-warning" }), " warning")));
}

// ---------------------------------------------------------------- village statistics
async function villageView(id) {
  stopPolling();
  if (!id) {
    const input = h("input", { id: "village-id", placeholder: "Village, e.g. Kisumu" });
    return show(h("form", { class: "card", onsubmit: (e) => { e.preventDefault(); location.hash = "#/village/" + encodeURIComponent(input.value.trim()); } },
      h("h1", {}, "Village statistics"), h("label", { for: "village-id" }, "Village"), input, h("button", { class: "primary", type: "submit" }, "Show")));
  }
  const to = new Date(), from = new Date(to - 7 * 86400000);
  const { body: s } = await api(`/villages/${encodeURIComponent(id)}/stats?from=${from.toISOString().slice(0, 10)}&to=${to.toISOString().slice(0, 10)}`);
  const days = s.days || [];
  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
  const rows = days.map((d) => ({ label: d.date, parts: [
    { value: (d.alertsBySeverity || {}).critical || 0, cls: "bar sev-critical", name: "critical" },
    { value: (d.alertsBySeverity || {}).warning || 0, cls: "bar sev-warning", name: "warning" },
    { value: (d.alertsBySeverity || {}).info || 0, cls: "bar sev-info", name: "info" }] }));
  const readings = days.map((d) => ({ label: d.date, parts: [{ value: d.readings || 0, cls: "bar readings", name: "readings" }] }));
  show(h("section", { id: "village" },
    h("h1", {}, "Village ", s.village || id),
    h("p", { class: "muted" }, `${s.from || ""} – ${s.to || ""}`),
    h("div", { class: "charts" },
      h("figure", { class: "card" }, barChart(rows), h("figcaption", {}, "alerts per day: ",
        h("span", { class: "key sev-critical" }), " critical ", h("span", { class: "key sev-warning" }), " warning ", h("span", { class: "key sev-info" }), " info")),
      h("figure", { class: "card" }, barChart(readings), h("figcaption", {}, "readings per day"))),
    h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Date", "Readings", "Alerts", "Emergencies", "Median ack"].map((t) => h("th", {}, t)))),
      h("tbody", {}, days.map((d) => h("tr", {},
        h("td", {}, d.date), h("td", {}, d.readings), h("td", { title: JSON.stringify(d.alertsByType || {}) }, sum(d.alertsBySeverity)),
        h("td", {}, d.emergencies), h("td", {}, d.medianAckSeconds == null ? "—" : Math.round(d.medianAckSeconds) + " s"))))))));
}

// ---------------------------------------------------------------- emergencies
function emergenciesView(status) {
  const st = status || "active";
  const list = h("ul", { class: "emergencies" });
  const pick = h("select", { id: "em-status", onchange: () => { location.hash = "#/emergencies/" + pick.value; } },
    ["active", "escalated", "completed", "all"].map((v) => h("option", { value: v, selected: v === st }, v)));
  show(h("section", {}, h("div", { class: "row head" }, h("h1", {}, "Emergencies"), pick), list));
  live(async () => {
    const { body, etag } = await api("/emergencies?limit=100" + (st === "all" ? "" : "&status=" + st));
    if (etag && etag === list.dataset.etag) return;
    list.dataset.etag = etag || "";
    const items = body.items || [];
    list.replaceChildren(...(items.length ? items.map((e) => h("li", { class: "card" },
      h("div", { class: "row" }, h("a", { href: "#/emergency/" + encodeURIComponent(e.emergencyId) }, e.emergencyId.slice(0, 8)),
        h("a", { href: "#/patient/" + encodeURIComponent(e.patientId) }, e.patientId), h("span", { class: "status" }, e.status), h("span", { class: "muted" }, e.stage)),
      timeline((e.steps || []).map((s) => ({ at: s.at, what: s.step, detail: s.outcome }))))) : [h("li", { class: "empty" }, "No emergencies.")]));
  });
}
function timeline(steps) {
  return h("ol", { class: "timeline" }, steps.map((s) => h("li", { class: "step " + (/fail|timed|unavailable|cancel/i.test(s.what + s.detail) ? "bad" : "") },
    h("span", { class: "when" }, new Date(s.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false })), h("strong", {}, s.what), s.detail ? h("span", { class: "muted" }, " " + s.detail) : null)));
}
async function emergencyView(id) {
  let shown = null;
  const load = async () => {
    const { body, etag } = await api(`/emergencies/${encodeURIComponent(id)}`);
    if (etag && etag === shown) return;
    shown = etag;
    const st = body.state || {};
    const started = st.started || {};
    show(h("section", { id: "emergency" },
      h("h1", {}, "Emergency ", h("span", { class: "muted" }, id.slice(0, 8))),
      h("p", {}, "Patient ", h("a", { href: "#/patient/" + encodeURIComponent(started.patientId || "") }, started.patientId || "?"),
        ` · ${started.village || ""} · status `, h("strong", { class: "status" }, st.status || "?"),
        st.workerId ? ` · worker ${st.workerId}` : ""),
      started.reason ? h("p", { class: "muted" }, started.reason) : null,
      timeline((body.history || []).map((e) => ({ at: e.timestamp, what: e.eventType, detail: (e.data && (e.data.workerId || e.data.reason || e.data.step)) || "" })))));
  };
  live(load);
}

// ---------------------------------------------------------------- router
async function route() {
  stopPolling();
  const s = session();
  const [, view, arg] = (location.hash || "#/board").split("/").map(decodeURIComponent);
  $("#nav").hidden = !s;
  $("#signout").hidden = !s;
  $("#who").textContent = s ? `${s.username} · ${s.role}` : "";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("on", a.dataset.view === view);
  if (!s || view === "signin") return signInView();
  try {
    switch (view) {
      case "inbox": return inboxView(arg);
      case "patient": return await patientView(arg);
      case "village": return await villageView(arg);
      case "emergencies": return emergenciesView(arg);
      case "emergency": return await emergencyView(arg);
      default: return boardView();
    }
  } catch (err) {
    show(h("p", { class: "error" }, "Could not load this view: " + err.message));
  }
}

window.addEventListener("hashchange", route);
$("#signout").addEventListener("click", signOut);
(async () => {
  if (CONFIG.auth === "cognito") await cognitoCallback();
  route();
})();

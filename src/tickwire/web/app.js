// The demo page, built on the browser SDK (/tickwire.js): log in as a demo user, toggle
// the streams, watch the tables move, see the connection's state, transport and round trip.
//
// The SDK keeps the connection (one WebSocket, else SSE, else polling), resumes every
// stream, drops duplicates and merges snapshots and deltas into `tw.local`; this file only
// renders it. Everything the server sends is written with textContent, never as HTML.

import { TickwireClient } from "./tickwire.js";

const LOG_LIMIT = 200;
const ACTIVITY_LIMIT = 30;
const ORDER_LIMIT = 50;

/** SPEC section 2 streams: name, path, whether a session is needed, opened on login. */
const STREAMS = [
  { name: "prices", path: () => "prices", auth: false, auto: true, note: "public, conflated ticks" },
  { name: "orders", path: () => "orders", auth: true, auto: true, note: "order:update, order:fill" },
  { name: "positions", path: () => "positions", auth: true, auto: true, note: "position:update, totalValue" },
  { name: "strategy", path: () => `strategies/${strategyId()}`, auth: true, auto: true, note: () => `strategies/${strategyId()}` },
  { name: "ai-decisions", path: () => "ai-decisions", auth: true, auto: true, note: "ai:decision" },
  { name: "alerts", path: () => "alerts", auth: true, auto: true, note: "alert:new, alert:ack" },
  { name: "agents", path: () => "agents", auth: false, auto: false, note: "public agent:status" },
  { name: "providers", path: () => "providers", auth: false, auto: false, note: "public provider:status (market data in)" },
  { name: "trading", path: () => "trading", auth: true, auto: false, note: "orders + positions + trades" },
];

const TRANSPORTS = [
  ["auto", "Auto (WebSocket, SSE, polling)"],
  ["ws", "WebSocket"],
  ["sse", "SSE"],
  ["poll", "Polling"],
];

const RULE_KINDS = {
  price_above: "price above",
  price_below: "price below",
  pct_move: "% move",
  volume_spike: "volume x avg",
  pnl_above: "P&L above",
  pnl_below: "P&L below",
};

const strategyId = () => page.user?.strategies?.[0] ?? "none";

const page = {
  user: null, // { userId, roles, strategies }
  agents: new Map(), // agentId -> agent:status data
  providers: new Map(), // upstream instance -> provider:status data
  handles: new Map(), // stream name -> the SDK subscription
  alerts: null, // the SDK's feed of unacknowledged alerts (tw.alerts()) while logged in
  paused: false,
};

const $ = (selector) => document.querySelector(selector);
const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const fmt = (value) => (typeof value === "number" && Number.isFinite(value) ? money.format(value) : "-");
const clock = (date = new Date()) => date.toTimeString().slice(0, 8) + "." + String(date.getMilliseconds()).padStart(3, "0");
/** Local time of an ISO timestamp from the server, "-" when there is none. */
const timeOf = (iso, ms = true) => {
  const date = typeof iso === "string" ? new Date(iso) : null;
  if (!date || Number.isNaN(date.getTime())) return "-";
  return ms ? clock(date) : clock(date).slice(0, 8);
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function emptyRow(tbody, colspan, text) {
  tbody.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan, text })));
}

// -- the client: renders follow its topics, at most once per animation frame -------------------------

const tw = new TickwireClient({ transport: new URLSearchParams(location.search).get("transport") || "auto" });
window.tickwire = tw; // for the console (and the browser tests)

tw.watch("prices", () => renderPrices());
tw.watch("positions", () => renderPositions());
tw.watch("orders", () => renderOrders());
tw.watch("status", () => renderStatus());
tw.watch("stats", () => renderStatus());

function openStream(name) {
  const def = STREAMS.find((s) => s.name === name);
  if ((def.auth && !page.user) || page.handles.has(name)) return;
  page.handles.set(name, tw.subscribe(def.path(), { onEvent: (e) => handleEvent(name, e) }));
  renderStatus();
}

function closeStream(name) {
  page.handles.get(name)?.release();
  page.handles.delete(name);
  renderStatus();
}

// -- connection status and streams ----------------------------------------------------------------------

function renderStatus() {
  const s = tw.status;
  const conn = $("#conn");
  conn.dataset.state = s.state;
  conn.dataset.color = s.color;
  conn.title = `${s.state} (${s.color})`;
  $("#conn-state").textContent = s.state;
  $("#conn-transport").textContent = s.transport ? s.transport + (s.protocol ? `/${s.protocol}` : "") : "-";
  $("#conn-rtt").textContent = s.rttMs === null ? "" : `RTT ${s.rttMs} ms`;
  const totals = { events: 0, dupes: 0, gaps: 0 };
  for (const stats of Object.values(s.streams)) for (const k of Object.keys(totals)) totals[k] += stats[k];
  const counts = $("#conn-counts");
  counts.textContent = `${totals.events} events, ${totals.dupes} dupes, ${totals.gaps} gaps`;
  counts.classList.toggle("warn", totals.gaps > 0);
  const fallback = $("#conn-fallback");
  fallback.hidden = !s.fallbackReason;
  fallback.textContent = s.fallbackReason ? `Polling (fallback): ${s.fallbackReason}. Streaming is retried every 30 s.` : "";
  $("#conn-error").textContent = s.lastError && !s.fallbackReason ? s.lastError : s.online ? "" : "offline";
  renderStreams(s);
}

const streamRows = new Map(); // name -> { pill, note, count, button }

function streamRow(def) {
  let row = streamRows.get(def.name);
  if (row) return row;
  row = {
    pill: el("span", { class: "pill" }),
    note: el("span", { class: "muted small stream-note" }),
    count: el("span", { class: "count muted small stream-stats" }),
    button: el("button", {
      type: "button",
      class: "toggle",
      onclick: () => (page.handles.has(def.name) ? closeStream(def.name) : openStream(def.name)),
    }),
  };
  $("#streams").append(
    el("li", { class: "stream", "data-stream": def.name }, el("strong", { class: "stream-name", text: def.name }), row.pill, row.note, el("span", { class: "stream-controls" }, row.count, row.button)),
  );
  streamRows.set(def.name, row);
  return row;
}

/** Updates the rows in place (the toggle a user is about to click is never replaced). */
function renderStreams(status) {
  for (const def of STREAMS) {
    const row = streamRow(def);
    const open = page.handles.has(def.name);
    const stats = open ? status.streams[page.handles.get(def.name).key] : null;
    const state = stats ? stats.state : def.auth && !page.user ? "login needed" : "off";
    const note = typeof def.note === "function" ? def.note() : def.note;
    row.pill.className = `pill ${state.replace(" ", "-")}`;
    row.pill.textContent = state;
    row.pill.title = stats?.detail || state;
    row.note.textContent = note;
    row.count.textContent = stats ? String(stats.events) + (stats.gaps ? ` (${stats.gaps} gaps)` : "") : "";
    row.count.title = stats
      ? `${stats.events} events, ${stats.dupes} duplicates dropped, ${stats.gaps} gaps; last id ${stats.lastEventId ?? "-"}`
      : "";
    row.button.textContent = open ? "Disconnect" : "Connect";
    row.button.classList.toggle("on", open);
    row.button.disabled = def.auth && !page.user;
  }
  $("#stream-note").textContent =
    "One WebSocket carries every stream; over SSE the user's streams share one /api/stream/me response.";
}

// -- events ------------------------------------------------------------------------------------------

function handleEvent(name, e) {
  logEvent(name, e);
  switch (e.type) {
    case "agent:status":
      page.agents.set(e.data.agentId, e.data);
      renderAgents();
      break;
    case "provider:status":
      for (const p of e.data.snapshot ? e.data.providers ?? [] : [e.data]) page.providers.set(p.instance ?? p.name, p);
      renderProviders();
      break;
    case "alert:ack":
      markAcked(e.data.alertId);
      break;
    case "alert:new":
      if (!e.cached) {
        addActivity(e.type, e.data);
        if (e.data.ruleId) loadRules(); // its counters moved
      }
      break;
    case "ai:decision":
    case "strategy:update":
    case "trade:new":
      if (!e.cached) addActivity(e.type, e.data);
      break;
    default:
      break;
  }
}

// -- prices ----------------------------------------------------------------------------------------

const priceRows = new Map(); // symbol -> { row, cells, last }

function renderPrices() {
  const tbody = $("#prices");
  const prices = tw.local.prices;
  if (prices.size === 0) return emptyRow(tbody, 6, "connect the prices stream");
  if (priceRows.size === 0) tbody.replaceChildren();
  for (const [symbol, p] of prices) {
    let entry = priceRows.get(symbol);
    if (!entry) {
      const cells = Array.from({ length: 6 }, (_, i) => el("td", { class: i ? "num" : "symbol" }));
      entry = { row: el("tr", {}, ...cells), cells, last: null };
      priceRows.set(symbol, entry);
      tbody.append(entry.row);
      addSymbolOption(symbol);
    }
    const [cSymbol, cPrice, cBid, cAsk, cDay, cTime] = entry.cells;
    cSymbol.textContent = symbol;
    if (entry.last !== null && p.price !== entry.last) {
      cPrice.classList.remove("up", "down");
      void cPrice.offsetWidth; // restart the flash animation
      cPrice.classList.add(p.price > entry.last ? "up" : "down");
    }
    entry.last = p.price;
    cPrice.textContent = fmt(p.price);
    cBid.textContent = fmt(p.bid);
    cAsk.textContent = fmt(p.ask);
    const day = typeof p.open === "number" && p.open ? (p.price / p.open - 1) * 100 : null;
    cDay.textContent = day === null ? "-" : `${day >= 0 ? "+" : ""}${day.toFixed(2)}%`;
    cDay.className = `num ${day > 0 ? "gain" : day < 0 ? "loss" : ""}`;
    cTime.textContent = timeOf(p.timestamp);
  }
}

function addSymbolOption(symbol) {
  const select = $("#ticket select[name=symbol]");
  if ([...select.options].some((o) => o.value === symbol)) return;
  select.append(el("option", { value: symbol, text: symbol }));
  $("#rule-symbols").append(el("option", { value: symbol }));
}

// -- positions, orders, agents -----------------------------------------------------------------------

function renderPositions() {
  const tbody = $("#positions");
  $("#total-value").textContent = page.user ? fmt(tw.local.totalValue ?? 0) : "-";
  if (tw.local.positions.size === 0) return emptyRow(tbody, 6, page.user ? "no open positions: place an order" : "log in to see positions");
  tbody.replaceChildren(
    ...[...tw.local.positions.values()].map((p) =>
      el(
        "tr",
        {},
        el("td", { class: "symbol", text: p.symbol }),
        el("td", { class: `num ${p.quantity < 0 ? "loss" : ""}`, text: String(p.quantity) }),
        el("td", { class: "num", text: fmt(p.entryPrice) }),
        el("td", { class: "num", text: fmt(p.currentPrice) }),
        el("td", { class: "num", text: fmt(p.value) }),
        el("td", { class: `num ${p.unrealizedPnL > 0 ? "gain" : p.unrealizedPnL < 0 ? "loss" : ""}`, text: fmt(p.unrealizedPnL) }),
      ),
    ),
  );
}

const OPEN_STATUSES = new Set(["new", "partially_filled"]);

function renderOrders() {
  const tbody = $("#orders");
  if (tw.local.orders.size === 0) return emptyRow(tbody, 8, page.user ? "no orders yet" : "log in to trade");
  const rows = [...tw.local.orders.values()].slice(-ORDER_LIMIT).reverse().map((o) => {
    const open = OPEN_STATUSES.has(o.status);
    const filled = o.filledQty ? `${o.filledQty} @ ${fmt(o.filledAvgPrice)}` : "-";
    const type = o.type === "limit" ? `limit ${fmt(o.limitPrice)}` : o.type ?? "-";
    return el(
      "tr",
      {},
      el("td", { class: "mono small", title: o.orderId, text: o.orderId }),
      el("td", { class: "symbol", text: o.symbol ?? "-" }),
      el("td", { class: o.side === "buy" ? "gain" : "loss", text: o.side ?? "-" }),
      el("td", { class: "num", text: String(o.qty ?? "-") }),
      el("td", { text: type }),
      el("td", {}, el("span", { class: `status ${o.status}`, title: o.reason ?? "", text: o.status ?? "-" })),
      el("td", { class: "num", text: filled }),
      el("td", {}, open ? el("button", { type: "button", class: "link danger", text: "cancel", onclick: () => cancelOrder(o.orderId) }) : ""),
    );
  });
  tbody.replaceChildren(...rows);
}

function renderAgents() {
  const tbody = $("#agents");
  if (page.agents.size === 0) return emptyRow(tbody, 3, page.handles.has("agents") ? "waiting for agent:status" : "connect the agents stream");
  tbody.replaceChildren(
    ...[...page.agents.values()].map((a) =>
      el(
        "tr",
        { title: `${a.agentId}: ${a.state}` },
        el("td", {}, el("span", { class: `dot ${a.state}` }), a.name ?? a.agentId),
        el("td", { class: "num", text: String(a.processed ?? "-") }),
        el("td", { class: "num", text: timeOf(a.lastRunAt, false) }),
      ),
    ),
  );
}

function renderProviders() {
  const tbody = $("#providers");
  if (page.providers.size === 0) return emptyRow(tbody, 3, page.handles.has("providers") ? "no upstream configured" : "connect the providers stream");
  tbody.replaceChildren(
    ...[...page.providers.values()].map((p) =>
      el(
        "tr",
        { title: `${p.kind}: ${p.reason ?? ""}` },
        el("td", {}, el("span", { class: `dot ${p.state}` }), p.instance ?? p.name),
        el("td", { text: p.state }),
        el("td", { class: "num", text: String(p.symbolCount ?? p.symbols?.length ?? "-") }),
      ),
    ),
  );
}

// -- activity feed and event log ---------------------------------------------------------------------

function describe(type, d) {
  const pct = (x) => `${Math.round(x * 100)}%`;
  switch (type) {
    case "alert:new":
      return { tag: d.severity ?? d.level ?? "alert", text: d.message };
    case "ai:decision":
      return { tag: "ai", text: `${d.action.toUpperCase()} ${d.symbol} (${pct(d.confidence)}): ${d.reasoning}` };
    case "strategy:update":
      return d.action
        ? { tag: "signal", text: `${d.strategyId}: ${d.action.toUpperCase()} ${d.symbol} (${pct(d.confidence)}): ${d.reasoning}` }
        : { tag: "strategy", text: `${d.strategyId} ${d.status}${d.name ? ` (${d.name})` : ""}` };
    case "trade:new":
      return { tag: "trade", text: `${d.side} ${d.qty} ${d.symbol} @ ${fmt(d.price)} (${d.orderId})` };
    default:
      return { tag: type, text: JSON.stringify(d) };
  }
}

function addActivity(type, data) {
  const list = $("#activity");
  list.querySelector(".empty")?.remove();
  const { tag, text } = describe(type, data);
  const at = data.timestamp ? timeOf(data.timestamp) : clock();
  const ack =
    type === "alert:new" && page.user && data.alertId
      ? el("button", { type: "button", class: "link ack", text: "ack", onclick: () => acknowledge(data.alertId) })
      : "";
  const item = el("li", {}, el("span", { class: "muted small mono", title: data.timestamp ?? "", text: at }), el("span", { class: `tag ${tag}`, text: tag }), el("span", { text }), ack);
  if (type === "alert:new" && data.alertId) item.dataset.alertId = data.alertId;
  list.prepend(item);
  while (list.children.length > ACTIVITY_LIMIT) list.lastElementChild.remove();
}

// -- alerts and rules (SPEC 13): the SDK's feed and the rules API -----------------------------------

/** The unacknowledged alerts: the history, then the alerts stream (acks of other tabs too). */
function renderAlerts() {
  const list = $("#alerts");
  const feed = page.alerts;
  const count = $("#alerts-count");
  count.textContent = feed && !feed.loading ? String(feed.alerts.length) : "-";
  count.classList.toggle("live", Boolean(feed && feed.alerts.length));
  if (!feed || feed.error || feed.alerts.length === 0) {
    const text = !feed ? "log in to see your alerts" : feed.error ? `alerts unavailable: ${feed.error.message}` : feed.loading ? "loading..." : "no unacknowledged alerts";
    return list.replaceChildren(el("li", { class: "empty", text }));
  }
  list.replaceChildren(
    ...feed.alerts.map((a) => {
      const tag = a.severity ?? a.level ?? "info";
      return el(
        "li",
        { "data-alert-id": a.alertId },
        el("span", { class: "muted small mono", title: a.timestamp ?? "", text: timeOf(a.timestamp) }),
        el("span", { class: `tag ${tag}`, text: tag }),
        el("span", { title: a.alertId, text: a.message ?? a.alertId }),
        el("button", { type: "button", class: "link ack", text: "acknowledge", onclick: () => acknowledge(a.alertId) }),
      );
    }),
  );
}

async function acknowledge(alertId) {
  try {
    await (page.alerts ? page.alerts.ack(alertId) : tw.ackAlert(alertId));
  } catch (err) {
    ruleStatus(`acknowledging ${alertId}: ${err.message}`, true);
  }
}

async function loadRules() {
  const tbody = $("#rules");
  if (!page.user) return emptyRow(tbody, 5, "log in to see your rules");
  let rules;
  try {
    rules = await tw.alertRules();
  } catch (err) {
    return emptyRow(tbody, 5, `rules unavailable: ${err.message}`);
  }
  if (!page.user) return undefined;
  if (rules.length === 0) return emptyRow(tbody, 5, "no rules: add one below");
  tbody.replaceChildren(
    ...rules.map((r) =>
      el(
        "tr",
        { "data-rule-id": r.ruleId, class: r.enabled ? "" : "disabled", title: `${r.ruleId}: ${r.message ?? ""} (${r.suppressed} held back by the throttle)` },
        el("td", { text: (RULE_KINDS[r.kind] ?? r.kind) + (r.windowS ? ` ${r.windowS} s` : "") }),
        el("td", { class: "symbol", text: r.symbol }),
        el("td", { class: "num", text: String(r.threshold) }),
        el("td", { class: "num fired", text: String(r.fired) }),
        el("td", {}, el("button", { type: "button", class: "link danger delete", text: "delete", onclick: () => deleteRule(r.ruleId) })),
      ),
    ),
  );
  return undefined;
}

const ruleStatus = (text, error = false) => statusLine("#rule-status", text, error);

async function addRule(event) {
  event.preventDefault();
  const form = event.target;
  const rule = { kind: form.kind.value, symbol: form.symbol.value.trim().toUpperCase(), threshold: Number(form.threshold.value) };
  if (rule.kind === "pct_move" || rule.kind === "volume_spike") rule.windowS = 60;
  try {
    const made = await tw.createAlertRule(rule);
    ruleStatus(`${made.ruleId}: ${RULE_KINDS[made.kind]} ${made.symbol} ${made.threshold} added`);
    form.threshold.value = "";
  } catch (err) {
    ruleStatus(err.message, true); // a 400 names the field
  }
  await loadRules();
}

async function deleteRule(ruleId) {
  try {
    await tw.deleteAlertRule(ruleId);
    ruleStatus(`${ruleId} deleted`);
  } catch (err) {
    ruleStatus(err.message, true);
  }
  await loadRules();
}

/** `alert:ack` (from this page or another): the alert is shown as acknowledged. */
function markAcked(alertId) {
  for (const item of $("#activity").querySelectorAll("li[data-alert-id]")) {
    if (item.dataset.alertId !== alertId || item.classList.contains("acked")) continue;
    item.classList.add("acked");
    item.querySelector(".ack")?.remove();
    item.append(el("span", { class: "acked-mark", text: "acked" }));
  }
}

const pendingLog = [];
let logScheduled = false;
function logEvent(stream, { type, id, data }) {
  if (page.paused || !data) return;
  if (type === "price:update" && !data.initializing && !$("#show-ticks").checked) return;
  if (type === "position:update" && data.change === "marked" && !$("#show-ticks").checked) return;
  pendingLog.push({ time: clock(), stream, type, id, json: JSON.stringify(data) });
  if (pendingLog.length > LOG_LIMIT) pendingLog.splice(0, pendingLog.length - LOG_LIMIT);
  if (logScheduled) return;
  logScheduled = true;
  requestAnimationFrame(() => {
    logScheduled = false;
    renderLog();
  });
}

function renderLog() {
  const tbody = $("#log");
  const rows = pendingLog.splice(0).reverse().map((e) =>
    el(
      "tr",
      {},
      el("td", { class: "mono small", text: e.time }),
      el("td", { class: "small", text: e.stream }),
      el("td", {}, el("span", { class: `etype ${e.type.split(":")[0]}`, text: e.type })),
      el("td", { class: "mono small id", title: e.id ?? "", text: e.id ?? "" }),
      el("td", { class: "mono small json", title: e.json, text: e.json }),
    ),
  );
  tbody.prepend(...rows);
  while (tbody.children.length > LOG_LIMIT) tbody.lastElementChild.remove();
}


// -- session ---------------------------------------------------------------------------------------

// Requests that change state (login, logout, orders) always declare JSON: the server answers
// 415 to anything else and takes the session cookie only from this origin (the browser sends
// Origin). The cookie is HttpOnly: the page never holds the token, streams use the cookie too.
async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: method === "GET" ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

function renderUser() {
  const who = $("#who");
  who.textContent = page.user ? `${page.user.userId}${page.user.roles.length ? ` (${page.user.roles.join(", ")})` : ""}` : "not logged in";
  who.classList.toggle("active", Boolean(page.user));
  $("#logout").hidden = !page.user;
  for (const button of document.querySelectorAll(".user-button")) {
    button.classList.toggle("current", page.user?.userId === button.dataset.user);
  }
  $("#ticket button[type=submit]").disabled = !page.user;
  $("#rule-form button[type=submit]").disabled = !page.user;
}

/** Who is logged in changed (the session cookie): the SDK restarts the user's streams, public ones go on. */
function setUser(user) {
  const changed = (user?.userId ?? null) !== (page.user?.userId ?? null);
  for (const def of STREAMS) if (def.auth && (changed || !user)) closeStream(def.name);
  page.user = user;
  if (changed) {
    page.alerts?.release();
    page.alerts = null;
    user ? tw.login() : tw.logout();
    if (user) {
      page.alerts = tw.alerts({ limit: 50 });
      page.alerts.onChange(renderAlerts);
    }
    renderAlerts();
    loadRules();
  }
  if (user) for (const def of STREAMS) if (def.auth && def.auto) openStream(def.name);
  renderUser();
  renderStatus();
  renderPositions();
  renderOrders();
}

async function login(userId) {
  const { ok, data } = await api("POST", "/api/login", { user: userId });
  if (!ok) return ticketStatus(data.message ?? "login failed", true);
  setUser(data);
}

async function logout() {
  await api("POST", "/api/logout");
  setUser(null);
}

// -- order ticket ----------------------------------------------------------------------------------

/** A form's status line: what happened, in red when it failed. */
function statusLine(selector, text, error) {
  const status = $(selector);
  status.textContent = text;
  status.classList.toggle("error", error);
}

const ticketStatus = (text, error = false) => statusLine("#ticket-status", text, error);

async function placeOrder(event) {
  event.preventDefault();
  const form = event.target;
  const order = {
    symbol: form.symbol.value,
    side: form.side.value,
    qty: Number(form.qty.value),
    type: form.type.value,
  };
  if (order.type === "limit") order.limitPrice = Number(form.limitPrice.value);
  const { ok, data } = await api("POST", "/api/orders", order);
  if (ok) ticketStatus(`${data.orderId}: ${data.side} ${data.qty} ${data.symbol} ${data.type} accepted`);
  else ticketStatus(data.message ?? "order failed", true);
}

async function cancelOrder(orderId) {
  const { ok, data } = await api("DELETE", `/api/orders/${encodeURIComponent(orderId)}`);
  ticketStatus(ok ? `${orderId} canceled` : data.message ?? "cancel failed", !ok);
}

function syncLimitField() {
  const form = $("#ticket");
  const limit = form.type.value === "limit";
  form.limitPrice.disabled = !limit;
  if (limit && !form.limitPrice.value) {
    const price = tw.local.prices.get(form.symbol.value)?.price;
    if (price) form.limitPrice.value = price.toFixed(2);
  }
  if (!limit) form.limitPrice.value = "";
}

// -- start -----------------------------------------------------------------------------------------

function setup() {
  for (const button of document.querySelectorAll(".user-button")) {
    button.addEventListener("click", () => login(button.dataset.user));
  }
  $("#logout").addEventListener("click", logout);
  $("#ticket").addEventListener("submit", placeOrder);
  $("#rule-form").addEventListener("submit", addRule);
  $("#ticket select[name=type]").addEventListener("change", syncLimitField);
  $("#ticket select[name=symbol]").addEventListener("change", () => {
    $("#ticket").limitPrice.value = "";
    syncLimitField();
  });
  $("#pause").addEventListener("click", (e) => {
    page.paused = !page.paused;
    e.target.textContent = page.paused ? "resume" : "pause";
  });
  $("#clear").addEventListener("click", () => $("#log").replaceChildren());
  $("#reconnect").addEventListener("click", () => tw.reconnect());
  const transport = $("#transport");
  for (const [value, text] of TRANSPORTS) transport.append(el("option", { value, text }));
  transport.value = tw.options.transport;
  transport.addEventListener("change", () => tw.setTransport(transport.value));
}

async function start() {
  setup();
  for (const def of STREAMS) if (!def.auth && def.auto) openStream(def.name);
  const wanted = new URLSearchParams(location.search).get("user");
  if (wanted) {
    await login(wanted);
  } else {
    const { ok, data } = await api("GET", "/api/me");
    setUser(ok ? data : null);
  }
  renderStatus();
}

start();

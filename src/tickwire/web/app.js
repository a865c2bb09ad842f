// The demo page: log in as a demo user, toggle the streams, watch the tables move.
//
// Stream plumbing lives in tickwire.js; this file only keeps the page's state
// (prices, positions, orders, agents) from the events it is handed and renders it.
// Everything the server sends is written with textContent, never as HTML.

import { StreamClient } from "./tickwire.js";

const LOG_LIMIT = 200;
const ACTIVITY_LIMIT = 30;
const ORDER_LIMIT = 50;

/**
 * SPEC section 2 streams: name, path, whether a session is needed, opened on login.
 * Five open by default: over SSE each stream is a browser connection, and `trading`
 * already carries what `orders` and `positions` show.
 */
const STREAMS = [
  { name: "prices", path: () => "prices", auth: false, auto: true, note: "public, conflated ticks" },
  { name: "trading", path: () => "trading", auth: true, auto: true, note: "orders + positions + trades" },
  { name: "strategy", path: () => `strategies/${encodeURIComponent(strategyId())}`, auth: true, auto: true, note: () => `strategies/${strategyId()}` },
  { name: "ai-decisions", path: () => "ai-decisions", auth: true, auto: true, note: "ai:decision" },
  { name: "alerts", path: () => "alerts", auth: true, auto: true, note: "alert:new" },
  { name: "agents", path: () => "agents", auth: false, auto: false, note: "public agent:status" },
  { name: "orders", path: () => "orders", auth: true, auto: false, note: "order:update, order:fill" },
  { name: "positions", path: () => "positions", auth: true, auto: false, note: "position:update, totalValue" },
];

const strategyId = () => page.user?.strategies?.[0] ?? "none";

const page = {
  user: null, // { userId, roles, strategies }
  prices: new Map(), // symbol -> price:update data
  positions: new Map(), // symbol -> position:update data
  totalValue: null,
  orders: new Map(), // orderId -> merged order:update / order:fill data
  agents: new Map(), // agentId -> agent:status data
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

// -- render scheduling: many events per frame, one render per frame ---------------------------------

const dirty = new Set();
function schedule(part) {
  if (dirty.size === 0) requestAnimationFrame(flush);
  dirty.add(part);
}
function flush() {
  const parts = [...dirty];
  dirty.clear();
  for (const part of parts) RENDER[part]();
}

// -- streams ---------------------------------------------------------------------------------------

const client = new StreamClient({
  onEvent: handleEvent,
  onState: () => {
    schedule("streams");
    schedule("agents");
  },
});

function streamDef(name) {
  return STREAMS.find((s) => s.name === name);
}

function openStream(name) {
  const def = streamDef(name);
  if (def.auth && !page.user) return;
  client.open(name, def.path());
}

const streamRows = new Map(); // name -> { pill, note, count, button }

function streamRow(def) {
  let row = streamRows.get(def.name);
  if (row) return row;
  row = {
    pill: el("span", { class: "pill" }),
    note: el("span", { class: "muted small stream-note" }),
    count: el("span", { class: "count muted small" }),
    button: el("button", {
      type: "button",
      class: "toggle",
      onclick: () => (client.isOpen(def.name) ? client.close(def.name) : openStream(def.name)),
    }),
  };
  $("#streams").append(
    el(
      "li",
      { class: "stream" },
      el("strong", { class: "stream-name", text: def.name }),
      row.pill,
      row.note,
      el("span", { class: "stream-controls" }, row.count, row.button),
    ),
  );
  streamRows.set(def.name, row);
  return row;
}

/** Updates the rows in place (the toggle a user is about to click is never replaced). */
function renderStreams() {
  for (const def of STREAMS) {
    const row = streamRow(def);
    const info = client.info(def.name);
    const open = client.isOpen(def.name);
    const needsLogin = def.auth && !page.user;
    const state = needsLogin && !open ? "login needed" : info.state;
    const note = typeof def.note === "function" ? def.note() : def.note;
    row.pill.className = `pill ${state.replace(" ", "-")}`;
    row.pill.textContent = state;
    row.pill.title = info.detail || state;
    row.note.textContent = note;
    row.note.title = `${client.base}/${def.path()}: ${note}`;
    row.count.textContent = String(info.count);
    row.count.title = info.lastId ? `events received; last id ${info.lastId}` : "events received";
    row.button.textContent = open ? "Disconnect" : "Connect";
    row.button.classList.toggle("on", open);
    row.button.disabled = needsLogin;
  }
  const transport = client.transports.find((t) => t.name === client.transport);
  $("#stream-note").textContent =
    `${client.openCount} of ${transport.maxStreams} open. ${transport.note}`;
}

// -- events ----------------------------------------------------------------------------------------

function handleEvent(stream, type, id, data) {
  logEvent(stream, type, id, data);
  schedule("streams"); // event counts
  switch (type) {
    case "price:update":
      for (const price of data.initializing ? data.prices : [data]) page.prices.set(price.symbol, price);
      schedule("prices");
      break;
    case "order:update":
      if (data.snapshot) {
        page.orders = new Map(data.orders.map((o) => [o.orderId, o]));
      } else {
        mergeOrder(data);
      }
      schedule("orders");
      break;
    case "order:fill":
      mergeOrder({ orderId: data.orderId, filledQty: data.filledQty, filledAvgPrice: data.filledAvgPrice, status: data.status });
      schedule("orders");
      break;
    case "position:update":
      if (data.snapshot) {
        page.positions = new Map(data.positions.map((p) => [p.symbol, p]));
      } else if (data.quantity === 0) {
        page.positions.delete(data.symbol);
      } else {
        page.positions.set(data.symbol, { ...page.positions.get(data.symbol), ...data });
      }
      if (typeof data.totalValue === "number") page.totalValue = data.totalValue;
      schedule("positions");
      break;
    case "agent:status":
      page.agents.set(data.agentId, data);
      schedule("agents");
      break;
    case "alert:new":
    case "ai:decision":
    case "strategy:update":
    case "trade:new":
      addActivity(type, data);
      break;
    default:
      break;
  }
}

function mergeOrder(data) {
  const previous = page.orders.get(data.orderId);
  page.orders.delete(data.orderId); // re-insert: newest activity last
  page.orders.set(data.orderId, { ...previous, ...data });
  while (page.orders.size > ORDER_LIMIT) page.orders.delete(page.orders.keys().next().value);
}

// -- prices ----------------------------------------------------------------------------------------

const priceRows = new Map(); // symbol -> { row, cells, last }

function renderPrices() {
  const tbody = $("#prices");
  if (page.prices.size === 0) return emptyRow(tbody, 6, "connect the prices stream");
  if (priceRows.size === 0) tbody.replaceChildren();
  for (const [symbol, p] of page.prices) {
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
}

// -- positions, orders, agents -----------------------------------------------------------------------

function renderPositions() {
  const tbody = $("#positions");
  $("#total-value").textContent = page.user ? fmt(page.totalValue ?? 0) : "-";
  if (page.positions.size === 0) return emptyRow(tbody, 6, page.user ? "no open positions: place an order" : "log in to see positions");
  tbody.replaceChildren(
    ...[...page.positions.values()].map((p) =>
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
  if (page.orders.size === 0) return emptyRow(tbody, 8, page.user ? "no orders yet" : "log in to trade");
  const rows = [...page.orders.values()].reverse().map((o) => {
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
  if (page.agents.size === 0) return emptyRow(tbody, 3, client.isOpen("agents") ? "waiting for agent:status" : "connect the agents stream");
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

// -- activity feed and event log ---------------------------------------------------------------------

function describe(type, d) {
  const pct = (x) => `${Math.round(x * 100)}%`;
  switch (type) {
    case "alert:new":
      return { tag: d.level, text: d.message };
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
  list.prepend(
    el("li", {}, el("span", { class: "muted small mono", title: data.timestamp ?? "", text: at }), el("span", { class: `tag ${tag}`, text: tag }), el("span", { text })),
  );
  while (list.children.length > ACTIVITY_LIMIT) list.lastElementChild.remove();
}

const pendingLog = [];
function logEvent(stream, type, id, data) {
  if (page.paused) return;
  if (type === "price:update" && !data.initializing && !$("#show-ticks").checked) return;
  if (type === "position:update" && data.change === "marked" && !$("#show-ticks").checked) return;
  pendingLog.push({ time: clock(), stream, type, id, json: JSON.stringify(data) });
  if (pendingLog.length > LOG_LIMIT) pendingLog.splice(0, pendingLog.length - LOG_LIMIT);
  schedule("log");
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

const RENDER = {
  streams: renderStreams,
  prices: renderPrices,
  positions: renderPositions,
  orders: renderOrders,
  agents: renderAgents,
  log: renderLog,
  user: renderUser,
};

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
}

function resetUserState() {
  for (const def of STREAMS) if (def.auth) client.close(def.name);
  page.positions.clear();
  page.orders.clear();
  page.totalValue = null;
  for (const part of ["positions", "orders", "streams", "user"]) schedule(part);
}

function setUser(user) {
  resetUserState();
  page.user = user;
  if (user) for (const def of STREAMS) if (def.auth && def.auto) openStream(def.name);
  schedule("user");
  schedule("streams");
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

function ticketStatus(text, error = false) {
  const status = $("#ticket-status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

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
    const price = page.prices.get(form.symbol.value)?.price;
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
  const transport = $("#transport");
  for (const t of client.transports) transport.append(el("option", { value: t.name, text: t.label }));
  transport.addEventListener("change", () => client.setTransport(transport.value));
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
  schedule("streams");
}

start();

// tickwire.js 0.1.0 - tickwire browser SDK (MIT). Built from js/src/index.js; do not edit.

// src/dedup.js
var RecentIds = class {
  /** @param {number} limit how many ids are remembered */
  constructor(limit = 1e3) {
    this.limit = Math.max(1, limit);
    this.ids = /* @__PURE__ */ new Set();
  }
  /** Remember `id`; false when it was already there (a duplicate). */
  add(id) {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.limit) this.ids.delete(this.ids.values().next().value);
    return true;
  }
  has(id) {
    return this.ids.has(id);
  }
  get size() {
    return this.ids.size;
  }
};

// src/alerts.js
var ACKED_REMEMBERED = 1e3;
var AlertFeed = class {
  /**
   * @param {import("./client.js").TickwireClient} client
   * @param {{limit?: number}} [options] how many alerts are kept (newest first; default 100, at most 1000)
   */
  constructor(client, { limit = 100 } = {}) {
    this.client = client;
    this.limit = Math.max(1, Math.min(1e3, limit));
    this.alerts = [];
    this.loading = true;
    this.error = null;
    this.byId = /* @__PURE__ */ new Map();
    this.acked = new RecentIds(ACKED_REMEMBERED);
    this.listeners = /* @__PURE__ */ new Set();
    this.loads = 0;
    this.closed = false;
    this.handle = client.subscribe("alerts", { onEvent: (e) => this.onEvent(e) });
    this.unwatch = client.onUserChange(() => this.userChanged());
    this.reload();
  }
  /** Call `listener()` after every change of `alerts`, `loading` or `error`; returns its remover. */
  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  /** Acknowledge: the server records it and tells every connection of the user (`alert:ack`). */
  async ack(alertId) {
    const answer = await this.client.ackAlert(alertId);
    this.remove(alertId);
    return answer;
  }
  /** Read the unacknowledged alerts from the history again. */
  async reload() {
    const load = ++this.loads;
    const before = new Set(this.byId.keys());
    try {
      const answer = await this.client.alertHistory({ unacked: true, limit: this.limit });
      if (load !== this.loads || this.closed) return;
      const fresh = /* @__PURE__ */ new Map();
      let newest = -Infinity;
      for (const alert of answer.alerts ?? []) {
        newest = Math.max(newest, timeOf(alert));
        if (!this.acked.has(alert.alertId)) fresh.set(alert.alertId, alert);
      }
      for (const [id, alert] of this.byId) {
        if (!fresh.has(id) && (!before.has(id) || timeOf(alert) > newest)) fresh.set(id, alert);
      }
      this.byId = fresh;
      this.error = null;
    } catch (err) {
      if (load !== this.loads || this.closed) return;
      this.error = err;
    }
    this.loading = false;
    this.changed();
  }
  /** Stop: the stream subscription is released; no more changes. */
  release() {
    if (this.closed) return;
    this.closed = true;
    this.handle.release();
    this.unwatch();
    this.listeners.clear();
  }
  /** Another user (or none): the list was theirs. */
  userChanged() {
    this.byId.clear();
    this.acked = new RecentIds(ACKED_REMEMBERED);
    this.loading = true;
    this.changed();
    this.reload();
  }
  onEvent(event) {
    if (event.reset) {
      this.reload();
      return;
    }
    const alertId = event.data?.alertId;
    if (typeof alertId !== "string") return;
    if (event.type === "alert:ack") {
      this.remove(alertId);
    } else if (event.type === "alert:new" && !this.acked.has(alertId) && !this.byId.has(alertId)) {
      this.byId.set(alertId, event.data);
      this.changed();
    }
  }
  remove(alertId) {
    this.acked.add(alertId);
    if (this.byId.delete(alertId)) this.changed();
  }
  changed() {
    if (this.closed) return;
    const list = [...this.byId.values()];
    list.sort((a, b) => timeOf(b) - timeOf(a));
    if (list.length > this.limit) {
      for (const old of list.splice(this.limit)) this.byId.delete(old.alertId);
    }
    this.alerts = list;
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch (err) {
        this.client.env.console?.error("tickwire: an alerts listener failed", err);
      }
    }
  }
};
function timeOf(alert) {
  const t = Date.parse(alert.timestamp ?? "");
  return Number.isNaN(t) ? 0 : t;
}

// src/api.js
var TickwireApiError = class extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.name = "TickwireApiError";
    this.status = status;
    this.body = body;
  }
};
async function apiRequest(client, method, path, body) {
  const { auth, env, options } = client;
  if (typeof env.fetch !== "function") throw new TickwireApiError(0, "tickwire: no fetch in this environment");
  const send = async (token) => {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    try {
      return await env.fetch(options.baseUrl + path, {
        method,
        headers,
        body: body === void 0 ? void 0 : JSON.stringify(body),
        credentials: options.credentials,
        cache: "no-store"
      });
    } catch (err) {
      throw new TickwireApiError(0, `network error: ${err?.message ?? err}`);
    }
  };
  let response = await send(auth.usesToken ? await auth.ensure() : null);
  if (response.status === 401 && auth.getToken) {
    const fresh = await auth.renewed();
    if (fresh) response = await send(fresh);
  }
  if (response.status === 204) return null;
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (response.status >= 200 && response.status < 300) return answer;
  const message = answer && typeof answer.message === "string" ? answer.message : `HTTP ${response.status}`;
  throw new TickwireApiError(response.status, message, answer);
}
var alertsPath = (...parts) => ["/api/alerts", ...parts.map((p) => encodeURIComponent(p))].join("/");

// src/backoff.js
var DEFAULT_BACKOFF = Object.freeze({ initialMs: 1e3, maxMs: 16e3, jitter: 0.2 });
function backoffDelay(attempt, options = {}, random = Math.random) {
  const { initialMs, maxMs, jitter } = { ...DEFAULT_BACKOFF, ...options };
  const base = Math.min(maxMs, initialMs * 2 ** Math.max(0, Math.min(attempt, 30)));
  return Math.round(base * (1 - jitter + 2 * jitter * random()));
}

// src/auth.js
var TokenManager = class {
  /**
   * @param {import("../types/tickwire").Env} env
   * @param {{token?: string|null, getToken?: (() => string|null|Promise<string|null>)|null, refreshMarginMs?: number}} options
   * @param {(token: string|null) => void} onRefreshed called when a scheduled refresh got a new token
   */
  constructor(env, { token = null, getToken = null, refreshMarginMs = 3e4 }, onRefreshed = () => {
  }) {
    this.env = env;
    this.getToken = getToken;
    this.refreshMarginMs = refreshMarginMs;
    this.onRefreshed = onRefreshed;
    this.token = token || null;
    this.anonymous = false;
    this.timer = null;
    this.pending = null;
    this.schedule();
  }
  /** Whether credentials travel as a token (else the cookie, if any). */
  get usesToken() {
    return Boolean(this.token || this.getToken);
  }
  /** The user id of the current token (its `sub`), or null. */
  get user() {
    return claims(this.token)?.sub ?? null;
  }
  /** Whether `token` is present and not about to expire. */
  valid(token = this.token) {
    if (!token) return false;
    const exp = claims(token)?.exp;
    return typeof exp !== "number" || exp * 1e3 - 5e3 > this.env.now();
  }
  /** A valid token (asking getToken when there is none), or null for cookie / anonymous. */
  async ensure() {
    if (this.anonymous) return null;
    if (this.valid()) return this.token;
    if (!this.getToken) return this.token;
    return (await this.refresh()).token;
  }
  /** Ask getToken for a new token (one call at a time); whether it changed. */
  async refresh() {
    if (!this.getToken || this.anonymous) return { token: this.token, changed: false };
    if (!this.pending) {
      this.pending = (async () => {
        const before = this.token;
        try {
          this.token = await this.getToken() || null;
        } catch (err) {
          this.env.console?.warn("tickwire: getToken failed", err);
          throw err;
        } finally {
          this.pending = null;
        }
        this.schedule();
        return { token: this.token, changed: this.token !== before };
      })();
    }
    return this.pending;
  }
  /** A new token from getToken, or null (no getToken, logged out, or it failed). */
  async renewed() {
    if (!this.getToken || this.anonymous) return null;
    try {
      return (await this.refresh()).token;
    } catch {
      return null;
    }
  }
  /** Use `token` from now on (login); null clears it. */
  set(token) {
    this.token = token || null;
    this.anonymous = false;
    this.schedule();
  }
  /** No user until the next `set` / login. */
  logout() {
    this.token = null;
    this.anonymous = true;
    this.schedule();
  }
  /** Refresh shortly before `exp`, so open connections get the new token in time. */
  schedule() {
    this.env.clearTimeout(this.timer);
    this.timer = null;
    const exp = claims(this.token)?.exp;
    if (!this.getToken || typeof exp !== "number") return;
    const delay = Math.max(1e3, exp * 1e3 - this.refreshMarginMs - this.env.now());
    this.timer = this.env.setTimeout(async () => {
      this.timer = null;
      try {
        const { token, changed } = await this.refresh();
        if (changed) this.onRefreshed(token);
      } catch {
        this.timer = this.env.setTimeout(() => this.schedule(), 5e3);
      }
    }, Math.min(delay, 2 ** 31 - 1));
  }
  close() {
    this.env.clearTimeout(this.timer);
    this.timer = null;
  }
};
function claims(token) {
  if (typeof token !== "string") return null;
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const text = decodeURIComponent(
      Array.from(atob(b64), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join("")
    );
    const value = JSON.parse(text);
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

// src/env.js
function makeEnv(overrides = {}) {
  const g = globalThis;
  const env = {
    now: () => Date.now(),
    setTimeout: (fn, ms) => g.setTimeout(fn, ms),
    clearTimeout: (handle) => g.clearTimeout(handle),
    random: () => Math.random(),
    WebSocket: g.WebSocket,
    EventSource: g.EventSource,
    fetch: typeof g.fetch === "function" ? g.fetch.bind(g) : void 0,
    AbortController: g.AbortController,
    location: g.location,
    /** Where `online` / `offline` are announced (window), or null. */
    window: typeof g.addEventListener === "function" && g.window ? g.window : null,
    /** Where `visibilitychange` is announced (document), or null. */
    document: g.document ?? null,
    navigator: g.navigator ?? null,
    requestAnimationFrame: null,
    console: g.console,
    ...overrides
  };
  if (!env.requestAnimationFrame) {
    env.requestAnimationFrame = typeof g.requestAnimationFrame === "function" && !overrides.setTimeout ? (fn) => g.requestAnimationFrame(fn) : (fn) => env.setTimeout(fn, 16);
  }
  return env;
}
function isOffline(env) {
  return env.navigator?.onLine === false;
}
function isHidden(env) {
  return env.document?.visibilityState === "hidden";
}

// src/streams.js
var PUBLIC_STREAMS = /* @__PURE__ */ new Set(["prices", "agents", "providers"]);
var CONTROL_TYPES = /* @__PURE__ */ new Set(["connected", "stream:reset", "connection:limit", "auth:expired", "test"]);
var EVENT_TYPES = [
  ...CONTROL_TYPES,
  "order:update",
  "order:fill",
  "position:update",
  "trade:new",
  "price:update",
  "ai:decision",
  "agent:status",
  "strategy:update",
  "alert:new",
  "alert:ack",
  "provider:status",
  "scan:result",
  "scan:status"
];
var PART_TYPES = {
  orders: ["order:update", "order:fill"],
  positions: ["position:update"],
  trading: ["order:update", "order:fill", "position:update", "trade:new"],
  alerts: ["alert:new", "alert:ack"],
  "ai-decisions": ["ai:decision"],
  strategies: ["strategy:update"]
};
var PROTOCOL_VERSION = 1;
var baseName = (stream) => stream.split("/")[0];
var isPublic = (stream) => PUBLIC_STREAMS.has(baseName(stream));
function joinsMe(stream, params) {
  return baseName(stream) in PART_TYPES && !params.userId;
}
function belongsTo(stream, type, data) {
  const [name, item] = stream.split("/");
  const types = PART_TYPES[name];
  if (!types || !types.includes(type)) return false;
  return item === void 0 || data && data.strategyId === item;
}
function subscriptionKey(stream, options = {}) {
  if (typeof stream !== "string" || !/^[a-z][a-z-]{0,31}(\/[A-Za-z0-9._:-]{1,128})?$/.test(stream)) {
    throw new TypeError(`tickwire: invalid stream name ${JSON.stringify(stream)}`);
  }
  let symbols = options.symbols ?? null;
  if (typeof symbols === "string") symbols = symbols.split(",");
  if (symbols) symbols = [...new Set(symbols.map((s) => String(s).trim()).filter(Boolean))].sort();
  if (symbols && baseName(stream) !== "prices") throw new TypeError("tickwire: `symbols` applies to prices only");
  const userId = options.userId ?? null;
  const params = { symbols, userId };
  const key = stream + (symbols ? `?symbols=${symbols.join(",")}` : "") + (userId ? `?userId=${userId}` : "");
  return { key, params };
}
function idTime(id) {
  const dash = typeof id === "string" ? id.indexOf("-") : -1;
  return dash > 0 ? Number(id.slice(0, dash)) : NaN;
}

// src/transports/links.js
var LinkTransport = class {
  /** @param {import("../controller.js").TransportContext} ctx @param {string} kind */
  constructor(ctx, kind) {
    this.ctx = ctx;
    this.kind = kind;
    this.links = /* @__PURE__ */ new Map();
    this.wires = /* @__PURE__ */ new Map();
    this.closed = false;
  }
  /** @abstract @returns {{start(): void, stop(): void, up: boolean, wire: import("../wires.js").Wire}} */
  createLink(_wire) {
    throw new Error("abstract");
  }
  get linkKeys() {
    return [...this.links.keys()];
  }
  isUp() {
    return [...this.links.values()].every((link) => link.up);
  }
  sync(wires) {
    this.wires = wires;
    for (const [key, link] of this.links) {
      const wire = wires.get(key);
      if (!wire || wire.signature !== link.wire.signature) {
        link.stop();
        this.links.delete(key);
        this.ctx.forget(this, key);
      } else {
        link.wire = wire;
      }
    }
    for (const [key, wire] of wires) {
      if (this.links.has(key) || this.closed) continue;
      const link = this.createLink(wire);
      this.links.set(key, link);
      link.start();
    }
    if (this.links.size === 0) this.ctx.up(this, null);
  }
  /** Restart one link (or all): the controller decided it is time. */
  restart(key = null) {
    for (const [k, link] of this.links) {
      if (key !== null && k !== key) continue;
      link.stop();
      const fresh = this.createLink(this.wires.get(k) ?? link.wire);
      this.links.set(k, fresh);
      fresh.start();
    }
  }
  /** Restart the links that carry the user's streams (credentials changed). */
  restartUserLinks() {
    for (const [key, link] of this.links) if (!link.wire.isPublic) this.restart(key);
  }
  close() {
    this.closed = true;
    for (const link of this.links.values()) link.stop();
    this.links.clear();
  }
};
var Link = class {
  /** @param {LinkTransport} transport @param {import("../wires.js").Wire} wire */
  constructor(transport, wire) {
    this.transport = transport;
    this.ctx = transport.ctx;
    this.wire = wire;
    this.up = false;
    this.stopped = false;
  }
  /** Stop and tell the controller; an attempt that never came up counts as failed. */
  fail(info) {
    if (this.stopped) return;
    const wasUp = this.up;
    this.stop();
    this.ctx.down(this.transport, this.wire.key, { ...info, failed: info.failed ?? !wasUp });
  }
  /** @abstract */
  stop() {
    throw new Error("abstract");
  }
};

// src/transports/watchdog.js
var Watchdog = class {
  /**
   * @param {import("../../types/tickwire").Env} env
   * @param {number} ms silence that means a dead connection
   * @param {() => void} onStale
   * @param {number} [firstMs] how long the connection may take to open
   */
  constructor(env, ms, onStale, firstMs = ms) {
    this.env = env;
    this.ms = ms;
    this.onStale = onStale;
    this.timer = null;
    this.lastAt = env.now();
    this.arm(firstMs);
  }
  /** Bytes arrived. */
  kick() {
    this.lastAt = this.env.now();
    this.arm(this.ms);
  }
  arm(ms) {
    this.env.clearTimeout(this.timer);
    this.timer = this.env.setTimeout(() => {
      this.timer = null;
      this.onStale();
    }, ms);
  }
  /** Milliseconds since the last byte. */
  get idleMs() {
    return this.env.now() - this.lastAt;
  }
  stop() {
    this.env.clearTimeout(this.timer);
    this.timer = null;
  }
};
function endpoint(base, prefix, path, query = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== null && value !== void 0 && value !== "") params.set(key, value);
  const qs = params.toString();
  return `${base}${prefix}/${path}${qs ? `?${qs}` : ""}`;
}
function retryAfterMs(response) {
  const value = Number(response?.headers?.get?.("retry-after"));
  return Number.isFinite(value) && value >= 0 ? value * 1e3 : null;
}

// src/transports/sse-reader.js
var SseParser = class {
  /** @param {(type: string, id: string|null, data: string, seq: number|null) => void} onEvent */
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.reset();
  }
  reset() {
    this.type = "";
    this.data = [];
    this.id = null;
    this.seq = null;
  }
  push(text) {
    this.buffer += text;
    let start = 0;
    for (; ; ) {
      const nl = this.buffer.indexOf("\n", start);
      if (nl < 0) break;
      let line = this.buffer.slice(start, nl);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      start = nl + 1;
      this.line(line);
    }
    this.buffer = this.buffer.slice(start);
  }
  line(line) {
    if (line === "") {
      if (this.data.length) this.onEvent(this.type || "message", this.id, this.data.join("\n"), this.seq);
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.id = value;
    else if (field === "seq" && /^[0-9]{1,15}$/.test(value)) this.seq = Number(value);
  }
};
function parseData(env, text) {
  try {
    return JSON.parse(text);
  } catch (err) {
    env.console?.error("tickwire: SSE data that is not JSON", err);
    return { unparsed: text };
  }
}
async function statusInfo(response) {
  let message = "";
  try {
    message = (await response.json())?.message ?? "";
  } catch {
  }
  const status = response.status;
  const reason = `HTTP ${status}${message ? `: ${message}` : ""}`;
  if (status === 401) return { unauthorized: true, status, reason };
  if (status === 429) return { failed: true, status, reason, retryAfterMs: retryAfterMs(response) };
  if (status >= 400 && status < 500) return { refused: true, status, reason, message };
  return { failed: true, status, reason };
}
function readFetch(env, url, { token, credentials }, handlers) {
  const controller = new env.AbortController();
  let ended = false;
  const end = (info) => {
    if (ended) return;
    ended = true;
    handlers.end(info);
  };
  (async () => {
    const headers = { Accept: "text/event-stream" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await env.fetch(url, { headers, credentials, cache: "no-store", signal: controller.signal });
    if (response.status !== 200 || !response.body) return end({ opened: false, ...await statusInfo(response) });
    handlers.open();
    const parser = new SseParser((type, id, data, seq) => handlers.event(type, id, parseData(env, data), seq));
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (; ; ) {
      const { done, value } = await reader.read();
      if (done) break;
      handlers.bytes();
      parser.push(decoder.decode(value, { stream: true }));
    }
    end({ opened: true, reason: "the server ended the stream" });
  })().catch((err) => end({ failed: true, reason: err?.name === "AbortError" ? "aborted" : `network error: ${err?.message ?? err}` }));
  return () => {
    ended = true;
    controller.abort();
  };
}
function readEventSource(env, url, { credentials }, handlers) {
  const source = new env.EventSource(url, { withCredentials: credentials === "include" });
  let opened = false;
  let ended = false;
  source.onopen = () => {
    opened = true;
    handlers.open();
  };
  let lastId = "";
  const listener = (message) => {
    handlers.bytes();
    const fresh = message.lastEventId && message.lastEventId !== lastId ? message.lastEventId : null;
    if (fresh) lastId = fresh;
    handlers.event(message.type, CONTROL_TYPES.has(message.type) ? null : fresh, parseData(env, message.data), null);
  };
  for (const type of [...EVENT_TYPES, "message"]) source.addEventListener(type, listener);
  source.onerror = () => {
    if (ended) return;
    ended = true;
    source.close();
    handlers.end(opened ? { opened: true, reason: "connection lost" } : { failed: true, reason: "EventSource could not connect" });
  };
  return () => {
    ended = true;
    source.close();
  };
}
function canStreamFetch(env) {
  return typeof env.fetch === "function" && typeof env.AbortController === "function" && typeof globalThis.TextDecoder === "function" && typeof globalThis.ReadableStream === "function";
}

// src/transports/poll.js
var PollTransport = class extends LinkTransport {
  constructor(ctx) {
    super(ctx, "poll");
  }
  createLink(wire) {
    return new PollLink(this, wire);
  }
};
var LIMIT = 500;
var PollLink = class extends Link {
  constructor(transport, wire) {
    super(transport, wire);
    this.cursor = void 0;
    this.lastDigest = null;
  }
  start() {
    this.loop().catch((err) => this.fail({ failed: true, reason: `poll failed: ${err?.message ?? err}` }));
  }
  async loop() {
    const { ctx } = this;
    let replay = true;
    while (!this.stopped) {
      const after = this.cursor === void 0 ? this.wire.resumeId() : this.cursor;
      const body = await this.request(after);
      if (!body || this.stopped) return;
      if (!this.up) {
        this.up = true;
        ctx.up(this.transport, this.wire.key);
      }
      const complete = this.deliver(body, after, replay);
      replay = !complete;
      if (complete && (body.events || []).length < LIMIT) await this.sleep(ctx.options.pollIntervalMs);
    }
  }
  async request(after) {
    const { ctx, wire } = this;
    let token = null;
    try {
      token = wire.isPublic ? null : await ctx.auth.ensure();
    } catch {
      token = null;
    }
    const wait = after ? ctx.options.pollWaitS : null;
    const url = ctx.url(`${wire.stream}/events`, { ...wire.query, after, wait, limit: LIMIT });
    this.abort = new ctx.env.AbortController();
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    let response;
    try {
      response = await ctx.env.fetch(url, { headers, credentials: ctx.options.credentials, cache: "no-store", signal: this.abort.signal });
    } catch (err) {
      if (!this.stopped) this.fail({ failed: true, reason: `network error: ${err?.message ?? err}` });
      return null;
    }
    if (response.status !== 200) {
      if (!this.stopped) this.fail({ opened: false, ...await statusInfo(response) });
      return null;
    }
    return response.json();
  }
  /** Hand an answer's events on; false when one revealed a hole (the wire is read again). */
  deliver(body, after, replay) {
    const { ctx, wire } = this;
    const events = body.events || [];
    if (after && body.recovered === false) {
      const data = { recovered: false, reason: body.reason ?? "unknown", timestamp: (/* @__PURE__ */ new Date()).toISOString() };
      ctx.event(wire, { type: "stream:reset", id: null, data });
    }
    if (!body.lastEventId && !after) {
      const digest = JSON.stringify(events.map((e) => [e.event, { ...e.data, timestamp: null }]));
      if (digest === this.lastDigest) return true;
      this.lastDigest = digest;
    }
    for (const e of events) {
      if (ctx.event(wire, { type: e.event, id: e.id ?? null, data: e.data, seq: e.seq ?? null, replayed: replay && Boolean(after) })) {
        this.cursor = void 0;
        return false;
      }
    }
    if (body.lastEventId) this.cursor = body.lastEventId;
    else if (after && body.recovered === false) this.cursor = null;
    return true;
  }
  sleep(ms) {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = this.ctx.env.setTimeout(resolve, ms);
    });
  }
  stop() {
    this.stopped = true;
    this.up = false;
    this.ctx.env.clearTimeout(this.timer);
    this.wake?.();
    try {
      this.abort?.abort();
    } catch {
    }
  }
};

// src/transports/sse.js
var SseTransport = class extends LinkTransport {
  constructor(ctx) {
    super(ctx, "sse");
  }
  createLink(wire) {
    return new SseLink(this, wire);
  }
  /** Whether this host can read SSE at all. */
  static available(env) {
    return canStreamFetch(env) || typeof env.EventSource === "function";
  }
};
var SseLink = class extends Link {
  constructor(transport, wire) {
    super(transport, wire);
    this.replayUntil = NaN;
  }
  async start() {
    const { ctx, wire } = this;
    let token = null;
    try {
      token = wire.isPublic ? null : await ctx.auth.ensure();
    } catch {
      token = null;
    }
    if (this.stopped) return;
    const resume = wire.resumeId();
    this.resumed = Boolean(resume);
    const url = ctx.url(wire.stream, { ...wire.query, lastEventId: resume });
    const useFetch = ctx.options.sseReader === "fetch" || ctx.options.sseReader !== "eventsource" && canStreamFetch(ctx.env);
    if (token && !useFetch) ctx.env.console?.warn("tickwire: EventSource cannot send a token; using the cookie");
    this.watchdog = new Watchdog(ctx.env, ctx.options.staleTimeoutMs, () => this.stale(), ctx.options.connectTimeoutMs);
    const read2 = useFetch ? readFetch : readEventSource;
    this.cancel = read2(ctx.env, url, { token, credentials: ctx.options.credentials }, {
      open: () => this.watchdog.kick(),
      bytes: () => this.watchdog.kick(),
      event: (type, id, data, seq) => this.event(type, id, data, seq),
      end: (info) => this.ended(info)
    });
  }
  event(type, id, data, seq) {
    if (this.stopped) return;
    if (type === "connected") {
      if (!this.ctx.checkVersion(data?.v)) return this.fail({ fatal: "version", reason: `unsupported protocol version ${data.v}` });
      this.up = true;
      this.replayUntil = this.resumed ? Date.parse(data?.timestamp) : NaN;
      this.ctx.up(this.transport, this.wire.key);
      return;
    }
    if (type === "auth:expired") this.expired = true;
    if (type === "connection:limit") this.limited = true;
    let replayed = false;
    if (id && !Number.isNaN(this.replayUntil)) {
      replayed = idTime(id) < this.replayUntil;
      if (!replayed) this.replayUntil = NaN;
    }
    if (this.ctx.event(this.wire, { type, id, data, seq, replayed })) this.transport.restart(this.wire.key);
  }
  stale() {
    if (!this.up) return this.fail({ failed: true, reason: "the stream did not open in time" });
    this.fail({ reason: `no data for ${Math.round(this.ctx.options.staleTimeoutMs / 1e3)} s: connection is stale` });
  }
  ended(info) {
    if (this.stopped) return;
    if (this.expired) info = { ...info, unauthorized: true, expired: true, reason: "token expired" };
    else if (this.limited) info = { ...info, fatal: "limit", reason: "connection limit: a newer connection of this user took over" };
    this.fail({ failed: !this.up, ...info });
  }
  stop() {
    this.stopped = true;
    this.up = false;
    this.watchdog?.stop();
    this.cancel?.();
    this.cancel = null;
  }
};

// src/msgpack.js
var textEncoder = new TextEncoder();
var textDecoder = new TextDecoder();
function encode(value) {
  const out = new Writer();
  write(out, value);
  return out.bytes();
}
function decode(input) {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), bytes, pos: 0 };
  const value = read(reader);
  if (reader.pos !== bytes.length) throw new Error("msgpack: trailing bytes");
  return value;
}
var Writer = class {
  constructor() {
    this.buf = new Uint8Array(256);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }
  ensure(n) {
    if (this.pos + n <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    grown.set(this.buf);
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }
  u8(v) {
    this.ensure(1);
    this.view.setUint8(this.pos++, v);
  }
  put(kind, v, size) {
    this.ensure(size);
    this.view[kind](this.pos, v);
    this.pos += size;
  }
  raw(bytes) {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
  bytes() {
    return this.buf.slice(0, this.pos);
  }
};
function write(out, value) {
  if (value === null || value === void 0) return out.u8(192);
  if (value === false) return out.u8(194);
  if (value === true) return out.u8(195);
  if (typeof value === "number") return writeNumber(out, value);
  if (typeof value === "bigint") return writeBig(out, value);
  if (typeof value === "string") return writeString(out, value);
  if (value instanceof Uint8Array) return writeHeader(out, value.length, null, 196, 197, 198), out.raw(value);
  if (Array.isArray(value)) {
    writeHeader(out, value.length, 144, null, 220, 221, 15);
    for (const item of value) write(out, item);
    return void 0;
  }
  if (typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== void 0);
    writeHeader(out, entries.length, 128, null, 222, 223, 15);
    for (const [k, v] of entries) {
      writeString(out, k);
      write(out, v);
    }
    return void 0;
  }
  throw new TypeError(`msgpack: cannot encode ${typeof value}`);
}
function writeHeader(out, n, fix, c8, c16, c32, fixMax = 31) {
  if (fix !== null && n <= fixMax) return out.u8(fix | n);
  if (c8 !== null && n < 256) return out.u8(c8), out.u8(n);
  if (n < 65536) return out.u8(c16), out.put("setUint16", n, 2);
  return out.u8(c32), out.put("setUint32", n, 4);
}
function writeString(out, s) {
  const bytes = textEncoder.encode(s);
  writeHeader(out, bytes.length, 160, 217, 218, 219);
  out.raw(bytes);
}
function writeNumber(out, n) {
  if (!Number.isInteger(n) || !Number.isSafeInteger(n)) return out.u8(203), out.put("setFloat64", n, 8);
  if (n >= 0) {
    if (n < 128) return out.u8(n);
    if (n < 256) return out.u8(204), out.u8(n);
    if (n < 65536) return out.u8(205), out.put("setUint16", n, 2);
    if (n < 4294967296) return out.u8(206), out.put("setUint32", n, 4);
    return out.u8(207), out.put("setBigUint64", BigInt(n), 8);
  }
  if (n >= -32) return out.u8(n & 255);
  if (n >= -128) return out.u8(208), out.put("setInt8", n, 1);
  if (n >= -32768) return out.u8(209), out.put("setInt16", n, 2);
  if (n >= -2147483648) return out.u8(210), out.put("setInt32", n, 4);
  return out.u8(211), out.put("setBigInt64", BigInt(n), 8);
}
function writeBig(out, n) {
  if (n >= 0n) return out.u8(207), out.put("setBigUint64", n, 8);
  return out.u8(211), out.put("setBigInt64", n, 8);
}
function take(r, kind, size) {
  if (r.pos + size > r.bytes.length) throw new Error("msgpack: truncated");
  const value = r.view[kind](r.pos);
  r.pos += size;
  return value;
}
function slice(r, n) {
  if (r.pos + n > r.bytes.length) throw new Error("msgpack: truncated");
  const out = r.bytes.subarray(r.pos, r.pos + n);
  r.pos += n;
  return out;
}
var safe = (big) => big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
function readArray(r, n) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = read(r);
  return out;
}
function readMap(r, n) {
  const out = {};
  for (let i = 0; i < n; i++) {
    const key = read(r);
    out[String(key)] = read(r);
  }
  return out;
}
var str = (r, n) => textDecoder.decode(slice(r, n));
var ext = (r, n) => ({ type: take(r, "getInt8", 1), data: slice(r, n).slice() });
var CODES = {
  192: () => null,
  194: () => false,
  195: () => true,
  196: (r) => slice(r, take(r, "getUint8", 1)).slice(),
  197: (r) => slice(r, take(r, "getUint16", 2)).slice(),
  198: (r) => slice(r, take(r, "getUint32", 4)).slice(),
  199: (r) => ext(r, take(r, "getUint8", 1)),
  200: (r) => ext(r, take(r, "getUint16", 2)),
  201: (r) => ext(r, take(r, "getUint32", 4)),
  202: (r) => take(r, "getFloat32", 4),
  203: (r) => take(r, "getFloat64", 8),
  204: (r) => take(r, "getUint8", 1),
  205: (r) => take(r, "getUint16", 2),
  206: (r) => take(r, "getUint32", 4),
  207: (r) => safe(take(r, "getBigUint64", 8)),
  208: (r) => take(r, "getInt8", 1),
  209: (r) => take(r, "getInt16", 2),
  210: (r) => take(r, "getInt32", 4),
  211: (r) => safe(take(r, "getBigInt64", 8)),
  212: (r) => ext(r, 1),
  213: (r) => ext(r, 2),
  214: (r) => ext(r, 4),
  215: (r) => ext(r, 8),
  216: (r) => ext(r, 16),
  217: (r) => str(r, take(r, "getUint8", 1)),
  218: (r) => str(r, take(r, "getUint16", 2)),
  219: (r) => str(r, take(r, "getUint32", 4)),
  220: (r) => readArray(r, take(r, "getUint16", 2)),
  221: (r) => readArray(r, take(r, "getUint32", 4)),
  222: (r) => readMap(r, take(r, "getUint16", 2)),
  223: (r) => readMap(r, take(r, "getUint32", 4))
};
function read(r) {
  const b = take(r, "getUint8", 1);
  if (b < 128) return b;
  if (b < 144) return readMap(r, b & 15);
  if (b < 160) return readArray(r, b & 15);
  if (b < 192) return str(r, b & 31);
  if (b >= 224) return b - 256;
  const decodeCode = CODES[b];
  if (!decodeCode) throw new Error(`msgpack: unknown byte 0x${b.toString(16)}`);
  return decodeCode(r);
}

// src/transports/ws.js
function closeInfo(code, reason, { wasUp, expired }) {
  if (code === 4029) return { fatal: "limit", reason: reason || "connection limit: a newer connection of this user took over" };
  if (code === 1008) return { fatal: "policy", reason: reason || "policy violation" };
  if (code === 4001) return { unauthorized: true, expired, reason: reason || "unauthorized" };
  if (code === 1001) return { now: true, reason: reason || "server going away" };
  return { failed: !wasUp, reason: reason || `closed (${code})` };
}
var WsTransport = class {
  /** @param {import("../controller.js").TransportContext} ctx */
  constructor(ctx) {
    this.ctx = ctx;
    this.kind = "ws";
    this.wires = /* @__PURE__ */ new Map();
    this.socket = null;
    this.closed = false;
    this.generation = 0;
  }
  get linkKeys() {
    return ["ws"];
  }
  isUp() {
    return this.ready === true && this.wasUp === true;
  }
  /** The wanted wires changed: send the difference (batched). */
  sync(wires) {
    this.wires = wires;
    if (!this.started && !this.closed) {
      this.started = true;
      this.connect();
    } else if (this.ready) {
      this.scheduleFlush();
    }
  }
  async connect() {
    const gen = ++this.generation;
    const { env, options } = this.ctx;
    this.connecting = true;
    this.ready = false;
    this.wasUp = false;
    this.expired = false;
    this.limited = false;
    this.user = null;
    this.authPending = false;
    this.sent = /* @__PURE__ */ new Map();
    let token = null;
    try {
      token = await this.ctx.auth.ensure();
    } catch {
      token = null;
    }
    if (gen !== this.generation || this.closed) return;
    const protocol = options.protocol === "msgpack" ? "tickwire.msgpack" : "tickwire.json";
    let socket;
    try {
      socket = new env.WebSocket(this.ctx.wsUrl(), [protocol]);
    } catch (err) {
      this.connecting = false;
      return this.down({ failed: true, reason: `WebSocket: ${err.message}` });
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.token = token;
    this.watchdog = new Watchdog(env, options.staleTimeoutMs, () => this.stale(), options.connectTimeoutMs);
    socket.onopen = () => this.opened(socket);
    socket.onmessage = (message) => this.received(socket, message);
    socket.onclose = (ev) => this.onClose(socket, ev);
    socket.onerror = () => {
    };
  }
  opened(socket) {
    if (socket !== this.socket) return;
    this.connecting = false;
    this.watchdog.kick();
    if (this.token) this.send({ type: "auth", token: this.token });
    else this.becomeReady();
  }
  becomeReady() {
    this.ready = true;
    this.flush();
    this.send({ type: "ping", ts: this.ctx.env.now() });
    this.schedulePing();
  }
  /** The first message from the server: the connection works (an open socket alone may be a proxy). */
  healthy() {
    if (this.wasUp) return;
    this.wasUp = true;
    this.ctx.up(this, "ws");
  }
  send(message) {
    if (this.socket?.readyState !== 1) return;
    const binary = this.ctx.options.protocol === "msgpack";
    this.socket.send(binary ? encode(message) : JSON.stringify(message));
  }
  scheduleFlush() {
    if (this.flushTimer) return;
    this.flushTimer = this.ctx.env.setTimeout(() => {
      this.flushTimer = null;
      this.flush();
    }, this.ctx.options.batchMs);
  }
  /** One `subscribe` for what is new or changed, one `unsubscribe` for what went. */
  flush() {
    if (!this.ready || this.authPending) return;
    const subscribe = [];
    for (const [key, wire] of this.wires) {
      const sent = this.sent.get(key);
      if (sent && sent.signature === wire.signature) continue;
      const lastEventId = sent ? null : wire.resumeId();
      subscribe.push(request(wire, lastEventId));
      this.sent.set(key, { signature: wire.signature, replaying: Boolean(lastEventId) });
    }
    const unsubscribe = [...this.sent.keys()].filter((key) => !this.wires.has(key));
    for (const key of unsubscribe) this.sent.delete(key);
    if (unsubscribe.length) this.send({ type: "unsubscribe", rid: this.rid(), streams: unsubscribe });
    if (subscribe.length) this.send({ type: "subscribe", rid: this.rid(), streams: subscribe });
  }
  /**
   * A hole in `key`'s stream: subscribe it again from its resume id. What the server sent
   * of it before its `unsubscribed` answer is dropped; the new subscription's replay
   * brings the missing events in order.
   */
  resubscribe(key) {
    const wire = this.wires.get(key);
    if (!wire || !this.ready) return;
    this.sent.set(key, { signature: wire.signature, replaying: true, repairing: true });
    this.send({ type: "unsubscribe", rid: this.rid(), streams: [key] });
    this.send({ type: "subscribe", rid: this.rid(), streams: [request(wire, wire.resumeId())] });
  }
  rid() {
    this.rids = (this.rids || 0) + 1;
    return String(this.rids);
  }
  schedulePing(delay = this.ctx.options.pingIntervalMs) {
    this.ctx.env.clearTimeout(this.pingTimer);
    this.pingTimer = this.ctx.env.setTimeout(() => {
      this.send({ type: "ping", ts: this.ctx.env.now() });
      this.schedulePing();
    }, delay);
  }
  /** Ping now (e.g. the page became visible): the pong proves the socket is alive. */
  probe() {
    if (this.ready) this.send({ type: "ping", ts: this.ctx.env.now() });
  }
  received(socket, message) {
    if (socket !== this.socket) return;
    this.watchdog.kick();
    let msg;
    try {
      msg = typeof message.data === "string" ? JSON.parse(message.data) : decode(message.data);
    } catch (err) {
      this.ctx.env.console?.error("tickwire: bad WebSocket message", err);
      return;
    }
    if (!msg || typeof msg !== "object") return;
    this.handle(msg);
    if (this.ready && this.socket === socket) this.healthy();
  }
  handle(msg) {
    const ctx = this.ctx;
    switch (msg.type) {
      case "authenticated":
        if (!ctx.checkVersion(msg.v)) return this.abort({ fatal: "version", reason: `unsupported protocol version ${msg.v}` });
        this.user = msg.userId;
        this.authPending = false;
        if (!this.ready) this.becomeReady();
        else this.flush();
        return;
      case "subscribed":
        if (!ctx.checkVersion(msg.v)) return this.abort({ fatal: "version", reason: `unsupported protocol version ${msg.v}` });
        for (const { stream, recovered } of msg.streams || []) {
          const sent = this.sent.get(stream);
          if (sent && !sent.repairing) sent.replaying = false;
          ctx.subscribed(this.wires.get(stream), recovered !== false);
        }
        return;
      case "unsubscribed":
        for (const stream of msg.streams || []) {
          const sent = this.sent.get(stream);
          if (sent) sent.repairing = false;
        }
        return;
      case "event":
        return this.event(msg);
      case "error":
        if (msg.stream) this.sent.delete(msg.stream);
        return ctx.streamError(this.wires.get(msg.stream) ?? null, msg.code, msg.message);
      case "pong":
        if (typeof msg.ts === "number") ctx.rtt(ctx.env.now() - msg.ts);
        return;
      default:
        return;
    }
  }
  event(msg) {
    if (msg.event === "auth:expired") this.expired = true;
    if (msg.event === "connection:limit") this.limited = true;
    const ev = { type: msg.event, id: msg.id ?? null, data: msg.data, seq: msg.seq ?? null };
    if (!msg.stream) {
      for (const wire2 of this.wires.values()) this.ctx.event(wire2, ev);
      return;
    }
    const wire = this.wires.get(msg.stream);
    const sent = this.sent.get(msg.stream);
    if (!wire || sent?.repairing) return;
    ev.replayed = Boolean(sent?.replaying);
    if (this.ctx.event(wire, ev)) this.resubscribe(msg.stream);
  }
  /** Send a fresh token on the open socket (same user: extends it; SPEC 5). */
  reauthenticate(token) {
    this.token = token;
    if (this.socket?.readyState !== 1 || !token) return;
    this.authPending = !this.user;
    this.send({ type: "auth", token });
  }
  stale() {
    if (!this.wasUp) return this.abort({ failed: true, reason: "WebSocket did not open in time" });
    this.abort({ reason: `no data for ${Math.round(this.ctx.options.staleTimeoutMs / 1e3)} s: connection is stale` });
  }
  onClose(socket, ev) {
    if (socket !== this.socket) return;
    const info = closeInfo(ev.code, ev.reason, { wasUp: this.wasUp, expired: this.expired });
    if (this.limited && !info.fatal) Object.assign(info, { fatal: "limit" });
    this.teardown();
    this.down(info);
  }
  /** Drop the socket now and report why (the close handshake may never finish on a dead network). */
  abort(info) {
    const socket = this.socket;
    this.teardown();
    try {
      socket?.close(4e3, "client: " + String(info.reason).slice(0, 80));
    } catch {
    }
    this.down({ failed: !this.wasUp, ...info });
  }
  teardown() {
    const socket = this.socket;
    if (socket) socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    this.socket = null;
    this.ready = false;
    this.connecting = false;
    this.watchdog?.stop();
    this.ctx.env.clearTimeout(this.pingTimer);
    this.ctx.env.clearTimeout(this.flushTimer);
    this.flushTimer = null;
  }
  down(info) {
    if (!this.closed) this.ctx.down(this, "ws", info);
  }
  /** Reconnect (the controller decided when). */
  restart() {
    if (this.closed) return;
    const socket = this.socket;
    this.teardown();
    try {
      socket?.close(1e3, "reconnecting");
    } catch {
    }
    this.connect();
  }
  close() {
    this.closed = true;
    const socket = this.socket;
    this.teardown();
    this.generation += 1;
    try {
      socket?.close(1e3, "client closed");
    } catch {
    }
  }
};
function request(wire, lastEventId) {
  const item = { stream: wire.stream };
  if (lastEventId) item.lastEventId = lastEventId;
  if (wire.query.symbols) item.symbols = wire.query.symbols.split(",");
  if (wire.query.userId) item.userId = wire.query.userId;
  return item;
}

// src/wires.js
var Wire = class {
  /** @param {string} key @param {string} stream @param {Record<string,string>} query @param {import("./registry.js").Entry[]} entries */
  constructor(key, stream, query, entries, composite = false) {
    this.key = key;
    this.stream = stream;
    this.query = query;
    this.entries = entries;
    this.composite = composite;
    this.signature = stream + JSON.stringify(query);
  }
  get isPublic() {
    return this.entries.every((e) => e.isPublic);
  }
  /**
   * Where to resume: null when an entry never started (it needs its snapshot or buffered
   * events), else the earliest of the entries' positions (replaying a little more is
   * safe: duplicates are dropped by id).
   */
  resumeId() {
    let best = null;
    for (const entry of this.entries) {
      if (!entry.lastId) {
        if (entry.started) continue;
        return null;
      }
      if (!best || earlier(entry, best)) best = entry;
    }
    return best ? best.lastId : null;
  }
  /**
   * The entries an event goes to, each with the data it sees.
   * @returns {Array<[import("./registry.js").Entry, any]>}
   */
  route(type, data) {
    if (this.composite && !CONTROL.has(type)) {
      return this.entries.filter((e) => belongsTo(e.stream, type, data)).map((e) => [e, data]);
    }
    if (this.stream === "prices" && type === "price:update" && data) {
      return this.entries.flatMap((e) => pricesFor(e, data));
    }
    return this.entries.map((e) => [e, data]);
  }
};
var CONTROL = /* @__PURE__ */ new Set(["connected", "stream:reset", "connection:limit", "auth:expired", "test"]);
function earlier(a, b) {
  const ta = idTime(a.lastId);
  const tb = idTime(b.lastId);
  if (ta !== tb && !Number.isNaN(ta) && !Number.isNaN(tb)) return ta < tb;
  return a.lastSeq < b.lastSeq;
}
function pricesFor(entry, data) {
  const symbols = entry.params.symbols;
  if (!symbols) return [[entry, data]];
  if (data.initializing) {
    return [[entry, { ...data, prices: (data.prices || []).filter((p) => symbols.includes(p.symbol)) }]];
  }
  return symbols.includes(data.symbol) ? [[entry, data]] : [];
}
function planWires(entries, { grouped, useMe }) {
  const groups = /* @__PURE__ */ new Map();
  const add = (key, entry) => {
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(entry);
  };
  for (const entry of entries) {
    if (entry.stream === "prices") add("prices", entry);
    else if (grouped && useMe && joinsMe(entry.stream, entry.params)) add("me", entry);
    else add(grouped ? entry.key : entry.stream, entry);
  }
  const wires = /* @__PURE__ */ new Map();
  for (const [key, members] of groups) wires.set(key, makeWire(key, members));
  return wires;
}
function makeWire(key, members) {
  if (key === "me") {
    const streams = [...new Set(members.map((e) => e.stream))].sort().join(",");
    return new Wire(key, "me", { streams }, members, true);
  }
  const first = members[0];
  const query = {};
  if (first.stream === "prices") {
    const all = members.some((e) => !e.params.symbols);
    if (!all) query.symbols = [...new Set(members.flatMap((e) => e.params.symbols))].sort().join(",");
  }
  if (first.params.userId) query.userId = first.params.userId;
  return new Wire(key, first.stream, query, members);
}

// src/controller.js
var TRANSPORTS = { ws: WsTransport, sse: SseTransport, poll: PollTransport };
var WS_TRIES_IN_AUTO = 2;
var Controller = class {
  /** @param {import("./client.js").TickwireClient} client */
  constructor(client) {
    this.client = client;
    this.env = client.env;
    this.options = client.options;
    this.timers = /* @__PURE__ */ new Map();
    this.attempts = /* @__PURE__ */ new Map();
    this.linkFailures = /* @__PURE__ */ new Map();
    this.carried = 0;
    this.totalFailures = 0;
    this.everUp = false;
    this.useMe = client.options.useMe;
    this.fallbackReason = null;
    this.gaveUp = null;
    this.closed = false;
    this.rttMs = null;
    this.lastError = null;
    this.probe = null;
    this.probeIndex = 0;
    this.worked = /* @__PURE__ */ new Set();
  }
  /** Streaming transports this host has, in order of preference. */
  candidates() {
    const { transport } = this.options;
    const ws = typeof this.env.WebSocket === "function";
    const sse = SseTransport.available(this.env);
    if (transport === "ws") return ws ? ["ws"] : [];
    if (transport === "sse") return sse ? ["sse"] : [];
    if (transport === "poll") return [];
    return [...ws ? ["ws"] : [], ...sse ? ["sse"] : []];
  }
  start() {
    const candidates = this.candidates();
    if (this.options.transport === "poll") this.use("poll");
    else if (candidates.length === 0) this.fallback("this browser has no WebSocket or EventSource");
    else this.use(candidates[0]);
  }
  context() {
    const self = this;
    const { env, options } = this;
    return {
      env,
      options,
      auth: this.client.auth,
      url: (path, query) => endpoint(options.baseUrl, options.prefix, path, query),
      wsUrl: () => wsUrl(env, options),
      checkVersion: (v) => v === void 0 || v === null || Math.floor(Number(v)) === PROTOCOL_VERSION,
      event: (wire, ev) => self.client.onWireEvent(wire, ev),
      up: (t, key) => self.onUp(t, key),
      down: (t, key, info) => self.onDown(t, key, info),
      forget: (_t, key) => self.clearRetry(key),
      rtt: (ms) => self.onRtt(ms),
      subscribed: (wire) => wire && self.client.markWire(wire, "live"),
      streamError: (wire, code, message) => self.onStreamError(wire, code, message)
    };
  }
  /**
   * Failed streaming attempts in a row: of the link that failed most (a composite SSE
   * session fails on each of its responses at once; that is one attempt), plus the
   * WebSocket's before "auto" went on to SSE.
   */
  get failures() {
    return this.carried + Math.max(0, ...this.linkFailures.values());
  }
  resetFailures() {
    this.carried = 0;
    this.linkFailures.clear();
  }
  /** Make `kind` the transport. */
  use(kind) {
    this.transport?.close();
    this.clearRetries();
    this.linkFailures.clear();
    this.transport = new TRANSPORTS[kind](this.context());
    this.replan();
    this.changed();
  }
  plan(kind) {
    return planWires(this.client.wantedEntries(), { grouped: kind !== "ws", useMe: this.useMe });
  }
  /** The subscriptions changed: every transport gets its new wires. */
  replan() {
    if (this.closed || this.gaveUp) return;
    this.transport?.sync(this.plan(this.transport.kind));
    this.probe?.sync(this.plan(this.probe.kind));
  }
  onUp(transport, key) {
    if (transport === this.probe) {
      if (transport.isUp()) this.promote();
      return;
    }
    if (transport !== this.transport) return;
    if (key !== null) {
      this.worked.add(transport.kind);
      this.attempts.delete(key);
      this.linkFailures.delete(key);
      this.carried = 0;
      this.totalFailures = 0;
      this.everUp = true;
      const wire = transport.kind === "ws" ? null : transport.wires.get(key);
      if (wire) this.client.markWire(wire, "live");
    }
    this.lastError = null;
    this.changed();
  }
  onDown(transport, key, info) {
    if (transport === this.probe) return this.probeFailed(info);
    if (transport !== this.transport || this.closed) return;
    this.lastError = info.reason ?? null;
    for (const wire of transport.wires.values()) if (wire.key === key || transport.kind === "ws") this.client.markWire(wire, "reconnecting");
    if (info.fatal) return this.giveUp(info.reason);
    if (info.unauthorized) return this.unauthorized(transport, key, info);
    if (info.refused) return this.refused(transport, key, info);
    this.retry(transport, key, info);
  }
  retry(transport, key, info) {
    const offline = isOffline(this.env);
    if (info.failed && !offline) {
      this.linkFailures.set(key, (this.linkFailures.get(key) ?? 0) + 1);
      this.totalFailures += 1;
    }
    if (this.totalFailures >= this.options.maxAttempts) return this.giveUp(`gave up after ${this.totalFailures} failed attempts: ${info.reason}`);
    if (transport.kind !== "poll" && this.failures >= this.options.fallbackAfter) {
      return this.fallback(`${this.failures} failed streaming attempts (${info.reason})`);
    }
    const wsBlocked = !this.worked.has("ws") && this.failures >= WS_TRIES_IN_AUTO;
    if (this.options.transport === "auto" && transport.kind === "ws" && wsBlocked && this.candidates().includes("sse")) {
      const carried = this.failures;
      this.use("sse");
      this.carried = carried;
      return;
    }
    const attempt = this.attempts.get(key) ?? 0;
    this.attempts.set(key, attempt + 1);
    let delay = info.retryAfterMs ?? backoffDelay(info.failed ? attempt : 0, this.options.backoff, this.env.random);
    if (info.now) delay = Math.round(this.env.random() * 500);
    this.schedule(key, delay, () => transport.restart(key));
    this.changed();
  }
  schedule(key, delay, fn) {
    this.clearRetry(key);
    this.timers.set(key, this.env.setTimeout(() => {
      this.timers.delete(key);
      if (!this.closed) fn();
    }, delay));
  }
  /** 401, 4001 or `auth:expired`: a fresh token if getToken gives one, else public streams only. */
  async unauthorized(transport, key, info) {
    const auth = this.client.auth;
    const fresh = await auth.renewed();
    if (transport !== this.transport || this.closed) return;
    if (fresh) return this.retry(transport, key, { ...info, failed: !info.expired, now: info.expired, unauthorized: false });
    this.client.blockUserStreams("unauthorized", info.reason);
    if (transport.kind === "ws") auth.token = null;
    this.replan();
    if (transport.kind === "ws") this.retry(transport, key, { ...info, failed: false, now: true });
    this.changed();
  }
  /** 400/403/404 on a link: a `me` response that fails is split; else its streams are refused. */
  refused(transport, key, info) {
    const wire = transport.wires.get(key);
    if (wire?.composite && this.useMe) {
      this.useMe = false;
      this.replan();
      return;
    }
    const code = { 403: "forbidden", 404: "not_found" }[info.status] ?? "bad_request";
    if (wire) this.client.blockEntries(wire.entries, code, info.message || info.reason);
    this.replan();
  }
  onStreamError(wire, code, message) {
    if (!wire) return this.env.console?.warn(`tickwire: ${code}: ${message}`);
    if (code === "unauthorized") return this.streamUnauthorized(wire, message);
    if (code === "rate_limited" || code === "internal_error") {
      this.schedule(`resync:${wire.key}`, backoffDelay(0, this.options.backoff, this.env.random), () => this.replan());
      return;
    }
    this.client.blockEntries(wire.entries, code, message);
    this.replan();
  }
  /**
   * A user stream refused on a socket without a user (WebSocket): a token getToken gives
   * now, other than the socket's, is sent on the socket and the stream is subscribed again
   * once `authenticated` comes; without one the stream waits for login() or a reconnect.
   */
  async streamUnauthorized(wire, message) {
    const transport = this.transport;
    const fresh = await this.client.auth.renewed();
    if (transport !== this.transport || this.closed) return;
    if (fresh && fresh !== transport.token && transport.reauthenticate) {
      transport.reauthenticate(fresh);
      return;
    }
    this.client.blockEntries(wire.entries, "unauthorized", message);
    this.replan();
  }
  fallback(reason) {
    this.fallbackReason = reason;
    this.resetFailures();
    this.use("poll");
    this.scheduleProbe();
  }
  scheduleProbe(delay = this.options.probeIntervalMs) {
    if (this.candidates().length === 0) return;
    this.schedule("probe", delay, () => this.startProbe());
  }
  /**
   * Try streaming again. A round tries the transports in order of preference, each right
   * after the one before failed, so the most preferred one that works wins; then it waits.
   */
  startProbe() {
    if (this.probe || this.closed) return;
    const candidates = this.candidates();
    if (candidates.length === 0) return;
    const kind = candidates[this.probeIndex % candidates.length];
    this.probe = new TRANSPORTS[kind](this.context());
    this.probe.sync(this.plan(kind));
  }
  probeFailed(info) {
    this.probe?.close();
    this.probe = null;
    this.lastError = `streaming still unavailable: ${info.reason}`;
    this.probeIndex += 1;
    if (this.probeIndex < this.candidates().length) {
      this.scheduleProbe(0);
    } else {
      this.probeIndex = 0;
      this.scheduleProbe();
    }
    this.changed();
  }
  /** The probe works: streaming again. */
  promote() {
    const probe = this.probe;
    this.probe = null;
    this.probeIndex = 0;
    this.clearRetry("probe");
    this.transport?.close();
    this.clearRetries();
    this.transport = probe;
    this.fallbackReason = null;
    this.resetFailures();
    this.totalFailures = 0;
    this.everUp = true;
    this.lastError = null;
    for (const wire of probe.wires.values()) this.client.markWire(wire, "live");
    this.changed();
  }
  giveUp(reason) {
    this.gaveUp = reason || "disconnected";
    this.transport?.close();
    this.probe?.close();
    this.probe = null;
    this.clearRetries();
    this.changed();
  }
  onRtt(ms) {
    this.rttMs = Math.max(0, Math.round(ms));
    this.client.marks("stats");
  }
  /** Now, not after the backoff: the network came back, the page came back, or the user asked. */
  reconnectNow({ manual = false } = {}) {
    if (this.closed) return;
    if (manual) {
      this.gaveUp = null;
      this.resetFailures();
      this.totalFailures = 0;
      this.useMe = this.options.useMe;
      this.client.unblockAll();
    }
    this.clearRetries();
    this.attempts.clear();
    if (this.gaveUp) return;
    if (!this.transport || manual) {
      const kind = this.transport?.kind === "poll" && this.fallbackReason ? "poll" : this.transport?.kind;
      this.use(kind ?? this.candidates()[0] ?? "poll");
    } else {
      this.transport.restart();
    }
    if (this.fallbackReason) {
      this.probe?.close();
      this.probe = null;
      this.startProbe();
    }
    this.changed();
  }
  clearRetry(key) {
    const timer = this.timers.get(key);
    if (timer !== void 0) this.env.clearTimeout(timer);
    this.timers.delete(key);
  }
  clearRetries() {
    for (const key of [...this.timers.keys()]) if (key !== "probe") this.clearRetry(key);
  }
  close() {
    this.closed = true;
    this.transport?.close();
    this.probe?.close();
    this.probe = null;
    for (const key of [...this.timers.keys()]) this.clearRetry(key);
    this.changed();
  }
  /** @returns {import("../types/tickwire").ConnectionState} */
  get state() {
    if (this.closed) return "closed";
    if (this.gaveUp) return "disconnected";
    if (this.fallbackReason) return "fallback";
    if (this.transport?.isUp()) return "connected";
    return this.everUp ? "reconnecting" : "connecting";
  }
  changed() {
    this.client.statusChanged();
  }
};
function wsUrl(env, options) {
  const base = options.baseUrl || `${env.location?.protocol ?? "http:"}//${env.location?.host ?? "localhost"}`;
  return base.replace(/^http/, "ws") + options.prefix + "/ws";
}

// src/local.js
var LocalState = class {
  /** @param {(topic: string) => void} [changed] called with each topic that changed */
  constructor(changed = () => {
  }) {
    this.changed = changed;
    this.orders = /* @__PURE__ */ new Map();
    this.positions = /* @__PURE__ */ new Map();
    this.prices = /* @__PURE__ */ new Map();
    this.totalValue = null;
  }
  /**
   * Merge one event; returns whether anything changed.
   * @param {string} type @param {any} data
   */
  apply(type, data) {
    if (!data || typeof data !== "object") return false;
    switch (type) {
      case "order:update":
        return data.snapshot ? this.replaceOrders(data.orders) : this.mergeOrder(data);
      case "order:fill":
        return this.mergeOrder(pick(data, ["orderId", "filledQty", "filledAvgPrice", "status", "timestamp"]));
      case "position:update":
        return data.snapshot ? this.replacePositions(data) : this.mergePosition(data);
      case "price:update":
        return this.mergePrices(data);
      default:
        return false;
    }
  }
  replaceOrders(orders) {
    this.orders = new Map((orders || []).filter((o) => o && o.orderId != null).map((o) => [o.orderId, o]));
    this.changed("orders");
    return true;
  }
  mergeOrder(data) {
    if (data.orderId == null) return false;
    const orders = new Map(this.orders);
    orders.set(data.orderId, { ...orders.get(data.orderId), ...data });
    this.orders = orders;
    this.changed("orders");
    return true;
  }
  replacePositions(data) {
    const open = (data.positions || []).filter((p) => p && p.symbol != null && p.quantity !== 0);
    this.positions = new Map(open.map((p) => [p.symbol, p]));
    if (typeof data.totalValue === "number") this.totalValue = data.totalValue;
    this.changed("positions");
    return true;
  }
  mergePosition(data) {
    if (data.symbol == null) return false;
    const positions = new Map(this.positions);
    if (data.quantity === 0) positions.delete(data.symbol);
    else positions.set(data.symbol, { ...positions.get(data.symbol), ...data });
    this.positions = positions;
    if (typeof data.totalValue === "number") this.totalValue = data.totalValue;
    this.changed("positions");
    return true;
  }
  mergePrices(data) {
    const list = data.initializing ? data.prices || [] : [data];
    for (const price of list) {
      if (!price || price.symbol == null) continue;
      const merged = price.delta ? { ...this.prices.get(price.symbol), ...price } : price;
      this.prices.set(price.symbol, merged);
      this.changed(`prices:${price.symbol}`);
    }
    return list.length > 0;
  }
  /** Forget what belongs to the user (on logout, or when another user logs in). */
  clearUser() {
    this.orders = /* @__PURE__ */ new Map();
    this.positions = /* @__PURE__ */ new Map();
    this.totalValue = null;
    this.changed("orders");
    this.changed("positions");
  }
  /**
   * The events a new subscriber of `stream` needs to show the current state at once
   * (a snapshot rebuilt from the merged state), or null for streams without one.
   * @param {string} stream @param {{symbols: string[]|null}} params
   */
  snapshotEvents(stream, params) {
    const timestamp = (/* @__PURE__ */ new Date()).toISOString();
    const orders = { type: "order:update", data: { snapshot: true, orders: [...this.orders.values()], timestamp } };
    const positions = {
      type: "position:update",
      data: { snapshot: true, positions: [...this.positions.values()], totalValue: this.totalValue ?? 0, timestamp }
    };
    switch (stream) {
      case "orders":
        return [orders];
      case "positions":
        return [positions];
      case "trading":
        return [orders, positions];
      case "prices": {
        const wanted = params.symbols ? params.symbols.filter((s) => this.prices.has(s)) : [...this.prices.keys()];
        const prices = wanted.map((s) => this.prices.get(s));
        return [{ type: "price:update", data: { initializing: true, prices, timestamp } }];
      }
      default:
        return null;
    }
  }
};
function pick(data, keys) {
  const out = {};
  for (const key of keys) if (data[key] !== void 0) out[key] = data[key];
  return out;
}

// src/sequence.js
var ITEM_FIELDS = { "strategy:update": "strategyId", "scan:result": "scanId" };
var SEQUENCED = /* @__PURE__ */ new Set(["orders", "positions", "trading", "alerts", "ai-decisions", "strategies", "scans", "agents", "providers", "chain"]);
var sequenced = (stream) => SEQUENCED.has(stream.split("/")[0]);
var keyOf = (type, data) => {
  const field = ITEM_FIELDS[type];
  return field && data && data[field] != null ? `${type}:${data[field]}` : type;
};
var numbered = (seq) => typeof seq === "number" && Number.isInteger(seq) && seq > 0;
var SequenceWatch = class {
  constructor() {
    this.last = /* @__PURE__ */ new Map();
    this.tried = /* @__PURE__ */ new Set();
  }
  /**
   * The hole an event would leave, or null (no seq, no baseline yet, consecutive, or
   * already seen: a replay's overlap, dropped by id).
   * @param {string} type @param {any} data @param {number|null|undefined} seq
   * @returns {Hole|null}
   */
  hole(type, data, seq) {
    if (!numbered(seq)) return null;
    const key = keyOf(type, data);
    const last = this.last.get(key);
    if (last === void 0 || seq <= last + 1) return null;
    return { key, after: last, missing: seq - last - 1 };
  }
  /**
   * Whether to repair `hole`: true the first time, false when a repair from the same
   * point already showed it (the server does not have the events: the hole is accepted,
   * and the sequence goes on after it).
   * @param {Hole} hole
   */
  shouldRepair(hole) {
    const mark = `${hole.key}#${hole.after}`;
    if (this.tried.delete(mark)) {
      this.last.set(hole.key, hole.after + hole.missing);
      return false;
    }
    this.tried.add(mark);
    return true;
  }
  /**
   * An event was delivered; true when it filled a hole a repair was started for.
   * @param {string} type @param {any} data @param {number|null|undefined} seq
   */
  note(type, data, seq) {
    if (!numbered(seq)) return false;
    const key = keyOf(type, data);
    const last = this.last.get(key);
    if (last !== void 0 && seq <= last) return false;
    this.last.set(key, seq);
    return this.tried.size > 0 && last !== void 0 && this.tried.delete(`${key}#${last}`);
  }
  /** A new baseline: after a reset, a snapshot, or for another user. */
  clear() {
    this.last.clear();
    this.tried.clear();
  }
};

// src/registry.js
var SNAPSHOT_STREAMS = /* @__PURE__ */ new Set(["orders", "positions", "trading", "prices"]);
var RECENT_LIMIT = 100;
var Entry = class {
  constructor(key, stream, params, dedupSize) {
    this.key = key;
    this.stream = stream;
    this.params = params;
    this.listeners = /* @__PURE__ */ new Set();
    this.refs = 0;
    this.lastId = null;
    this.lastSeq = 0;
    this.ids = new RecentIds(dedupSize);
    this.seqs = sequenced(stream) ? new SequenceWatch() : null;
    this.recent = [];
    this.primed = false;
    this.started = false;
    this.state = "connecting";
    this.detail = "";
    this.blocked = null;
    this.events = 0;
    this.dupes = 0;
    this.gaps = 0;
    this.repaired = 0;
    this.missed = 0;
    this.lastEventAt = null;
    this.idleSince = null;
  }
  get isPublic() {
    return isPublic(this.stream);
  }
  /** @returns {import("../types/tickwire").StreamStats} */
  stats() {
    return {
      stream: this.stream,
      state: this.state,
      detail: this.detail,
      subscribers: this.refs,
      events: this.events,
      dupes: this.dupes,
      gaps: this.gaps,
      repaired: this.repaired,
      missed: this.missed,
      lastEventAt: this.lastEventAt,
      lastEventId: this.lastId
    };
  }
};
var Registry = class {
  /**
   * @param {object} deps
   * @param {import("../types/tickwire").Env} deps.env
   * @param {import("./local.js").LocalState} deps.local
   * @param {import("./throttle.js").KeyThrottle} deps.throttle price callbacks
   * @param {number} deps.dedupSize @param {number} deps.cacheTtlMs
   */
  constructor({ env, local, throttle, dedupSize, cacheTtlMs }) {
    this.env = env;
    this.local = local;
    this.throttle = throttle;
    this.dedupSize = dedupSize;
    this.cacheTtlMs = cacheTtlMs;
    this.entries = /* @__PURE__ */ new Map();
    this.seq = 0;
  }
  /** The key equal subscriptions share. */
  keyOf(stream, options = {}) {
    return subscriptionKey(stream, options).key;
  }
  /** Add a subscriber; returns its entry and whether the wire plan changes. */
  acquire(stream, options, listener) {
    this.sweep();
    const { key, params } = subscriptionKey(stream, options);
    let entry = this.entries.get(key);
    const created = !entry;
    if (!entry) this.entries.set(key, entry = new Entry(key, stream, params, this.dedupSize));
    const wasIdle = entry.refs === 0;
    entry.refs += 1;
    entry.idleSince = null;
    entry.listeners.add(listener);
    if (entry.primed) this.replayTo(entry, listener);
    return { entry, changed: created || wasIdle };
  }
  /** Remove a subscriber; true when the entry has none left (its wire can go). */
  release(entry, listener) {
    if (!entry.listeners.delete(listener)) return false;
    entry.refs -= 1;
    if (entry.refs > 0) return false;
    entry.idleSince = this.env.now();
    return true;
  }
  /** Entries with subscribers. */
  active() {
    return [...this.entries.values()].filter((e) => e.refs > 0);
  }
  /** Forget entries idle for longer than the cache TTL. */
  sweep() {
    const now = this.env.now();
    for (const [key, entry] of this.entries) {
      if (entry.refs === 0 && entry.idleSince !== null && now - entry.idleSince >= this.cacheTtlMs) {
        this.entries.delete(key);
      }
    }
  }
  /** The position `id` was reached by every entry of a wire (they read the same log). */
  advance(entries, id) {
    const seq = ++this.seq;
    for (const entry of entries) {
      entry.lastId = id;
      entry.lastSeq = seq;
    }
  }
  /**
   * Whether an event leaves a hole in `entry` that a repair should fill: false when none,
   * or when a repair from the same point showed it already (then it counts as missed).
   * @param {Entry} entry @param {{type: string, id: string|null, data: any, seq?: number|null}} ev
   */
  needsRepair(entry, ev) {
    if (!entry.seqs || ev.id && entry.ids.has(ev.id)) return false;
    const hole = entry.seqs.hole(ev.type, ev.data, ev.seq);
    if (!hole) return false;
    if (entry.seqs.shouldRepair(hole)) {
      entry.gaps += 1;
      return true;
    }
    entry.missed += hole.missing;
    return false;
  }
  /**
   * Hand one event to an entry: dedup by id, stats, local state, then its subscribers
   * (price ticks through the per-symbol throttle). Returns false for a duplicate.
   * @param {Entry} entry @param {{type: string, id: string|null, data: any, seq?: number|null, replayed?: boolean}} ev
   */
  deliver(entry, ev) {
    if (ev.id && !entry.ids.add(ev.id)) {
      entry.dupes += 1;
      return false;
    }
    entry.events += 1;
    entry.lastEventAt = this.env.now();
    const reset = ev.type === "stream:reset";
    const snapshot = Boolean(ev.data && (ev.data.snapshot || ev.data.initializing));
    if (reset) {
      entry.gaps += 1;
      entry.recent = [];
    }
    if (reset || snapshot) entry.seqs?.clear();
    if (entry.seqs?.note(ev.type, ev.data, ev.seq)) entry.repaired += 1;
    this.local.apply(ev.type, ev.data);
    if (!SNAPSHOT_STREAMS.has(entry.stream) && !reset && ev.type !== "connected") {
      entry.recent.push(ev);
      if (entry.recent.length > RECENT_LIMIT) entry.recent.shift();
    }
    if (snapshot) entry.primed = true;
    else if (!SNAPSHOT_STREAMS.has(entry.stream)) entry.primed = true;
    const event = {
      stream: entry.stream,
      type: ev.type,
      id: ev.id ?? null,
      data: ev.data,
      seq: ev.seq ?? null,
      replayed: Boolean(ev.replayed),
      reset
    };
    const tick = ev.type === "price:update" && ev.data && !ev.data.initializing && ev.data.symbol != null;
    if (tick) this.throttle.push(`${entry.key}|${ev.data.symbol}`, () => this.emit(entry, event));
    else this.emit(entry, event);
    return true;
  }
  emit(entry, event) {
    for (const listener of [...entry.listeners]) call(this.env, listener.onEvent, event);
  }
  /** Show a new subscriber of a primed entry what it has: a snapshot from local state, or recent events. */
  replayTo(entry, listener) {
    const events = this.local.snapshotEvents(entry.stream, entry.params) ?? entry.recent;
    for (const ev of events) {
      const event = { stream: entry.stream, type: ev.type, id: ev.id ?? null, data: ev.data, seq: ev.seq ?? null, replayed: true, reset: false, cached: true };
      call(this.env, listener.onEvent, event);
    }
  }
  /** Forget the resume ids, dedup memory and recent events of user streams (another user). */
  forgetUser() {
    for (const entry of this.entries.values()) {
      if (entry.isPublic) continue;
      entry.lastId = null;
      entry.ids = new RecentIds(this.dedupSize);
      entry.seqs?.clear();
      entry.recent = [];
      entry.primed = false;
      entry.started = false;
    }
  }
};
function call(env, fn, arg) {
  if (typeof fn !== "function") return;
  try {
    fn(arg);
  } catch (err) {
    env.console?.error("tickwire: a subscriber's callback failed", err);
  }
}

// src/status.js
var STATE_COLORS = Object.freeze({
  connecting: "yellow",
  connected: "green",
  reconnecting: "yellow",
  fallback: "yellow",
  disconnected: "red",
  closed: "red"
});
var colorOf = (state) => STATE_COLORS[state] ?? "red";

// src/throttle.js
var KeyThrottle = class {
  /** @param {import("../types/tickwire").Env} env @param {number} windowMs 0 = no throttling */
  constructor(env, windowMs) {
    this.env = env;
    this.windowMs = windowMs;
    this.keys = /* @__PURE__ */ new Map();
  }
  /** Run `deliver` now, or at the end of `key`'s window in place of any earlier pending call. */
  push(key, deliver) {
    if (this.windowMs <= 0) return deliver();
    const slot = this.keys.get(key);
    if (slot) {
      slot.pending = deliver;
      return void 0;
    }
    this.open(key);
    return deliver();
  }
  open(key) {
    const slot = { timer: null, pending: null };
    slot.timer = this.env.setTimeout(() => {
      this.keys.delete(key);
      if (slot.pending) this.push(key, slot.pending);
    }, this.windowMs);
    this.keys.set(key, slot);
  }
  clear() {
    for (const slot of this.keys.values()) this.env.clearTimeout(slot.timer);
    this.keys.clear();
  }
};
var FrameBatcher = class {
  /** @param {import("../types/tickwire").Env} env */
  constructor(env) {
    this.env = env;
    this.listeners = /* @__PURE__ */ new Map();
    this.dirty = /* @__PURE__ */ new Set();
    this.scheduled = false;
  }
  /** Watch `topic`; returns the function that stops watching. */
  subscribe(topic, listener) {
    let set = this.listeners.get(topic);
    if (!set) this.listeners.set(topic, set = /* @__PURE__ */ new Set());
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(topic) === set) this.listeners.delete(topic);
    };
  }
  /** Announce `topic` on the next frame (once, however often it is marked). */
  mark(topic) {
    if (!this.listeners.has(topic) && !this.listeners.has("*")) return;
    this.dirty.add(topic);
    if (this.scheduled) return;
    this.scheduled = true;
    this.env.requestAnimationFrame(() => this.flush());
  }
  flush() {
    this.scheduled = false;
    const topics = [...this.dirty];
    this.dirty.clear();
    const called = /* @__PURE__ */ new Set();
    for (const topic of [...topics, "*"]) {
      for (const listener of [...this.listeners.get(topic) || []]) {
        if (called.has(listener)) continue;
        called.add(listener);
        try {
          listener();
        } catch (err) {
          this.env.console?.error("tickwire: a renderer failed", err);
        }
      }
    }
  }
};

// src/client.js
var DEFAULTS = Object.freeze({
  baseUrl: "",
  prefix: "/api/stream",
  transport: "auto",
  protocol: "json",
  credentials: "same-origin",
  sseReader: "auto",
  useMe: true,
  staleTimeoutMs: 9e4,
  connectTimeoutMs: 1e4,
  pingIntervalMs: 25e3,
  backoff: DEFAULT_BACKOFF,
  fallbackAfter: 5,
  probeIntervalMs: 3e4,
  maxAttempts: Infinity,
  pollIntervalMs: 1e3,
  pollWaitS: 25,
  priceThrottleMs: 100,
  cacheTtlMs: 3e4,
  dedupSize: 1e3,
  batchMs: 10,
  refreshMarginMs: 3e4,
  hiddenReconnectMs: 6e4
});
var TickwireClient = class {
  /** @param {import("../types/tickwire").ClientOptions} [options] */
  constructor(options = {}) {
    const { token = null, getToken = null, env = {}, ...rest } = options;
    this.options = { ...DEFAULTS, ...rest, backoff: { ...DEFAULT_BACKOFF, ...rest.backoff || {} } };
    this.env = makeEnv(env);
    this.batcher = new FrameBatcher(this.env);
    this.renderThrottle = new KeyThrottle(this.env, this.options.priceThrottleMs);
    this.statsThrottle = new KeyThrottle(this.env, 250);
    this.local = new LocalState((topic) => this.localChanged(topic));
    this.registry = new Registry({
      env: this.env,
      local: this.local,
      throttle: new KeyThrottle(this.env, this.options.priceThrottleMs),
      dedupSize: this.options.dedupSize,
      cacheTtlMs: this.options.cacheTtlMs
    });
    this.auth = new TokenManager(
      this.env,
      { token, getToken, refreshMarginMs: this.options.refreshMarginMs },
      (fresh) => this.controller.transport?.reauthenticate?.(fresh)
    );
    this.statusListeners = /* @__PURE__ */ new Set();
    this.userListeners = /* @__PURE__ */ new Set();
    this.priceHandles = /* @__PURE__ */ new Map();
    this.controller = new Controller(this);
    this.watchBrowser();
    this.controller.start();
  }
  /**
   * Subscribe to a stream. Equal subscriptions (same stream and parameters) share one.
   * @param {string} stream e.g. "orders", "prices", "strategies/s1"
   * @param {import("../types/tickwire").SubscribeOptions} [options]
   * @returns {import("../types/tickwire").Subscription}
   */
  subscribe(stream, options = {}) {
    if (this.controller.closed) throw new Error("tickwire: the client is closed");
    const listener = { onEvent: options.onEvent };
    const { entry, changed } = this.registry.acquire(stream, options, listener);
    if (changed) this.scheduleReplan();
    this.statusChanged();
    let released = false;
    return {
      stream,
      key: entry.key,
      release: () => {
        if (released) return;
        released = true;
        if (this.registry.release(entry, listener)) this.scheduleReplan();
        this.statusChanged();
      }
    };
  }
  /** The seeds' name: subscribe to prices of `symbols` (release with `unsubscribePrices`). */
  subscribePrices(symbols, options = {}) {
    const handle = this.subscribe("prices", { ...options, symbols });
    const list = this.priceHandles.get(handle.key) ?? [];
    list.push(handle);
    this.priceHandles.set(handle.key, list);
    return handle;
  }
  /** Release the latest `subscribePrices(symbols)`. */
  unsubscribePrices(symbols) {
    const key = this.registry.keyOf("prices", { symbols });
    this.priceHandles.get(key)?.pop()?.release();
  }
  /**
   * What a new subscriber of `stream` would be shown at once (cached snapshot or recent
   * events), without subscribing; [] when nothing is cached.
   */
  peek(stream, options = {}) {
    const entry = this.registry.entries.get(this.registry.keyOf(stream, options));
    if (!entry || !entry.primed) return [];
    const events = [];
    this.registry.replayTo(entry, { onEvent: (e) => events.push(e) });
    return events;
  }
  /** @returns {import("../types/tickwire").Status} */
  get status() {
    const c = this.controller;
    const state = c.state;
    const streams = {};
    for (const entry of this.registry.entries.values()) if (entry.refs > 0) streams[entry.key] = entry.stats();
    return {
      state,
      color: colorOf(state),
      transport: c.closed ? null : c.transport?.kind ?? null,
      protocol: c.transport?.kind === "ws" ? this.options.protocol : null,
      rttMs: c.transport?.kind === "ws" ? c.rttMs : null,
      fallbackReason: c.fallbackReason,
      lastError: c.gaveUp ?? c.lastError,
      online: this.env.navigator?.onLine ?? true,
      user: this.auth.user,
      streams
    };
  }
  /** Call `listener(status)` on every change of state; returns the function that stops it. */
  onStatus(listener) {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }
  /**
   * Watch a topic of the local state or status, announced at most once per animation frame:
   * "orders", "positions", "prices", "prices:AAPL", "status", "stats", or "*".
   */
  watch(topic, listener) {
    return this.batcher.subscribe(topic, listener);
  }
  /** Call `listener()` when the user changes (login as another user, logout); returns its remover. */
  onUserChange(listener) {
    this.userListeners.add(listener);
    return () => this.userListeners.delete(listener);
  }
  // -- alerts (SPEC 13): the JSON API with this client's credentials ------------------------
  /**
   * The user's unacknowledged alerts, kept current from the history and the `alerts` stream;
   * `feed.ack(alertId)`, `feed.onChange(fn)`, `feed.release()`.
   * @param {{limit?: number}} [options]
   */
  alerts(options = {}) {
    return new AlertFeed(this, options);
  }
  /** `POST /api/alerts/{alertId}/ack`: `{alertId, ackedAt, by}`; `alert:ack` reaches every tab. */
  ackAlert(alertId) {
    return apiRequest(this, "POST", alertsPath(alertId, "ack"));
  }
  /** `GET /api/alerts`: `{alerts, next}`, newest first (`next` is the `before` of the next page). */
  alertHistory({ unacked = false, limit = 100, before = null } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (unacked) query.set("unacked", "true");
    if (before) query.set("before", before);
    return apiRequest(this, "GET", `${alertsPath()}?${query}`);
  }
  /** `GET /api/alerts/rules`: the user's rules, oldest first. */
  async alertRules() {
    return (await apiRequest(this, "GET", alertsPath("rules"))).rules;
  }
  /** `POST /api/alerts/rules`: the new rule (with its `ruleId`); a 400 names the bad field. */
  createAlertRule(rule) {
    return apiRequest(this, "POST", alertsPath("rules"), rule);
  }
  /** `PATCH /api/alerts/rules/{ruleId}` (`{enabled: false}`, a threshold...): the rule. */
  updateAlertRule(ruleId, changes) {
    return apiRequest(this, "PATCH", alertsPath("rules", ruleId), changes);
  }
  /** `DELETE /api/alerts/rules/{ruleId}`. */
  async deleteAlertRule(ruleId) {
    await apiRequest(this, "DELETE", alertsPath("rules", ruleId));
  }
  /** Reconnect now (also clears refusals and a give-up). */
  reconnect() {
    this.controller.reconnectNow({ manual: true });
  }
  /** Switch transports ("auto", "ws", "sse", "poll"); every stream resumes on the new one. */
  setTransport(transport) {
    this.options.transport = transport;
    this.controller.fallbackReason = null;
    this.controller.probe?.close();
    this.controller.probe = null;
    this.controller.clearRetry("probe");
    this.controller.start();
  }
  /**
   * Log in: `token` from now on (or, without one, the session cookie changed). Public
   * subscriptions keep flowing; the user's streams start (again) for the new user.
   */
  login(token) {
    const before = this.auth.user;
    const cookie = token === void 0;
    this.auth.set(cookie ? null : token);
    if (cookie || this.auth.user !== before) this.forgetUser();
    this.unblockAll();
    const transport = this.controller.transport;
    if (transport?.kind === "ws" && !cookie && !transport.user && transport.isUp()) {
      transport.reauthenticate(token);
      this.controller.replan();
    } else if (transport?.kind === "ws") {
      this.controller.replan();
      transport.restart();
    } else {
      this.controller.replan();
      transport?.restartUserLinks();
    }
    this.statusChanged();
  }
  /** Log out: the user's streams stop and their local state is cleared; public ones go on. */
  logout() {
    this.auth.logout();
    this.forgetUser();
    for (const entry of this.registry.entries.values()) {
      if (!entry.isPublic) Object.assign(entry, { state: "unauthorized", detail: "logged out" });
    }
    this.controller.replan();
    if (this.controller.transport?.kind === "ws") this.controller.transport.restart();
    this.statusChanged();
  }
  /** Stop everything; the client cannot be used again. */
  close() {
    this.controller.close();
    this.auth.close();
    this.renderThrottle.clear();
    this.statsThrottle.clear();
    this.registry.throttle.clear();
    this.unwatchBrowser?.();
  }
  // -- internals, used by the controller and the transports --------------------------------
  /** Entries that should be on the wire now. */
  wantedEntries() {
    return this.registry.active().filter((e) => !e.blocked && (e.isPublic || !this.auth.anonymous));
  }
  scheduleReplan() {
    if (this.replanTimer) return;
    this.replanTimer = this.env.setTimeout(() => {
      this.replanTimer = null;
      this.controller.replan();
    }, 0);
  }
  /**
   * An event arrived on `wire`. Returns true when it revealed a hole (a `seq` jump) in one
   * of the wire's streams: then nothing of it is delivered nor resumed past, and the
   * transport reads the wire again from its resume id (which replays the missing events).
   */
  onWireEvent(wire, ev) {
    const routed = wire.route(ev.type, ev.data);
    let repair = false;
    for (const [entry, data] of routed) repair = this.registry.needsRepair(entry, { ...ev, data }) || repair;
    if (repair) {
      this.marks("stats");
      return true;
    }
    let delivered = false;
    for (const [entry, data] of routed) {
      delivered = this.registry.deliver(entry, { ...ev, data }) || delivered;
    }
    if (ev.id) this.registry.advance(wire.entries, ev.id);
    if (ev.type === "stream:reset") this.marks("stats");
    if (delivered) this.marks("stats");
    return false;
  }
  markWire(wire, state) {
    for (const entry of wire.entries) {
      if (entry.blocked) continue;
      Object.assign(entry, { state, detail: "" });
      if (state === "live") entry.started = true;
    }
    this.statusChanged();
  }
  blockEntries(entries, code, detail) {
    for (const entry of entries) Object.assign(entry, { blocked: code, state: code, detail: detail ?? "" });
    this.statusChanged();
  }
  blockUserStreams(code, detail) {
    this.blockEntries([...this.registry.entries.values()].filter((e) => !e.isPublic), code, detail);
  }
  unblockAll() {
    for (const entry of this.registry.entries.values()) {
      if (entry.blocked || entry.state === "unauthorized") Object.assign(entry, { blocked: null, state: "connecting", detail: "" });
    }
  }
  forgetUser() {
    this.registry.forgetUser();
    this.local.clearUser();
    for (const listener of [...this.userListeners]) listener();
  }
  localChanged(topic) {
    if (topic.startsWith("prices:")) {
      this.renderThrottle.push(topic, () => {
        this.batcher.mark(topic);
        this.batcher.mark("prices");
      });
    } else {
      this.batcher.mark(topic);
    }
  }
  marks(topic) {
    if (topic === "stats") this.statsThrottle.push("stats", () => this.batcher.mark("stats"));
    else this.batcher.mark(topic);
  }
  statusChanged() {
    const status = this.status;
    const streams = Object.entries(status.streams).map(([k, s]) => `${k}:${s.state}:${s.detail}`);
    const signature = `${status.state}|${status.transport}|${status.fallbackReason}|${status.lastError}|${streams.join(",")}`;
    this.marks("stats");
    if (signature === this.lastSignature) return;
    this.lastSignature = signature;
    this.batcher.mark("status");
    for (const listener of [...this.statusListeners]) {
      try {
        listener(status);
      } catch (err) {
        this.env.console?.error("tickwire: a status listener failed", err);
      }
    }
  }
  watchBrowser() {
    const { window: win, document: doc } = this.env;
    const online = () => this.controller.reconnectNow();
    const offline = () => this.statusChanged();
    let hiddenAt = null;
    const visibility = () => {
      if (isHidden(this.env)) {
        hiddenAt = this.env.now();
      } else if (hiddenAt !== null) {
        const away = this.env.now() - hiddenAt;
        hiddenAt = null;
        if (away >= this.options.hiddenReconnectMs) this.controller.reconnectNow();
        else this.controller.transport?.probe?.();
      }
    };
    win?.addEventListener?.("online", online);
    win?.addEventListener?.("offline", offline);
    doc?.addEventListener?.("visibilitychange", visibility);
    this.unwatchBrowser = () => {
      win?.removeEventListener?.("online", online);
      win?.removeEventListener?.("offline", offline);
      doc?.removeEventListener?.("visibilitychange", visibility);
    };
  }
};
export {
  AlertFeed,
  DEFAULTS,
  DEFAULT_BACKOFF,
  EVENT_TYPES,
  LocalState,
  PROTOCOL_VERSION,
  PUBLIC_STREAMS,
  STATE_COLORS,
  SseParser,
  TickwireApiError,
  TickwireClient,
  backoffDelay,
  colorOf,
  decode as decodeMsgpack,
  encode as encodeMsgpack,
  isPublic
};

// TickwireClient: the public face of the SDK (SPEC section 11).
//
//   const tw = new TickwireClient({ baseUrl: "", getToken, transport: "auto" });
//   const h = tw.subscribe("orders", { onEvent: (e) => ... });   // ref-counted
//   tw.status; tw.onStatus(fn); tw.local.orders; h.release(); tw.close();
//
// Subscriptions live in the registry, connections in the controller; this class wires
// them together, keeps the local state and the status, and watches the browser
// (online, visibility).

import { AlertFeed } from "./alerts.js";
import { alertsPath, apiRequest } from "./api.js";
import { DEFAULT_BACKOFF } from "./backoff.js";
import { TokenManager } from "./auth.js";
import { Controller } from "./controller.js";
import { isHidden, makeEnv } from "./env.js";
import { LocalState } from "./local.js";
import { Registry } from "./registry.js";
import { colorOf } from "./status.js";
import { FrameBatcher, KeyThrottle } from "./throttle.js";

/** @type {Required<Omit<import("../types/tickwire").ClientOptions, "token"|"getToken"|"env">>} */
export const DEFAULTS = Object.freeze({
  baseUrl: "",
  prefix: "/api/stream",
  transport: "auto",
  protocol: "json",
  credentials: "same-origin",
  sseReader: "auto",
  useMe: true,
  staleTimeoutMs: 90000,
  connectTimeoutMs: 10000,
  pingIntervalMs: 25000,
  backoff: DEFAULT_BACKOFF,
  fallbackAfter: 5,
  probeIntervalMs: 30000,
  maxAttempts: Infinity,
  pollIntervalMs: 1000,
  pollWaitS: 25,
  priceThrottleMs: 100,
  cacheTtlMs: 30000,
  dedupSize: 1000,
  batchMs: 10,
  refreshMarginMs: 30000,
  hiddenReconnectMs: 60000,
});

export class TickwireClient {
  /** @param {import("../types/tickwire").ClientOptions} [options] */
  constructor(options = {}) {
    const { token = null, getToken = null, env = {}, ...rest } = options;
    this.options = { ...DEFAULTS, ...rest, backoff: { ...DEFAULT_BACKOFF, ...(rest.backoff || {}) } };
    this.env = makeEnv(env);
    this.batcher = new FrameBatcher(this.env);
    this.renderThrottle = new KeyThrottle(this.env, this.options.priceThrottleMs);
    this.statsThrottle = new KeyThrottle(this.env, 250); // counters: a few renders a second
    /** Local state merged from snapshots and deltas: orders, positions, prices, totalValue. */
    this.local = new LocalState((topic) => this.localChanged(topic));
    this.registry = new Registry({
      env: this.env,
      local: this.local,
      throttle: new KeyThrottle(this.env, this.options.priceThrottleMs),
      dedupSize: this.options.dedupSize,
      cacheTtlMs: this.options.cacheTtlMs,
    });
    this.auth = new TokenManager(this.env, { token, getToken, refreshMarginMs: this.options.refreshMarginMs }, (fresh) =>
      this.controller.transport?.reauthenticate?.(fresh),
    );
    this.statusListeners = new Set();
    this.userListeners = new Set();
    this.priceHandles = new Map();
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
      },
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
      streams,
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
    const cookie = token === undefined;
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
    return this.registry
      .active()
      .filter((e) => !e.blocked && (e.isPublic || !this.auth.anonymous));
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
}

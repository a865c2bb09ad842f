// The connection controller: which transport carries the wires, when a link that went
// down is retried (backoff), when streaming gives way to polling (5 failed attempts, or
// no WebSocket/EventSource) and when it comes back (a probe every 30 s), and what the
// status says. Transports only report: up, down (and why), events, round trips.

import { backoffDelay } from "./backoff.js";
import { isOffline } from "./env.js";
import { PROTOCOL_VERSION } from "./streams.js";
import { PollTransport } from "./transports/poll.js";
import { SseTransport } from "./transports/sse.js";
import { endpoint } from "./transports/watchdog.js";
import { WsTransport } from "./transports/ws.js";
import { planWires } from "./wires.js";

const TRANSPORTS = { ws: WsTransport, sse: SseTransport, poll: PollTransport };
/** In "auto", failed WebSocket attempts before SSE is tried. */
const WS_TRIES_IN_AUTO = 2;

/**
 * @typedef {object} TransportContext what a transport may use and report to
 * @property {import("../types/tickwire").Env} env
 * @property {Required<import("../types/tickwire").ClientOptions>} options
 * @property {import("./auth.js").TokenManager} auth
 */

export class Controller {
  /** @param {import("./client.js").TickwireClient} client */
  constructor(client) {
    this.client = client;
    this.env = client.env;
    this.options = client.options;
    this.timers = new Map(); // link key -> retry timer
    this.attempts = new Map(); // link key -> consecutive failures (backoff index)
    this.linkFailures = new Map(); // link key -> its failed attempts in a row
    this.carried = 0; // failed WebSocket attempts before "auto" went on to SSE
    this.totalFailures = 0; // consecutive failed attempts of any kind (gives up after maxAttempts)
    this.everUp = false;
    this.useMe = client.options.useMe;
    this.fallbackReason = null;
    this.gaveUp = null;
    this.closed = false;
    this.rttMs = null;
    this.lastError = null;
    this.probe = null;
    this.probeIndex = 0;
    this.worked = new Set(); // transports that carried data at least once
  }

  /** Streaming transports this host has, in order of preference. */
  candidates() {
    const { transport } = this.options;
    const ws = typeof this.env.WebSocket === "function";
    const sse = SseTransport.available(this.env);
    if (transport === "ws") return ws ? ["ws"] : [];
    if (transport === "sse") return sse ? ["sse"] : [];
    if (transport === "poll") return [];
    return [...(ws ? ["ws"] : []), ...(sse ? ["sse"] : [])];
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
      checkVersion: (v) => v === undefined || v === null || Math.floor(Number(v)) === PROTOCOL_VERSION,
      event: (wire, ev) => self.client.onWireEvent(wire, ev),
      up: (t, key) => self.onUp(t, key),
      down: (t, key, info) => self.onDown(t, key, info),
      forget: (_t, key) => self.clearRetry(key),
      rtt: (ms) => self.onRtt(ms),
      subscribed: (wire) => wire && self.client.markWire(wire, "live"),
      streamError: (wire, code, message) => self.onStreamError(wire, code, message),
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
      // A link's wire is live when its response opens; over a WebSocket each stream is live
      // at its `subscribed` (or refused by an `error`).
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
    const wsBlocked = !this.worked.has("ws") && this.failures >= WS_TRIES_IN_AUTO; // never worked: a proxy without WebSocket
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
    if (transport.kind === "ws") auth.token = null; // the socket closed: reconnect for the public streams
    this.replan();
    if (transport.kind === "ws") this.retry(transport, key, { ...info, failed: false, now: true });
    this.changed();
  }

  /** 400/403/404 on a link: a `me` response that fails is split; else its streams are refused. */
  refused(transport, key, info) {
    const wire = transport.wires.get(key);
    if (wire?.composite && this.useMe) {
      this.useMe = false; // a server without /me, or one part refused: one response per stream
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
    if (timer !== undefined) this.env.clearTimeout(timer);
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
}

function wsUrl(env, options) {
  const base = options.baseUrl || `${env.location?.protocol ?? "http:"}//${env.location?.host ?? "localhost"}`;
  return base.replace(/^http/, "ws") + options.prefix + "/ws";
}

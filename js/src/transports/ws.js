// One WebSocket for every stream (SPEC 6): subscribe/unsubscribe changes are batched,
// each stream resumes from its own last id, `ping` commands measure the round trip and
// keep the watchdog fed (a page never sees the server's ping frames).

import { decode, encode } from "../msgpack.js";
import { Watchdog } from "./watchdog.js";

/** What a close code means for the client (codes.py of the server). */
export function closeInfo(code, reason, { wasUp, expired }) {
  if (code === 4029) return { fatal: "limit", reason: reason || "connection limit: a newer connection of this user took over" };
  if (code === 1008) return { fatal: "policy", reason: reason || "policy violation" };
  if (code === 4001) return { unauthorized: true, expired, reason: reason || "unauthorized" };
  if (code === 1001) return { now: true, reason: reason || "server going away" };
  return { failed: !wasUp, reason: reason || `closed (${code})` };
}

export class WsTransport {
  /** @param {import("../controller.js").TransportContext} ctx */
  constructor(ctx) {
    this.ctx = ctx;
    this.kind = "ws";
    this.wires = new Map();
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
      this.started = true; // later connections: restart(), when the controller says so
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
    this.sent = new Map();
    let token = null;
    try {
      token = await this.ctx.auth.ensure();
    } catch {
      token = null; // getToken failed: connect anonymously; user streams get `unauthorized`
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
    socket.onerror = () => {}; // onclose follows with the code
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
    this.send({ type: "ping", ts: this.ctx.env.now() }); // the pong (or any answer) proves a server is there
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
      const lastEventId = sent ? null : wire.resumeId(); // new symbols need their snapshot
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
          if (sent && !sent.repairing) sent.replaying = false; // a repair's replay ends at its own answer
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
      for (const wire of this.wires.values()) this.ctx.event(wire, ev);
      return;
    }
    const wire = this.wires.get(msg.stream);
    const sent = this.sent.get(msg.stream);
    if (!wire || sent?.repairing) return; // unsubscribed meanwhile, or sent before a resubscribe
    ev.replayed = Boolean(sent?.replaying);
    if (this.ctx.event(wire, ev)) this.resubscribe(msg.stream);
  }

  /** Send a fresh token on the open socket (same user: extends it; SPEC 5). */
  reauthenticate(token) {
    this.token = token;
    if (this.socket?.readyState !== 1 || !token) return;
    this.authPending = !this.user; // subscribe the user's streams once `authenticated` arrives
    this.send({ type: "auth", token });
  }

  stale() {
    if (!this.wasUp) return this.abort({ failed: true, reason: "WebSocket did not open in time" });
    this.abort({ reason: `no data for ${Math.round(this.ctx.options.staleTimeoutMs / 1000)} s: connection is stale` });
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
      socket?.close(4000, "client: " + String(info.reason).slice(0, 80));
    } catch {
      /* already closing */
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
      socket?.close(1000, "reconnecting");
    } catch {
      /* ignore */
    }
    this.connect();
  }

  close() {
    this.closed = true;
    const socket = this.socket;
    this.teardown();
    this.generation += 1;
    try {
      socket?.close(1000, "client closed");
    } catch {
      /* ignore */
    }
  }
}

/** One stream of a `subscribe` command. */
function request(wire, lastEventId) {
  const item = { stream: wire.stream };
  if (lastEventId) item.lastEventId = lastEventId;
  if (wire.query.symbols) item.symbols = wire.query.symbols.split(",");
  if (wire.query.userId) item.userId = wire.query.userId;
  return item;
}

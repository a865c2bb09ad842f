// tickwire browser client: the one place that knows how streams travel.
//
// The page asks a StreamClient to open or close named streams and receives every
// event through one callback, whatever the transport: Server-Sent Events (EventSource:
// the browser resumes with Last-Event-ID by itself and sends the session cookie, same
// origin), or one multiplexed WebSocket (wsTransport) that resumes every stream itself.

/** Every event type the server sends (EventSource only reports types it listens to). */
export const EVENT_TYPES = [
  "connected",
  "stream:reset",
  "connection:limit",
  "auth:expired",
  "test",
  "order:update",
  "order:fill",
  "position:update",
  "trade:new",
  "price:update",
  "ai:decision",
  "agent:status",
  "strategy:update",
  "alert:new",
];

/** Connection states: a healthy stream goes idle -> connecting -> live (-> reconnecting -> live). */
export const STATES = ["idle", "connecting", "live", "reconnecting", "failed", "closed", "blocked"];

/**
 * SSE transport. Calls back onState(state, detail) and onEvent(type, id, data);
 * returns { close() }.
 */
function sseTransport(url, { onState, onEvent }) {
  const source = new EventSource(url);
  let opened = false;
  onState("connecting");
  source.onopen = () => {
    opened = true;
    onState("live");
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // The server refused the stream (401, 403, 404, 429...) or it ended for good.
      onState("failed", opened ? "closed by the server" : "refused (not logged in, or rate limited)");
    } else {
      onState("reconnecting", "resuming from the last event id");
    }
  };
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        data = { unparsed: message.data };
      }
      onEvent(type, message.lastEventId || null, data);
      if (type === "connection:limit") {
        // The server closed this connection for a newer one: reconnecting would evict another.
        source.close();
        onState("closed", "closed by the per-user connection limit");
      }
    });
  }
  return {
    close() {
      source.close();
    },
  };
}

/**
 * WebSocket transport: every stream of the page shares one socket (`{base}/ws`,
 * subprotocol tickwire.json, the session cookie authenticates it). The socket opens with
 * the first stream and closes with the last; after a drop it reconnects with backoff and
 * jitter and resubscribes every stream from its last event id (SPEC section 6).
 */
class WebSocketMux {
  constructor(base) {
    this.base = base;
    this.subs = new Map(); // stream path -> { stream, symbols, userId, lastId, onState, onEvent }
    this.socket = null;
    this.timer = null;
    this.attempt = 0;
    this.rid = 0;
  }

  add(sub) {
    this.subs.set(sub.stream, sub);
    sub.onState("connecting");
    if (this.socket?.readyState === WebSocket.OPEN) this.subscribe([sub]);
    else this.connect();
  }

  remove(sub) {
    if (this.subs.get(sub.stream) !== sub) return;
    this.subs.delete(sub.stream);
    if (this.socket?.readyState === WebSocket.OPEN) this.send({ type: "unsubscribe", streams: [sub.stream] });
    if (this.subs.size === 0) this.stop();
  }

  connect() {
    if (this.socket || this.timer) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${this.base}/ws`, "tickwire.json");
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.subscribe([...this.subs.values()]);
    };
    socket.onmessage = (message) => {
      try {
        this.receive(JSON.parse(message.data));
      } catch (err) {
        console.error("tickwire: bad WebSocket message", err);
      }
    };
    socket.onclose = (event) => this.closed(socket, event);
  }

  send(message) {
    this.socket.send(JSON.stringify(message));
  }

  subscribe(subs) {
    if (subs.length === 0) return;
    const streams = subs.map((s) => {
      const item = { stream: s.stream };
      if (s.lastId) item.lastEventId = s.lastId;
      if (s.symbols) item.symbols = s.symbols;
      if (s.userId) item.userId = s.userId;
      return item;
    });
    this.send({ type: "subscribe", rid: String(++this.rid), streams });
  }

  receive(message) {
    const sub = message.stream ? this.subs.get(message.stream) : null;
    if (message.type === "event") {
      // Without a stream the event is about the connection (connection:limit, test): every stream sees it.
      for (const target of sub ? [sub] : message.stream ? [] : [...this.subs.values()]) {
        if (message.id) target.lastId = message.id;
        target.onEvent(message.event, message.id || null, message.data);
      }
    } else if (message.type === "subscribed") {
      for (const { stream, recovered } of message.streams) {
        this.subs.get(stream)?.onState("live", recovered ? "" : "history was lost: fresh snapshot");
      }
    } else if (message.type === "error" && sub) {
      this.subs.delete(sub.stream);
      sub.onState("failed", `${message.code}: ${message.message}`);
    }
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    const final = {
      1008: `refused by the server: ${event.reason}`,
      4001: "unauthorized: log in again",
      4029: "closed by the per-user connection limit",
    }[event.code];
    if (final || this.subs.size === 0) {
      const subs = [...this.subs.values()];
      this.subs.clear();
      for (const sub of subs) sub.onState(event.code === 4029 ? "closed" : "failed", final || "");
      return;
    }
    for (const sub of this.subs.values()) sub.onState("reconnecting", `closed (${event.code}): resuming from the last event ids`);
    const delay = Math.min(30000, 500 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.subs.size) this.connect();
    }, delay);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000);
  }
}

const muxes = new Map(); // base -> WebSocketMux

function wsTransport(url, { onState, onEvent, base, path, params }) {
  if (!muxes.has(base)) muxes.set(base, new WebSocketMux(base));
  const mux = muxes.get(base);
  const sub = { stream: path, lastId: null, onState, onEvent };
  if (params.symbols) sub.symbols = String(params.symbols).split(",");
  if (params.userId) sub.userId = params.userId;
  mux.add(sub);
  return {
    close() {
      mux.remove(sub);
    },
  };
}

/**
 * Transports by name. `maxStreams` is how many streams may be open at once: SSE needs one
 * HTTP/1.1 connection per stream and browsers allow 6 per site (shared by every tab), so the
 * client keeps one free for ordinary requests. A multiplexing transport has no such limit.
 */
const TRANSPORTS = {
  sse: {
    connect: sseTransport,
    maxStreams: 5,
    label: "SSE",
    note: "SSE uses one HTTP/1.1 connection per stream and browsers allow 6 per site, so one stays free for orders.",
  },
  ws: {
    connect: wsTransport,
    maxStreams: 100,
    label: "WebSocket",
    note: "WebSocket carries every stream on one connection (at most 100 streams).",
  },
};

export class StreamClient {
  /**
   * @param {object} options
   * @param {string} [options.base] path prefix of the stream endpoints
   * @param {string} [options.transport] a key of TRANSPORTS
   * @param {(stream: string, type: string, id: string|null, data: object) => void} options.onEvent
   * @param {(stream: string, state: string, detail?: string) => void} [options.onState]
   */
  constructor({ base = "/api/stream", transport = "sse", onEvent, onState = () => {} }) {
    this.base = base;
    this.onEvent = onEvent;
    this.onState = onState;
    this.streams = new Map(); // name -> { path, params, handle, state, detail, count, lastId }
    this.setTransport(transport);
  }

  get transports() {
    return Object.entries(TRANSPORTS).map(([name, t]) => ({ name, label: t.label, maxStreams: t.maxStreams, note: t.note }));
  }

  get openCount() {
    let count = 0;
    for (const entry of this.streams.values()) if (entry.handle) count += 1;
    return count;
  }

  /** Switch transports: open streams are reopened on the new one. */
  setTransport(name) {
    if (!(name in TRANSPORTS)) throw new Error(`unknown transport ${name}`);
    this.transport = name;
    for (const [stream, entry] of this.streams) {
      if (entry.handle) this.open(stream, entry.path, entry.params);
    }
  }

  /**
   * Open (or reopen) stream `name` at `path` (e.g. "prices", "strategies/s1").
   * Returns false, with the stream in state "blocked", when the transport is at its limit.
   */
  open(name, path, params = {}) {
    this.close(name, false);
    const transport = TRANSPORTS[this.transport];
    const query = new URLSearchParams(params).toString();
    const url = `${this.base}/${path}${query ? `?${query}` : ""}`;
    const entry = this.streams.get(name) || { count: 0, lastId: null };
    Object.assign(entry, { path, params, state: "connecting", detail: "", handle: null });
    this.streams.set(name, entry);
    if (this.openCount >= transport.maxStreams) {
      entry.state = "blocked";
      entry.detail = `${transport.label} allows ${transport.maxStreams} open streams per page: disconnect one first`;
      this.onState(name, entry.state, entry.detail);
      return false;
    }
    entry.handle = transport.connect(url, {
      base: this.base,
      path,
      params,
      onState: (state, detail = "") => {
        if (!entry.handle && state !== "connecting") return; // a late callback of a closed stream
        entry.state = state;
        entry.detail = detail;
        if (state === "failed" || state === "closed") entry.handle = null;
        this.onState(name, state, detail);
      },
      onEvent: (type, id, data) => {
        entry.count += 1;
        if (id) entry.lastId = id;
        this.onEvent(name, type, id, data);
      },
    });
    return true;
  }

  close(name, notify = true) {
    const entry = this.streams.get(name);
    if (entry && !entry.handle && entry.state === "blocked") entry.state = "idle";
    if (!entry || !entry.handle) return;
    const handle = entry.handle;
    entry.handle = null;
    handle.close();
    entry.state = "closed";
    entry.detail = "";
    if (notify) this.onState(name, "closed", "");
  }

  closeAll() {
    for (const name of this.streams.keys()) this.close(name);
  }

  isOpen(name) {
    return Boolean(this.streams.get(name)?.handle);
  }

  info(name) {
    return this.streams.get(name) || { state: "idle", detail: "", count: 0, lastId: null };
  }
}

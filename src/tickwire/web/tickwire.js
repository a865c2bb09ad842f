// tickwire browser client: the one place that knows how streams travel.
//
// The page asks a StreamClient to open or close named streams and receives every
// event through one callback, whatever the transport. Today the transport is
// Server-Sent Events (EventSource: the browser resumes with Last-Event-ID by itself
// and sends the session cookie, same origin). A WebSocket transport only has to
// implement the same small interface (see sseTransport) and be added to TRANSPORTS.

/** Every event type the server sends (EventSource only reports types it listens to). */
export const EVENT_TYPES = [
  "connected",
  "stream:reset",
  "connection:limit",
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
 * Transports by name. `maxStreams` is how many streams may be open at once: SSE needs one
 * HTTP/1.1 connection per stream and browsers allow 6 per site (shared by every tab), so the
 * client keeps one free for ordinary requests. A multiplexing transport has no such limit.
 */
const TRANSPORTS = {
  sse: { connect: sseTransport, maxStreams: 5, label: "SSE" },
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
    return Object.entries(TRANSPORTS).map(([name, t]) => ({ name, label: t.label, maxStreams: t.maxStreams }));
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

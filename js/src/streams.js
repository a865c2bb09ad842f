// What the client knows of the server's streams (SPEC sections 2, 3 and 6): which are
// public, which event types each carries (to tell apart the streams of one
// `/api/stream/me` response), and how a subscription is named.

/** Streams anyone may read; every other stream needs a user. */
export const PUBLIC_STREAMS = new Set(["prices", "agents", "providers"]);

/** Events about a connection rather than a stream's data; they carry no id. */
export const CONTROL_TYPES = new Set(["connected", "stream:reset", "connection:limit", "auth:expired", "test"]);

/** Every event type the server sends (an EventSource only reports the types it listens to). */
export const EVENT_TYPES = [
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
  "scan:status",
];

/** The event types of the streams `/api/stream/me` can combine (SPEC 2). */
const PART_TYPES = {
  orders: ["order:update", "order:fill"],
  positions: ["position:update"],
  trading: ["order:update", "order:fill", "position:update", "trade:new"],
  alerts: ["alert:new", "alert:ack"],
  "ai-decisions": ["ai:decision"],
  strategies: ["strategy:update"],
};

/** The protocol's major version this client speaks (`v` of `connected`, `authenticated`, `subscribed`). */
export const PROTOCOL_VERSION = 1;

/** The first path segment: "strategies/s1" -> "strategies". */
export const baseName = (stream) => stream.split("/")[0];

/** @param {string} stream */
export const isPublic = (stream) => PUBLIC_STREAMS.has(baseName(stream));

/**
 * Whether a subscription can travel inside `/api/stream/me`: one of the caller's own
 * streams, without parameters.
 * @param {string} stream @param {{symbols?: string[]|null, userId?: string|null}} params
 */
export function joinsMe(stream, params) {
  return baseName(stream) in PART_TYPES && !params.userId;
}

/**
 * Whether an event of `/api/stream/me` belongs to its part `stream`.
 * @param {string} stream @param {string} type @param {any} data
 */
export function belongsTo(stream, type, data) {
  const [name, item] = stream.split("/");
  const types = PART_TYPES[name];
  if (!types || !types.includes(type)) return false;
  return item === undefined || (data && data.strategyId === item);
}

/**
 * Normalized subscription parameters and the key equal subscriptions share.
 * @param {string} stream
 * @param {{symbols?: string[]|string|null, userId?: string|null}} [options]
 */
export function subscriptionKey(stream, options = {}) {
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

/** The milliseconds part of an id (`{unix_ms}-{token}`), or NaN. */
export function idTime(id) {
  const dash = typeof id === "string" ? id.indexOf("-") : -1;
  return dash > 0 ? Number(id.slice(0, dash)) : NaN;
}

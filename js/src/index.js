// tickwire browser SDK: one client for every stream, over WebSocket, SSE or polling.
// Types: types/tickwire.d.ts. Served by every tickwire server at /tickwire.js.

export { TickwireClient, DEFAULTS } from "./client.js";
export { AlertFeed } from "./alerts.js";
export { TickwireApiError } from "./api.js";
export { STATE_COLORS, colorOf } from "./status.js";
export { backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
export { LocalState } from "./local.js";
export { EVENT_TYPES, PUBLIC_STREAMS, PROTOCOL_VERSION, isPublic } from "./streams.js";
export { encode as encodeMsgpack, decode as decodeMsgpack } from "./msgpack.js";
export { SseParser } from "./transports/sse-reader.js";

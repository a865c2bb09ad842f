// Types of the tickwire browser SDK (/tickwire.js). SPEC section 11.

/** Connection states (SPEC 11). */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "fallback" | "disconnected" | "closed";
/** green: connected; yellow: connecting, reconnecting, fallback; red: disconnected (gave up), closed. */
export type StatusColor = "green" | "yellow" | "red";
export type TransportKind = "ws" | "sse" | "poll";

/** One event as a subscriber sees it. */
export interface StreamEvent<T = any> {
  /** The subscription's stream ("orders", "prices", "strategies/s1"). */
  stream: string;
  /** "order:update", "price:update", "stream:reset", ... */
  type: string;
  /** The resume token; null for events without one (connected, stream:reset, test). */
  id: string | null;
  data: T;
  /** A log event's number among its log's events of its type (strategy events: and strategyId); null for ticks, snapshots, control events. */
  seq?: number | null;
  /** Delivered from history after a resume (a replay) or from the local cache. */
  replayed: boolean;
  /** True on `stream:reset`: history was lost; a fresh snapshot follows and replaces local state. */
  reset: boolean;
  /** Rebuilt from the local cache for a new subscriber (before the server answered). */
  cached?: boolean;
}

export interface SubscribeOptions {
  /** prices only: the symbols wanted (all when absent). */
  symbols?: string[] | string | null;
  /** trading only (admins): another user's trading stream. */
  userId?: string | null;
  /** Called for each event; price ticks at most once per symbol per `priceThrottleMs` (latest wins). */
  onEvent?: (event: StreamEvent) => void;
}

/** A subscription; equal subscriptions share one on the wire (ref-counted). */
export interface Subscription {
  readonly stream: string;
  /** What equal subscriptions share: stream + normalized parameters. */
  readonly key: string;
  /** Stop receiving; the stream stops when its last subscriber released it. */
  release(): void;
}

export interface StreamStats {
  stream: string;
  /** connecting | live | reconnecting | unauthorized | forbidden | not_found | bad_request | ... */
  state: string;
  detail: string;
  subscribers: number;
  /** Events delivered (duplicates excluded). */
  events: number;
  /** Duplicate ids dropped. */
  dupes: number;
  /**
   * Holes seen: a `stream:reset` (history could not be resumed; the state was replaced from a
   * fresh snapshot) or a jump in a log event's `seq` (the stream is then read again from its
   * last id, so the replay delivers the missing events in order).
   */
  gaps: number;
  /** `seq` jumps that reading the stream again filled. */
  repaired: number;
  /** Log events known to be missing: a `seq` jump that reading the stream again showed again. */
  missed: number;
  /** Client clock (ms) of the last event. */
  lastEventAt: number | null;
  lastEventId: string | null;
}

export interface Status {
  state: ConnectionState;
  color: StatusColor;
  transport: TransportKind | null;
  /** "json" | "msgpack" over WebSocket, else null. */
  protocol: "json" | "msgpack" | null;
  /** Round trip of the last WebSocket ping, ms. */
  rttMs: number | null;
  /** Why the client polls instead of streaming, or null. */
  fallbackReason: string | null;
  lastError: string | null;
  online: boolean;
  /** The token's user (`sub`), null with cookies or anonymous. */
  user: string | null;
  /**
   * Per subscription key, not per stream name: the name, then the parameters that tell
   * subscriptions apart (`orders`, `prices?symbols=AAPL,MSFT` with the symbols sorted,
   * `orders?userId=bob`). Two subscriptions to prices with different symbols are two
   * entries (on one wire). Only subscriptions with a subscriber are listed.
   */
  streams: Record<string, StreamStats>;
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** 0.2 = +-20% */
  jitter: number;
}

/** What the client uses of its host; tests pass fakes. */
export interface Env {
  now(): number;
  setTimeout(fn: () => void, ms: number): any;
  clearTimeout(handle: any): void;
  random(): number;
  WebSocket?: any;
  EventSource?: any;
  fetch?: (url: string, init?: any) => Promise<any>;
  AbortController?: any;
  location?: { protocol: string; host: string } | null;
  window?: EventTarget | null;
  document?: (EventTarget & { visibilityState?: string }) | null;
  navigator?: { onLine?: boolean } | null;
  requestAnimationFrame(fn: () => void): any;
  console?: Pick<Console, "error" | "warn" | "log">;
}

export interface ClientOptions {
  /** Origin of the server ("" = this page's). */
  baseUrl?: string;
  /** Path prefix of the streams. Default "/api/stream". */
  prefix?: string;
  /** A JWT. Without token and getToken the session cookie is used (same origin, or credentials: "include"). */
  token?: string | null;
  /**
   * Called before each (re)connect without a valid token, on 401, on `auth:expired` and
   * `refreshMarginMs` before `exp`. "" or null: anonymous (public streams only).
   */
  getToken?: (() => string | null | Promise<string | null>) | null;
  /** "auto" (default): one WebSocket, else SSE (/me + /prices), else polling. */
  transport?: "auto" | TransportKind;
  /** WebSocket subprotocol: tickwire.json (default) or tickwire.msgpack. */
  protocol?: "json" | "msgpack";
  /** fetch/EventSource credentials mode for the cookie. Default "same-origin". */
  credentials?: "same-origin" | "include" | "omit";
  /** SSE reader: streamed fetch (sees keepalives, statuses, sends tokens) or EventSource. Default "auto" (fetch when possible). */
  sseReader?: "auto" | "fetch" | "eventsource";
  /** Carry the user's own streams on one /api/stream/me response over SSE and polling. Default true. */
  useMe?: boolean;
  /** No byte for this long = a dead connection. Default 90000. */
  staleTimeoutMs?: number;
  /** A connection that does not open within this long failed. Default 10000. */
  connectTimeoutMs?: number;
  /** WebSocket `ping` command interval (liveness and RTT). Default 25000. */
  pingIntervalMs?: number;
  /** Default 1 s -> 16 s, +-20%. */
  backoff?: Partial<BackoffOptions>;
  /** Failed streaming attempts in a row before polling. Default 5. */
  fallbackAfter?: number;
  /** While polling, try streaming again this often. Default 30000. */
  probeIntervalMs?: number;
  /** Failed attempts in a row before giving up ("disconnected"). Default Infinity. */
  maxAttempts?: number;
  /** Pause between polls that returned less than a page. Default 1000. */
  pollIntervalMs?: number;
  /** Long-poll wait, seconds (0-30). Default 25. */
  pollWaitS?: number;
  /** Price callbacks and renders: at most one per symbol per window, latest wins (0 = off). Default 100. */
  priceThrottleMs?: number;
  /** A released stream's data stays for new subscribers this long. Default 30000. */
  cacheTtlMs?: number;
  /** Ids remembered per stream for dedup. Default 1000. */
  dedupSize?: number;
  /** WebSocket subscribe/unsubscribe changes are batched over this window. Default 10. */
  batchMs?: number;
  /** Refresh the token this long before exp. Default 30000. */
  refreshMarginMs?: number;
  /** A page hidden for at least this long reconnects when visible again. Default 60000. */
  hiddenReconnectMs?: number;
  /** Test and non-browser hosts: replace timers, clock, WebSocket, fetch... */
  env?: Partial<Env>;
}

export interface Order {
  orderId: string;
  symbol?: string;
  side?: string;
  qty?: number;
  status?: string;
  filledQty?: number;
  filledAvgPrice?: number;
  [field: string]: any;
}
export interface Position {
  symbol: string;
  quantity: number;
  entryPrice?: number;
  currentPrice?: number;
  value?: number;
  unrealizedPnL?: number;
  [field: string]: any;
}
export interface Price {
  symbol: string;
  price?: number;
  bid?: number;
  ask?: number;
  timestamp?: string;
  [field: string]: any;
}

/** `alert:new` data (SPEC 13); alerts that applications publish may carry other fields. */
export interface Alert {
  alertId: string;
  ruleId?: string;
  kind?: string;
  symbol?: string;
  severity?: "info" | "warning" | "error" | string;
  message?: string;
  value?: number;
  threshold?: number;
  timestamp?: string;
  /** History records only. */
  acked?: boolean;
  [field: string]: any;
}
/** `POST /api/alerts/{alertId}/ack`'s answer, also the data of `alert:ack`. */
export interface AlertAck {
  alertId: string;
  ackedAt: string;
  by: string;
}
export type AlertRuleKind = "price_above" | "price_below" | "pct_move" | "volume_spike" | "pnl_above" | "pnl_below";
/** What `POST /api/alerts/rules` takes. */
export interface AlertRuleInput {
  kind: AlertRuleKind;
  symbol: string;
  threshold: number;
  /** pct_move and volume_spike: the window, seconds (default 60). */
  windowS?: number | null;
  severity?: "info" | "warning" | "error";
  /** At most one firing per this many seconds (default 30). */
  throttleS?: number;
  message?: string | null;
  enabled?: boolean;
}
/** A rule as the server shows it, with its evaluation state. */
export interface AlertRule extends AlertRuleInput {
  ruleId: string;
  enabled: boolean;
  armed?: boolean;
  fired?: number;
  suppressed?: number;
  createdAt?: string;
  lastFiredAt?: string | null;
  [field: string]: any;
}

/** A refused or failed API request: the HTTP status (0 without an answer) and the server's message. */
export declare class TickwireApiError extends Error {
  constructor(status: number, message: string, body?: any);
  readonly status: number;
  /** The server's error body (`{error, message, ...}`), or null. */
  readonly body: any;
}

/** The user's unacknowledged alerts, kept current from the history and the `alerts` stream. */
export declare class AlertFeed {
  constructor(client: TickwireClient, options?: { limit?: number });
  /** Newest first; replaced (a new array) on every change. */
  readonly alerts: Alert[];
  /** True until the first history answer. */
  readonly loading: boolean;
  /** Why the history could not be read, or null. */
  readonly error: TickwireApiError | null;
  /** Called after every change of alerts, loading or error; returns its remover. */
  onChange(listener: () => void): () => void;
  /** Acknowledge; the alert leaves this list and (by `alert:ack`) every other tab's. */
  ack(alertId: string): Promise<AlertAck>;
  /** Read the history again. */
  reload(): Promise<void>;
  /** Stop (releases the `alerts` subscription). */
  release(): void;
}

/** Snapshots and deltas merged. Maps of orders and positions are replaced on each change. */
export declare class LocalState {
  constructor(changed?: (topic: string) => void);
  orders: Map<string, Order>;
  positions: Map<string, Position>;
  prices: Map<string, Price>;
  totalValue: number | null;
  apply(type: string, data: any): boolean;
  clearUser(): void;
}

export declare class TickwireClient {
  constructor(options?: ClientOptions);
  readonly options: Required<Omit<ClientOptions, "token" | "getToken" | "env">>;
  readonly env: Env;
  readonly local: LocalState;
  readonly status: Status;
  subscribe(stream: string, options?: SubscribeOptions): Subscription;
  /** The seeds' name: prices of `symbols`. */
  subscribePrices(symbols: string[], options?: Omit<SubscribeOptions, "symbols">): Subscription;
  /** Release the latest subscribePrices(symbols). */
  unsubscribePrices(symbols: string[]): void;
  /** What a new subscriber would be shown at once (cached), without subscribing. */
  peek(stream: string, options?: SubscribeOptions): StreamEvent[];
  /** Called on every change of state; returns an unsubscribe function. */
  onStatus(listener: (status: Status) => void): () => void;
  /** Renderers: "orders", "positions", "prices", "prices:SYM", "status", "stats", "*"; at most once per frame. */
  watch(topic: string, listener: () => void): () => void;
  /** Called when the user changes (login as another user, logout); returns its remover. */
  onUserChange(listener: () => void): () => void;
  /** The user's unacknowledged alerts, kept current (release it when done). */
  alerts(options?: { limit?: number }): AlertFeed;
  /** `POST /api/alerts/{alertId}/ack` (JSON, with the client's token or cookie). */
  ackAlert(alertId: string): Promise<AlertAck>;
  /** `GET /api/alerts`, newest first; `next` is the `before` of the following page. */
  alertHistory(query?: { unacked?: boolean; limit?: number; before?: string | null }): Promise<{ alerts: Alert[]; next: string | null }>;
  alertRules(): Promise<AlertRule[]>;
  /** Rejects with a TickwireApiError (400) naming the bad field. */
  createAlertRule(rule: AlertRuleInput): Promise<AlertRule>;
  updateAlertRule(ruleId: string, changes: Partial<AlertRuleInput>): Promise<AlertRule>;
  deleteAlertRule(ruleId: string): Promise<void>;
  reconnect(): void;
  setTransport(transport: "auto" | TransportKind): void;
  /** Log in with a token, or (no argument) after the session cookie changed. Public streams keep flowing. */
  login(token?: string): void;
  /** Stop the user's streams and clear their local state; public streams keep flowing. */
  logout(): void;
  close(): void;
}

export declare const DEFAULTS: Readonly<Required<Omit<ClientOptions, "token" | "getToken" | "env">>>;
export declare const DEFAULT_BACKOFF: Readonly<BackoffOptions>;
export declare const STATE_COLORS: Readonly<Record<ConnectionState, StatusColor>>;
export declare function colorOf(state: ConnectionState): StatusColor;
/** The delay before retry number `attempt` (0-based). */
export declare function backoffDelay(attempt: number, options?: Partial<BackoffOptions>, random?: () => number): number;
export declare const EVENT_TYPES: string[];
export declare const PUBLIC_STREAMS: Set<string>;
export declare const PROTOCOL_VERSION: number;
export declare function isPublic(stream: string): boolean;
export declare function encodeMsgpack(value: unknown): Uint8Array;
export declare function decodeMsgpack(bytes: ArrayBuffer | Uint8Array): any;
export declare class SseParser {
  constructor(onEvent: (type: string, id: string | null, data: string, seq: number | null) => void);
  push(text: string): void;
}

// SSE: the caller's own streams on one `/api/stream/me?streams=...` response, prices on
// `/api/stream/prices?symbols=...`, anything else on a response of its own (SPEC 2, 3).
// Each response resumes from its wire's position with `?lastEventId=`.

import { Link, LinkTransport } from "./links.js";
import { canStreamFetch, readEventSource, readFetch } from "./sse-reader.js";
import { idTime } from "../streams.js";
import { Watchdog } from "./watchdog.js";

export class SseTransport extends LinkTransport {
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
}

class SseLink extends Link {
  constructor(transport, wire) {
    super(transport, wire);
    this.replayUntil = NaN;
  }

  async start() {
    const { ctx, wire } = this;
    let token = null;
    try {
      token = wire.isPublic ? null : await ctx.auth.ensure(); // public streams never use the user's budget
    } catch {
      token = null;
    }
    if (this.stopped) return;
    const resume = wire.resumeId();
    this.resumed = Boolean(resume);
    const url = ctx.url(wire.stream, { ...wire.query, lastEventId: resume });
    const useFetch = ctx.options.sseReader === "fetch" || (ctx.options.sseReader !== "eventsource" && canStreamFetch(ctx.env));
    if (token && !useFetch) ctx.env.console?.warn("tickwire: EventSource cannot send a token; using the cookie");
    this.watchdog = new Watchdog(ctx.env, ctx.options.staleTimeoutMs, () => this.stale(), ctx.options.connectTimeoutMs);
    const read = useFetch ? readFetch : readEventSource;
    this.cancel = read(ctx.env, url, { token, credentials: ctx.options.credentials }, {
      open: () => this.watchdog.kick(),
      bytes: () => this.watchdog.kick(),
      event: (type, id, data, seq) => this.event(type, id, data, seq),
      end: (info) => this.ended(info),
    });
  }

  event(type, id, data, seq) {
    if (this.stopped) return;
    if (type === "connected") {
      if (!this.ctx.checkVersion(data?.v)) return this.fail({ fatal: "version", reason: `unsupported protocol version ${data.v}` });
      this.up = true;
      // A resumed response replays first: its events stamped before `connected` (server clock).
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
    // A hole in a stream: read the wire again from its resume id (a new response replays it).
    if (this.ctx.event(this.wire, { type, id, data, seq, replayed })) this.transport.restart(this.wire.key);
  }

  stale() {
    if (!this.up) return this.fail({ failed: true, reason: "the stream did not open in time" });
    this.fail({ reason: `no data for ${Math.round(this.ctx.options.staleTimeoutMs / 1000)} s: connection is stale` });
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
}

// Polling: `GET /api/stream/{stream}/events?after=ID&wait=S` in a loop per wire (SPEC 7),
// the same wires as SSE (`me` for the caller's own streams). A long-poll waits for the
// next event; a full page is followed at once, anything else after `pollIntervalMs`.

import { Link, LinkTransport } from "./links.js";
import { statusInfo } from "./sse-reader.js";

export class PollTransport extends LinkTransport {
  constructor(ctx) {
    super(ctx, "poll");
  }

  createLink(wire) {
    return new PollLink(this, wire);
  }
}

const LIMIT = 500;

class PollLink extends Link {
  constructor(transport, wire) {
    super(transport, wire);
    this.cursor = undefined; // the server's lastEventId once known
    this.lastDigest = null;
  }

  start() {
    this.loop().catch((err) => this.fail({ failed: true, reason: `poll failed: ${err?.message ?? err}` }));
  }

  async loop() {
    const { ctx } = this;
    let replay = true; // the first answer after a resume, or after a hole, is history
    while (!this.stopped) {
      const after = this.cursor === undefined ? this.wire.resumeId() : this.cursor;
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
      if (!this.stopped) this.fail({ opened: false, ...(await statusInfo(response)) });
      return null;
    }
    return response.json();
  }

  /** Hand an answer's events on; false when one revealed a hole (the wire is read again). */
  deliver(body, after, replay) {
    const { ctx, wire } = this;
    const events = body.events || [];
    if (after && body.recovered === false) {
      const data = { recovered: false, reason: body.reason ?? "unknown", timestamp: new Date().toISOString() };
      ctx.event(wire, { type: "stream:reset", id: null, data });
    }
    // An empty log has no id to resume from: the same snapshot comes back each time.
    if (!body.lastEventId && !after) {
      const digest = JSON.stringify(events.map((e) => [e.event, { ...e.data, timestamp: null }]));
      if (digest === this.lastDigest) return true;
      this.lastDigest = digest;
    }
    for (const e of events) {
      if (ctx.event(wire, { type: e.event, id: e.id ?? null, data: e.data, seq: e.seq ?? null, replayed: replay && Boolean(after) })) {
        this.cursor = undefined; // a hole: ask again from the wire's resume id, now
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
      /* ignore */
    }
  }
}

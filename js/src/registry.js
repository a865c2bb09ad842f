// Subscriptions: equal subscriptions share one entry (ref-counted); an entry keeps its
// resume id, its recent ids (dedup), its stats and, for a while after its last subscriber
// left, what a new subscriber needs to show data at once (cache with a TTL).

import { RecentIds } from "./dedup.js";
import { SequenceWatch, sequenced } from "./sequence.js";
import { isPublic, subscriptionKey } from "./streams.js";

/** Streams whose state is rebuilt from local state; the others keep their recent events. */
const SNAPSHOT_STREAMS = new Set(["orders", "positions", "trading", "prices"]);
const RECENT_LIMIT = 100;

export class Entry {
  constructor(key, stream, params, dedupSize) {
    this.key = key;
    this.stream = stream;
    this.params = params;
    /** @type {Set<import("../types/tickwire").SubscribeOptions>} */
    this.listeners = new Set();
    this.refs = 0;
    this.lastId = null;
    this.lastSeq = 0;
    this.ids = new RecentIds(dedupSize);
    /** @type {SequenceWatch|null} holes by `seq`, on streams that carry whole sequences */
    this.seqs = sequenced(stream) ? new SequenceWatch() : null;
    this.recent = [];
    this.primed = false; // it has data a new subscriber can be shown
    this.started = false; // it was live once: no id means nothing happened on it
    this.state = "connecting";
    this.detail = "";
    /** why the server refused it: "unauthorized" | "forbidden" | "not_found" | "bad_request" | null */
    this.blocked = null;
    this.events = 0;
    this.dupes = 0;
    this.gaps = 0;
    this.repaired = 0;
    this.missed = 0;
    this.lastEventAt = null;
    this.idleSince = null;
  }

  get isPublic() {
    return isPublic(this.stream);
  }

  /** @returns {import("../types/tickwire").StreamStats} */
  stats() {
    return {
      stream: this.stream,
      state: this.state,
      detail: this.detail,
      subscribers: this.refs,
      events: this.events,
      dupes: this.dupes,
      gaps: this.gaps,
      repaired: this.repaired,
      missed: this.missed,
      lastEventAt: this.lastEventAt,
      lastEventId: this.lastId,
    };
  }
}

export class Registry {
  /**
   * @param {object} deps
   * @param {import("../types/tickwire").Env} deps.env
   * @param {import("./local.js").LocalState} deps.local
   * @param {import("./throttle.js").KeyThrottle} deps.throttle price callbacks
   * @param {number} deps.dedupSize @param {number} deps.cacheTtlMs
   */
  constructor({ env, local, throttle, dedupSize, cacheTtlMs }) {
    this.env = env;
    this.local = local;
    this.throttle = throttle;
    this.dedupSize = dedupSize;
    this.cacheTtlMs = cacheTtlMs;
    /** @type {Map<string, Entry>} */
    this.entries = new Map();
    this.seq = 0;
  }

  /** The key equal subscriptions share. */
  keyOf(stream, options = {}) {
    return subscriptionKey(stream, options).key;
  }

  /** Add a subscriber; returns its entry and whether the wire plan changes. */
  acquire(stream, options, listener) {
    this.sweep();
    const { key, params } = subscriptionKey(stream, options);
    let entry = this.entries.get(key);
    const created = !entry;
    if (!entry) this.entries.set(key, (entry = new Entry(key, stream, params, this.dedupSize)));
    const wasIdle = entry.refs === 0;
    entry.refs += 1;
    entry.idleSince = null;
    entry.listeners.add(listener);
    if (entry.primed) this.replayTo(entry, listener);
    return { entry, changed: created || wasIdle };
  }

  /** Remove a subscriber; true when the entry has none left (its wire can go). */
  release(entry, listener) {
    if (!entry.listeners.delete(listener)) return false;
    entry.refs -= 1;
    if (entry.refs > 0) return false;
    entry.idleSince = this.env.now();
    return true;
  }

  /** Entries with subscribers. */
  active() {
    return [...this.entries.values()].filter((e) => e.refs > 0);
  }

  /** Forget entries idle for longer than the cache TTL. */
  sweep() {
    const now = this.env.now();
    for (const [key, entry] of this.entries) {
      if (entry.refs === 0 && entry.idleSince !== null && now - entry.idleSince >= this.cacheTtlMs) {
        this.entries.delete(key);
      }
    }
  }

  /** The position `id` was reached by every entry of a wire (they read the same log). */
  advance(entries, id) {
    const seq = ++this.seq;
    for (const entry of entries) {
      entry.lastId = id;
      entry.lastSeq = seq;
    }
  }

  /**
   * Whether an event leaves a hole in `entry` that a repair should fill: false when none,
   * or when a repair from the same point showed it already (then it counts as missed).
   * @param {Entry} entry @param {{type: string, id: string|null, data: any, seq?: number|null}} ev
   */
  needsRepair(entry, ev) {
    if (!entry.seqs || (ev.id && entry.ids.has(ev.id))) return false;
    const hole = entry.seqs.hole(ev.type, ev.data, ev.seq);
    if (!hole) return false;
    if (entry.seqs.shouldRepair(hole)) {
      entry.gaps += 1;
      return true;
    }
    entry.missed += hole.missing;
    return false;
  }

  /**
   * Hand one event to an entry: dedup by id, stats, local state, then its subscribers
   * (price ticks through the per-symbol throttle). Returns false for a duplicate.
   * @param {Entry} entry @param {{type: string, id: string|null, data: any, seq?: number|null, replayed?: boolean}} ev
   */
  deliver(entry, ev) {
    if (ev.id && !entry.ids.add(ev.id)) {
      entry.dupes += 1;
      return false;
    }
    entry.events += 1;
    entry.lastEventAt = this.env.now();
    const reset = ev.type === "stream:reset";
    const snapshot = Boolean(ev.data && (ev.data.snapshot || ev.data.initializing));
    if (reset) {
      entry.gaps += 1;
      entry.recent = [];
    }
    if (reset || snapshot) entry.seqs?.clear();
    if (entry.seqs?.note(ev.type, ev.data, ev.seq)) entry.repaired += 1;
    this.local.apply(ev.type, ev.data);
    if (!SNAPSHOT_STREAMS.has(entry.stream) && !reset && ev.type !== "connected") {
      entry.recent.push(ev);
      if (entry.recent.length > RECENT_LIMIT) entry.recent.shift();
    }
    if (snapshot) entry.primed = true;
    else if (!SNAPSHOT_STREAMS.has(entry.stream)) entry.primed = true;
    const event = {
      stream: entry.stream,
      type: ev.type,
      id: ev.id ?? null,
      data: ev.data,
      seq: ev.seq ?? null,
      replayed: Boolean(ev.replayed),
      reset,
    };
    const tick = ev.type === "price:update" && ev.data && !ev.data.initializing && ev.data.symbol != null;
    if (tick) this.throttle.push(`${entry.key}|${ev.data.symbol}`, () => this.emit(entry, event));
    else this.emit(entry, event);
    return true;
  }

  emit(entry, event) {
    for (const listener of [...entry.listeners]) call(this.env, listener.onEvent, event);
  }

  /** Show a new subscriber of a primed entry what it has: a snapshot from local state, or recent events. */
  replayTo(entry, listener) {
    const events = this.local.snapshotEvents(entry.stream, entry.params) ?? entry.recent;
    for (const ev of events) {
      const event = { stream: entry.stream, type: ev.type, id: ev.id ?? null, data: ev.data, seq: ev.seq ?? null, replayed: true, reset: false, cached: true };
      call(this.env, listener.onEvent, event);
    }
  }

  /** Forget the resume ids, dedup memory and recent events of user streams (another user). */
  forgetUser() {
    for (const entry of this.entries.values()) {
      if (entry.isPublic) continue;
      entry.lastId = null;
      entry.ids = new RecentIds(this.dedupSize);
      entry.seqs?.clear();
      entry.recent = [];
      entry.primed = false;
      entry.started = false;
    }
  }
}

function call(env, fn, arg) {
  if (typeof fn !== "function") return;
  try {
    fn(arg);
  } catch (err) {
    env.console?.error("tickwire: a subscriber's callback failed", err);
  }
}

// Two ways of not doing work for every price tick:
// - KeyThrottle: per key (symbol), at most one call per window; the first value of a quiet
//   key goes at once, later ones wait for the end of the window and the latest wins.
// - FrameBatcher: topics marked during a frame are announced once, on the next animation
//   frame, to the renderers that watch them.

export class KeyThrottle {
  /** @param {import("../types/tickwire").Env} env @param {number} windowMs 0 = no throttling */
  constructor(env, windowMs) {
    this.env = env;
    this.windowMs = windowMs;
    /** @type {Map<string, {timer: any, pending: null | (() => void)}>} */
    this.keys = new Map();
  }

  /** Run `deliver` now, or at the end of `key`'s window in place of any earlier pending call. */
  push(key, deliver) {
    if (this.windowMs <= 0) return deliver();
    const slot = this.keys.get(key);
    if (slot) {
      slot.pending = deliver; // latest value wins
      return undefined;
    }
    this.open(key);
    return deliver();
  }

  open(key) {
    const slot = { timer: null, pending: null };
    slot.timer = this.env.setTimeout(() => {
      this.keys.delete(key);
      if (slot.pending) this.push(key, slot.pending);
    }, this.windowMs);
    this.keys.set(key, slot);
  }

  clear() {
    for (const slot of this.keys.values()) this.env.clearTimeout(slot.timer);
    this.keys.clear();
  }
}

export class FrameBatcher {
  /** @param {import("../types/tickwire").Env} env */
  constructor(env) {
    this.env = env;
    /** @type {Map<string, Set<() => void>>} */
    this.listeners = new Map();
    this.dirty = new Set();
    this.scheduled = false;
  }

  /** Watch `topic`; returns the function that stops watching. */
  subscribe(topic, listener) {
    let set = this.listeners.get(topic);
    if (!set) this.listeners.set(topic, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(topic) === set) this.listeners.delete(topic);
    };
  }

  /** Announce `topic` on the next frame (once, however often it is marked). */
  mark(topic) {
    if (!this.listeners.has(topic) && !this.listeners.has("*")) return;
    this.dirty.add(topic);
    if (this.scheduled) return;
    this.scheduled = true;
    this.env.requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.scheduled = false;
    const topics = [...this.dirty];
    this.dirty.clear();
    const called = new Set();
    for (const topic of [...topics, "*"]) {
      for (const listener of [...(this.listeners.get(topic) || [])]) {
        if (called.has(listener)) continue;
        called.add(listener);
        try {
          listener();
        } catch (err) {
          this.env.console?.error("tickwire: a renderer failed", err);
        }
      }
    }
  }
}

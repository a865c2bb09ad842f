// A connection that received no byte for `ms` is dead, whatever its socket says
// (a laptop that slept, a proxy that dropped it silently): the watchdog says so once.

export class Watchdog {
  /**
   * @param {import("../../types/tickwire").Env} env
   * @param {number} ms silence that means a dead connection
   * @param {() => void} onStale
   * @param {number} [firstMs] how long the connection may take to open
   */
  constructor(env, ms, onStale, firstMs = ms) {
    this.env = env;
    this.ms = ms;
    this.onStale = onStale;
    this.timer = null;
    this.lastAt = env.now();
    this.arm(firstMs);
  }

  /** Bytes arrived. */
  kick() {
    this.lastAt = this.env.now();
    this.arm(this.ms);
  }

  arm(ms) {
    this.env.clearTimeout(this.timer);
    this.timer = this.env.setTimeout(() => {
      this.timer = null;
      this.onStale();
    }, ms);
  }

  /** Milliseconds since the last byte. */
  get idleMs() {
    return this.env.now() - this.lastAt;
  }

  stop() {
    this.env.clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Join a base URL, the stream prefix, a path and query parameters (nulls left out). */
export function endpoint(base, prefix, path, query = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== null && value !== undefined && value !== "") params.set(key, value);
  const qs = params.toString();
  return `${base}${prefix}/${path}${qs ? `?${qs}` : ""}`;
}

/** Seconds of a Retry-After header as milliseconds, or null. */
export function retryAfterMs(response) {
  const value = Number(response?.headers?.get?.("retry-after"));
  return Number.isFinite(value) && value >= 0 ? value * 1000 : null;
}

// The host the client runs in: timers, clock, randomness and the browser APIs it uses.
// Everything the client touches outside itself goes through this object, so tests
// (and hosts that are not browsers) can pass their own: `new TickwireClient({ env })`.

/**
 * The default environment from `globalThis`, with `overrides` taking precedence.
 * @param {Partial<import("../types/tickwire").Env>} [overrides]
 * @returns {import("../types/tickwire").Env}
 */
export function makeEnv(overrides = {}) {
  const g = globalThis;
  const env = {
    now: () => Date.now(),
    setTimeout: (fn, ms) => g.setTimeout(fn, ms),
    clearTimeout: (handle) => g.clearTimeout(handle),
    random: () => Math.random(),
    WebSocket: g.WebSocket,
    EventSource: g.EventSource,
    fetch: typeof g.fetch === "function" ? g.fetch.bind(g) : undefined,
    AbortController: g.AbortController,
    location: g.location,
    /** Where `online` / `offline` are announced (window), or null. */
    window: typeof g.addEventListener === "function" && g.window ? g.window : null,
    /** Where `visibilitychange` is announced (document), or null. */
    document: g.document ?? null,
    navigator: g.navigator ?? null,
    requestAnimationFrame: null,
    console: g.console,
    ...overrides,
  };
  if (!env.requestAnimationFrame) {
    env.requestAnimationFrame =
      typeof g.requestAnimationFrame === "function" && !overrides.setTimeout
        ? (fn) => g.requestAnimationFrame(fn)
        : (fn) => env.setTimeout(fn, 16);
  }
  return env;
}

/** Whether the browser says it is offline (unknown counts as online). */
export function isOffline(env) {
  return env.navigator?.onLine === false;
}

/** Whether the page is hidden (unknown counts as visible). */
export function isHidden(env) {
  return env.document?.visibilityState === "hidden";
}

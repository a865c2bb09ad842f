// Reconnect delays: 1 s doubling to 16 s, each +-20% (jitter keeps a fleet of browsers
// from reconnecting in step after a server restart).

/** @type {import("../types/tickwire").BackoffOptions} */
export const DEFAULT_BACKOFF = Object.freeze({ initialMs: 1000, maxMs: 16000, jitter: 0.2 });

/**
 * The delay before reconnect attempt number `attempt` (0 for the first retry).
 * @param {number} attempt
 * @param {Partial<import("../types/tickwire").BackoffOptions>} [options]
 * @param {() => number} [random] a number in [0, 1)
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const { initialMs, maxMs, jitter } = { ...DEFAULT_BACKOFF, ...options };
  const base = Math.min(maxMs, initialMs * 2 ** Math.max(0, Math.min(attempt, 30)));
  return Math.round(base * (1 - jitter + 2 * jitter * random()));
}

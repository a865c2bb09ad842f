// The status colours of SPEC 11: green when connected, yellow while (re)connecting or
// polling in fallback, red once the client gave up or was closed.

/** @type {Record<import("../types/tickwire").ConnectionState, import("../types/tickwire").StatusColor>} */
export const STATE_COLORS = Object.freeze({
  connecting: "yellow",
  connected: "green",
  reconnecting: "yellow",
  fallback: "yellow",
  disconnected: "red",
  closed: "red",
});

/** @param {import("../types/tickwire").ConnectionState} state */
export const colorOf = (state) => STATE_COLORS[state] ?? "red";

// <ConnectionStatus/>: coloured dot, state, transport, round trip, per-stream counts,
// the fallback reason and a reconnect button. Plain elements with `tw-` classes; the dot
// is coloured inline so it works without a stylesheet.

import { createElement as h, useContext } from "react";
import { StreamContext, useConnectionStatus } from "./context.js";

const DOT = { green: "#1a9c4a", yellow: "#d6a11a", red: "#d0342c" };

/** @param {{showStreams?: boolean, className?: string}} props */
export function ConnectionStatus({ showStreams = true, className = "" }) {
  const client = useContext(StreamContext);
  const status = useConnectionStatus();
  const streams = Object.entries(status.streams);
  return h(
    "div",
    { className: `tw-status tw-${status.color} ${className}`.trim(), "data-state": status.state, "data-color": status.color },
    h("span", {
      className: "tw-dot",
      title: status.color,
      style: { display: "inline-block", width: 10, height: 10, borderRadius: 5, background: DOT[status.color], marginRight: 6 },
    }),
    h("strong", { className: "tw-state" }, status.state),
    " ",
    h("span", { className: "tw-transport" }, status.transport ?? "-"),
    status.rttMs !== null ? h("span", { className: "tw-rtt" }, ` ${status.rttMs} ms`) : null,
    status.fallbackReason ? h("span", { className: "tw-fallback", title: status.fallbackReason }, ` fallback: ${status.fallbackReason}`) : null,
    status.lastError && !status.fallbackReason ? h("span", { className: "tw-error", title: status.lastError }, ` ${status.lastError}`) : null,
    " ",
    h("button", { type: "button", className: "tw-reconnect", onClick: () => client.reconnect() }, "Reconnect"),
    showStreams && streams.length
      ? h(
          "ul",
          { className: "tw-streams" },
          streams.map(([key, s]) =>
            h(
              "li",
              { key, "data-stream": key, title: s.detail || s.state },
              `${key}: ${s.state}, ${s.events} events` + (s.dupes ? `, ${s.dupes} dupes` : "") + (s.gaps ? `, ${s.gaps} gaps` : ""),
            ),
          ),
        )
      : null,
  );
}

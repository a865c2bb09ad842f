// tickwire-react.js 0.1.0 - tickwire browser SDK (MIT). Built from js/src/react/index.js; do not edit.

// src/react/index.js
import { createElement, useCallback, useEffect, useMemo as useMemo2, useRef as useRef2, useState, useSyncExternalStore as useSyncExternalStore2 } from "react";
import { TickwireClient } from "./tickwire.js";

// src/react/context.js
import { createContext, useContext, useMemo, useRef, useSyncExternalStore } from "react";
var StreamContext = createContext(null);
function useTickwire() {
  const client = useContext(StreamContext);
  if (!client) throw new Error("tickwire: useTickwire() needs a <TickwireProvider> above it");
  return client;
}
function useTopics(client, topics, read) {
  const cache = useRef({ version: -1, value: void 0 });
  const version = useRef(0);
  const key = topics.join("|");
  const subscribe = useMemo(
    () => (notify) => {
      const offs = topics.map(
        (t) => client.watch(t, () => {
          version.current += 1;
          notify();
        })
      );
      return () => offs.forEach((off) => off());
    },
    [client, key]
  );
  const getSnapshot = () => {
    if (cache.current.version !== version.current || cache.current.key !== key) {
      cache.current = { version: version.current, key, value: read() };
    }
    return cache.current.value;
  };
  return useSyncExternalStore(subscribe, getSnapshot, getSnapshot);
}
function useConnectionStatus() {
  return useClientStatus(useTickwire());
}
var STATUS_TOPICS = ["status", "stats"];
var NO_TOPICS = [];
function useClientStatus(client, watching = true) {
  return useTopics(client, watching ? STATUS_TOPICS : NO_TOPICS, () => client.status);
}
function useStreamState(client, key) {
  const last = useRef(null);
  return useTopics(client, ["status"], () => {
    const entry = client.registry.entries.get(key);
    const next = entry ? { state: entry.state, detail: entry.detail } : null;
    const prev = last.current;
    if (prev && next && prev.state === next.state && prev.detail === next.detail) return prev;
    last.current = next;
    return next;
  });
}

// src/react/status.js
import { createElement as h, useContext as useContext2 } from "react";
var DOT = { green: "#1a9c4a", yellow: "#d6a11a", red: "#d0342c" };
function ConnectionStatus({ showStreams = true, className = "" }) {
  const client = useContext2(StreamContext);
  const status = useConnectionStatus();
  const streams = Object.entries(status.streams);
  return h(
    "div",
    { className: `tw-status tw-${status.color} ${className}`.trim(), "data-state": status.state, "data-color": status.color },
    h("span", {
      className: "tw-dot",
      title: status.color,
      style: { display: "inline-block", width: 10, height: 10, borderRadius: 5, background: DOT[status.color], marginRight: 6 }
    }),
    h("strong", { className: "tw-state" }, status.state),
    " ",
    h("span", { className: "tw-transport" }, status.transport ?? "-"),
    status.rttMs !== null ? h("span", { className: "tw-rtt" }, ` ${status.rttMs} ms`) : null,
    status.fallbackReason ? h("span", { className: "tw-fallback", title: status.fallbackReason }, ` fallback: ${status.fallbackReason}`) : null,
    status.lastError && !status.fallbackReason ? h("span", { className: "tw-error", title: status.lastError }, ` ${status.lastError}`) : null,
    " ",
    h("button", { type: "button", className: "tw-reconnect", onClick: () => client.reconnect() }, "Reconnect"),
    showStreams && streams.length ? h(
      "ul",
      { className: "tw-streams" },
      streams.map(
        ([key, s]) => h(
          "li",
          { key, "data-stream": key, title: s.detail || s.state },
          `${key}: ${s.state}, ${s.events} events` + (s.dupes ? `, ${s.dupes} dupes` : "") + (s.gaps ? `, ${s.gaps} gaps` : "")
        )
      )
    ) : null
  );
}

// src/react/index.js
function TickwireProvider({ client: given = null, children = null, ...options }) {
  const [client] = useState(() => given ?? new TickwireClient(options));
  const first = useRef2(true);
  const closing = useRef2(null);
  useEffect(() => {
    clearTimeout(closing.current);
    return () => {
      if (!given) closing.current = setTimeout(() => client.close(), 0);
    };
  }, [client, given]);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    if (options.token) client.login(options.token);
    else if (options.token === null) client.logout();
  }, [client, options.token]);
  return createElement(StreamContext.Provider, { value: client }, children);
}
function useSubscription(client, stream, options, onEvent) {
  const handler = useRef2(onEvent);
  handler.current = onEvent;
  const key = stream ? `${stream}|${(options.symbols || []).join(",")}|${options.userId || ""}` : "";
  useEffect(() => {
    if (!stream) return void 0;
    const handle = client.subscribe(stream, { ...options, onEvent: (e) => handler.current?.(e) });
    return () => handle.release();
  }, [client, key]);
}
function useStream(stream, opts = {}) {
  const client = useTickwire();
  const status = useStreamState(client, stream ? client.registry.keyOf(stream, opts) : "");
  const clientStatus = useClientStatus(client, !stream);
  const limit = opts.limit ?? 50;
  const [events, setEvents] = useState(() => stream ? client.peek(stream, opts).slice(-limit) : []);
  const pending = useRef2(null);
  useSubscription(client, stream, opts, (event) => {
    if (!pending.current) {
      pending.current = [];
      client.env.requestAnimationFrame(() => {
        const batch = pending.current;
        pending.current = null;
        setEvents((prev) => [...prev, ...batch].slice(-limit));
      });
    }
    pending.current.push(event);
    opts.onEvent?.(event);
  });
  if (!stream) {
    return {
      client,
      status: clientStatus,
      subscribePrices: (symbols, o) => client.subscribePrices(symbols, o),
      unsubscribePrices: (symbols) => client.unsubscribePrices(symbols)
    };
  }
  return { events, last: events.length ? events[events.length - 1] : null, status };
}
function usePriceStream(symbols) {
  const client = useTickwire();
  const list = useMemo2(() => [...new Set(symbols || [])].sort(), [(symbols || []).join(",")]);
  useSubscription(client, "prices", list.length ? { symbols: list } : {}, null);
  const topics = list.length ? list.map((s) => `prices:${s}`) : ["prices"];
  const last = useRef2({});
  const prices = useTopics(client, topics, () => {
    const next = {};
    let same = true;
    const wanted = list.length ? list : [...client.local.prices.keys()];
    for (const symbol of wanted) {
      const price = client.local.prices.get(symbol);
      if (price === void 0) continue;
      next[symbol] = price;
      if (last.current[symbol] !== price) same = false;
    }
    if (same && Object.keys(next).length === Object.keys(last.current).length) return last.current;
    last.current = next;
    return next;
  });
  const status = useStreamState(client, client.registry.keyOf("prices", list.length ? { symbols: list } : {}));
  return { prices, status };
}
function useOrders() {
  const client = useTickwire();
  useSubscription(client, "orders", {}, null);
  const orders = useTopics(client, ["orders"], () => [...client.local.orders.values()]);
  const status = useStreamState(client, "orders");
  return { orders, status };
}
var useOrderStream = useOrders;
function usePositions() {
  const client = useTickwire();
  useSubscription(client, "positions", {}, null);
  const positions = useTopics(client, ["positions"], () => [...client.local.positions.values()]);
  const status = useStreamState(client, "positions");
  return { positions, totalValue: client.local.totalValue, status };
}
function useAlerts(opts = {}) {
  const client = useTickwire();
  const limit = opts.limit ?? 100;
  const [feed, setFeed] = useState(null);
  useEffect(() => {
    const made = client.alerts({ limit });
    setFeed(made);
    return () => made.release();
  }, [client, limit]);
  const subscribe = useCallback((notify) => feed ? feed.onChange(notify) : () => {
  }, [feed]);
  const read = () => feed ? feed.alerts : NO_ALERTS;
  const alerts = useSyncExternalStore2(subscribe, read, read);
  const loading = useSyncExternalStore2(subscribe, () => feed?.loading ?? true, () => true);
  const error = useSyncExternalStore2(subscribe, () => feed?.error ?? null, () => null);
  const ack = useCallback((alertId) => feed ? feed.ack(alertId) : client.ackAlert(alertId), [client, feed]);
  const status = useStreamState(client, "alerts");
  return { alerts, ack, loading, error, status };
}
var NO_ALERTS = Object.freeze([]);
export {
  ConnectionStatus,
  StreamContext,
  TickwireProvider,
  useAlerts,
  useConnectionStatus,
  useOrderStream,
  useOrders,
  usePositions,
  usePriceStream,
  useStream,
  useTickwire
};

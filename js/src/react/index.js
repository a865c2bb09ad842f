// React bindings for the tickwire browser SDK (served at /tickwire-react.js; `react` comes
// from the page's import map or bundler, the client from ./tickwire.js).
//
// Renders are selective: every hook reads the client through useSyncExternalStore with a
// selector of its own (one topic per symbol for prices), topics are announced at most
// once per animation frame, and price topics at most once per symbol per 100 ms.

import { createElement, useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { TickwireClient } from "../index.js";
import { StreamContext, useClientStatus, useStreamState, useTickwire, useTopics } from "./context.js";

export { ConnectionStatus } from "./status.js";
export { StreamContext, useConnectionStatus, useTickwire } from "./context.js";

/**
 * Makes a TickwireClient for its children. Props: the client options (read once), or an
 * existing `client`. A changed `token` prop logs in (null: logs out).
 */
export function TickwireProvider({ client: given = null, children = null, ...options }) {
  const [client] = useState(() => given ?? new TickwireClient(options));
  const first = useRef(true);
  const closing = useRef(null);
  useEffect(() => {
    // Closed a moment after unmount, so StrictMode's unmount-and-mount-again keeps it.
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

/** Subscribe while mounted; `deps` say when the subscription changes. */
function useSubscription(client, stream, options, onEvent) {
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const key = stream ? `${stream}|${(options.symbols || []).join(",")}|${options.userId || ""}` : "";
  useEffect(() => {
    if (!stream) return undefined;
    const handle = client.subscribe(stream, { ...options, onEvent: (e) => handler.current?.(e) });
    return () => handle.release();
  }, [client, key]);
}

/**
 * The events of a stream while mounted: `{events, last, status}` (events: the latest
 * `limit`, default 50, oldest first). Without arguments: the seeds' StreamContext value
 * `{client, status, subscribePrices, unsubscribePrices}`, `status` re-rendered as
 * useConnectionStatus() is.
 */
export function useStream(stream, opts = {}) {
  const client = useTickwire();
  const status = useStreamState(client, stream ? client.registry.keyOf(stream, opts) : "");
  // Without a stream, the client's status, reactive like useConnectionStatus().
  const clientStatus = useClientStatus(client, !stream);
  const limit = opts.limit ?? 50;
  const [events, setEvents] = useState(() => (stream ? client.peek(stream, opts).slice(-limit) : []));
  const pending = useRef(null);
  useSubscription(client, stream, opts, (event) => {
    // Many events per frame, one render per frame.
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
      unsubscribePrices: (symbols) => client.unsubscribePrices(symbols),
    };
  }
  return { events, last: events.length ? events[events.length - 1] : null, status };
}

/**
 * Live prices of `symbols`: `{prices, status}`, prices by symbol. Re-renders only when
 * one of these symbols changed (at most once per symbol per 100 ms, once per frame).
 */
export function usePriceStream(symbols) {
  const client = useTickwire();
  const list = useMemo(() => [...new Set(symbols || [])].sort(), [(symbols || []).join(",")]);
  useSubscription(client, "prices", list.length ? { symbols: list } : {}, null);
  const topics = list.length ? list.map((s) => `prices:${s}`) : ["prices"];
  const last = useRef({});
  const prices = useTopics(client, topics, () => {
    const next = {};
    let same = true;
    const wanted = list.length ? list : [...client.local.prices.keys()];
    for (const symbol of wanted) {
      const price = client.local.prices.get(symbol);
      if (price === undefined) continue;
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

/** The user's orders (snapshot + updates + fills merged), oldest first: `{orders, status}`. */
export function useOrders() {
  const client = useTickwire();
  useSubscription(client, "orders", {}, null);
  const orders = useTopics(client, ["orders"], () => [...client.local.orders.values()]);
  const status = useStreamState(client, "orders");
  return { orders, status };
}

/** The seeds' name for useOrders. */
export const useOrderStream = useOrders;

/** The user's open positions and their total value: `{positions, totalValue, status}`. */
export function usePositions() {
  const client = useTickwire();
  useSubscription(client, "positions", {}, null);
  const positions = useTopics(client, ["positions"], () => [...client.local.positions.values()]);
  const status = useStreamState(client, "positions");
  return { positions, totalValue: client.local.totalValue, status };
}

/**
 * The user's unacknowledged alerts, newest first, kept current from the history and the
 * `alerts` stream (an acknowledgement in another tab removes one here too):
 * `{alerts, ack, loading, error, status}`; `ack(alertId)` returns the server's answer.
 */
export function useAlerts(opts = {}) {
  const client = useTickwire();
  const limit = opts.limit ?? 100;
  const [feed, setFeed] = useState(null);
  useEffect(() => {
    const made = client.alerts({ limit });
    setFeed(made);
    return () => made.release();
  }, [client, limit]);
  const subscribe = useCallback((notify) => (feed ? feed.onChange(notify) : () => {}), [feed]);
  const read = () => (feed ? feed.alerts : NO_ALERTS);
  const alerts = useSyncExternalStore(subscribe, read, read);
  const loading = useSyncExternalStore(subscribe, () => feed?.loading ?? true, () => true);
  const error = useSyncExternalStore(subscribe, () => feed?.error ?? null, () => null);
  const ack = useCallback((alertId) => (feed ? feed.ack(alertId) : client.ackAlert(alertId)), [client, feed]);
  const status = useStreamState(client, "alerts");
  return { alerts, ack, loading, error, status };
}

const NO_ALERTS = Object.freeze([]);

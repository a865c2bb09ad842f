// The context, and reading the client's state through useSyncExternalStore.

import { createContext, useContext, useMemo, useRef, useSyncExternalStore } from "react";

/** The client of the nearest TickwireProvider (the seeds' StreamContext). */
export const StreamContext = createContext(null);

/** The client of the nearest TickwireProvider. */
export function useTickwire() {
  const client = useContext(StreamContext);
  if (!client) throw new Error("tickwire: useTickwire() needs a <TickwireProvider> above it");
  return client;
}

/** A value of the client that changes on `topics`, re-read only when they are announced. */
export function useTopics(client, topics, read) {
  const cache = useRef({ version: -1, value: undefined });
  const version = useRef(0);
  const key = topics.join("|");
  const subscribe = useMemo(
    () => (notify) => {
      const offs = topics.map((t) =>
        client.watch(t, () => {
          version.current += 1;
          notify();
        }),
      );
      return () => offs.forEach((off) => off());
    },
    [client, key],
  );
  const getSnapshot = () => {
    if (cache.current.version !== version.current || cache.current.key !== key) {
      cache.current = { version: version.current, key, value: read() };
    }
    return cache.current.value;
  };
  return useSyncExternalStore(subscribe, getSnapshot, getSnapshot);
}

/** The connection status, re-rendered on changes of state and (once per frame) of stats. */
export function useConnectionStatus() {
  return useClientStatus(useTickwire());
}

const STATUS_TOPICS = ["status", "stats"];
const NO_TOPICS = [];

/**
 * `client.status` as useConnectionStatus reads it. With `watching` false it is read once
 * and never re-renders (hooks that need no status then still call this one hook).
 */
export function useClientStatus(client, watching = true) {
  return useTopics(client, watching ? STATUS_TOPICS : NO_TOPICS, () => client.status);
}


/**
 * One stream's state (`{state, detail}`, or null before it is subscribed), re-rendered
 * only when that changes: never for its events' counts.
 */
export function useStreamState(client, key) {
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

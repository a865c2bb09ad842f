// Wires: what actually travels on a connection. Entries (subscriptions) map to wires:
// - over a WebSocket, one wire per stream name (all `prices` entries share one, with the
//   union of their symbols);
// - over SSE and polling, the caller's own streams share one `/api/stream/me?streams=...`
//   wire, `prices` one wire with the union of symbols, anything else a wire of its own.
// A wire routes what arrives to its entries, and says where to resume.

import { belongsTo, idTime, joinsMe } from "./streams.js";

export class Wire {
  /** @param {string} key @param {string} stream @param {Record<string,string>} query @param {import("./registry.js").Entry[]} entries */
  constructor(key, stream, query, entries, composite = false) {
    this.key = key;
    this.stream = stream;
    this.query = query;
    this.entries = entries;
    this.composite = composite;
    this.signature = stream + JSON.stringify(query);
  }

  get isPublic() {
    return this.entries.every((e) => e.isPublic);
  }

  /**
   * Where to resume: null when an entry never started (it needs its snapshot or buffered
   * events), else the earliest of the entries' positions (replaying a little more is
   * safe: duplicates are dropped by id).
   */
  resumeId() {
    let best = null;
    for (const entry of this.entries) {
      if (!entry.lastId) {
        if (entry.started) continue; // live and nothing came: caught up with its wire-mates
        return null;
      }
      if (!best || earlier(entry, best)) best = entry;
    }
    return best ? best.lastId : null;
  }

  /**
   * The entries an event goes to, each with the data it sees.
   * @returns {Array<[import("./registry.js").Entry, any]>}
   */
  route(type, data) {
    if (this.composite && !CONTROL.has(type)) {
      return this.entries.filter((e) => belongsTo(e.stream, type, data)).map((e) => [e, data]);
    }
    if (this.stream === "prices" && type === "price:update" && data) {
      return this.entries.flatMap((e) => pricesFor(e, data));
    }
    return this.entries.map((e) => [e, data]);
  }
}

const CONTROL = new Set(["connected", "stream:reset", "connection:limit", "auth:expired", "test"]);

function earlier(a, b) {
  const ta = idTime(a.lastId);
  const tb = idTime(b.lastId);
  if (ta !== tb && !Number.isNaN(ta) && !Number.isNaN(tb)) return ta < tb;
  return a.lastSeq < b.lastSeq;
}

function pricesFor(entry, data) {
  const symbols = entry.params.symbols;
  if (!symbols) return [[entry, data]];
  if (data.initializing) {
    return [[entry, { ...data, prices: (data.prices || []).filter((p) => symbols.includes(p.symbol)) }]];
  }
  return symbols.includes(data.symbol) ? [[entry, data]] : [];
}

/**
 * The wires for `entries`.
 * @param {import("./registry.js").Entry[]} entries
 * @param {{grouped: boolean, useMe: boolean}} how grouped: SSE/poll grouping
 * @returns {Map<string, Wire>}
 */
export function planWires(entries, { grouped, useMe }) {
  const groups = new Map();
  const add = (key, entry) => {
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(entry);
  };
  for (const entry of entries) {
    if (entry.stream === "prices") add("prices", entry);
    else if (grouped && useMe && joinsMe(entry.stream, entry.params)) add("me", entry);
    else add(grouped ? entry.key : entry.stream, entry);
  }
  const wires = new Map();
  for (const [key, members] of groups) wires.set(key, makeWire(key, members));
  return wires;
}

function makeWire(key, members) {
  if (key === "me") {
    const streams = [...new Set(members.map((e) => e.stream))].sort().join(",");
    return new Wire(key, "me", { streams }, members, true);
  }
  const first = members[0];
  const query = {};
  if (first.stream === "prices") {
    const all = members.some((e) => !e.params.symbols);
    if (!all) query.symbols = [...new Set(members.flatMap((e) => e.params.symbols))].sort().join(",");
  }
  if (first.params.userId) query.userId = first.params.userId;
  return new Wire(key, first.stream, query, members);
}

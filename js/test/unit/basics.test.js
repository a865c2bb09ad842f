import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay } from "../../src/backoff.js";
import { RecentIds } from "../../src/dedup.js";
import { LocalState } from "../../src/local.js";
import { decode, encode } from "../../src/msgpack.js";
import { SequenceWatch, sequenced } from "../../src/sequence.js";
import { colorOf } from "../../src/status.js";
import { SseParser } from "../../src/transports/sse-reader.js";
import { FakeClock } from "./fakes.js";
import { FrameBatcher, KeyThrottle } from "../../src/throttle.js";

test("backoff: 1 s doubling to 16 s, each within +-20%", () => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const base = Math.min(16000, 1000 * 2 ** attempt);
    assert.equal(backoffDelay(attempt, {}, () => 0), Math.round(base * 0.8));
    assert.equal(backoffDelay(attempt, {}, () => 0.999999), Math.round(base * 1.2 - 0.0000008 * base));
    assert.equal(backoffDelay(attempt, {}, () => 0.5), base);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(attempt);
      assert.ok(d >= base * 0.8 && d <= base * 1.2, `${attempt}: ${d}`);
    }
  }
  assert.equal(backoffDelay(50, {}, () => 0.5), 16000);
});

test("dedup memory is bounded: the oldest id is forgotten first", () => {
  const ids = new RecentIds(3);
  assert.equal(ids.add("a"), true);
  assert.equal(ids.add("a"), false);
  ids.add("b");
  ids.add("c");
  ids.add("d");
  assert.equal(ids.size, 3);
  assert.equal(ids.has("a"), false);
  assert.equal(ids.add("b"), false);
});

test("local state: snapshots replace, deltas and fills merge, closed positions go", () => {
  const topics = [];
  const local = new LocalState((t) => topics.push(t));
  local.apply("order:update", { snapshot: true, orders: [{ orderId: "o1", symbol: "AAPL", qty: 10, status: "new" }] });
  local.apply("order:update", { orderId: "o2", symbol: "MSFT", qty: 5, status: "new" });
  const before = local.orders;
  local.apply("order:fill", { orderId: "o1", filledQty: 10, filledAvgPrice: 187.5, status: "filled" });
  assert.notEqual(local.orders, before, "a new Map on every change");
  assert.deepEqual(local.orders.get("o1"), { orderId: "o1", symbol: "AAPL", qty: 10, status: "filled", filledQty: 10, filledAvgPrice: 187.5 });
  assert.equal(local.orders.size, 2);
  local.apply("position:update", { snapshot: true, positions: [{ symbol: "AAPL", quantity: 10, value: 1875 }], totalValue: 1875 });
  local.apply("position:update", { symbol: "MSFT", quantity: 5, value: 2000, totalValue: 3875 });
  assert.equal(local.totalValue, 3875);
  local.apply("position:update", { symbol: "AAPL", quantity: 0, realizedPnL: 12, totalValue: 2000 });
  assert.deepEqual([...local.positions.keys()], ["MSFT"]);
  assert.equal(local.totalValue, 2000);
  local.apply("price:update", { initializing: true, prices: [{ symbol: "AAPL", price: 1, bid: 0.9 }] });
  local.apply("price:update", { symbol: "AAPL", price: 2, delta: true });
  assert.deepEqual(local.prices.get("AAPL"), { symbol: "AAPL", price: 2, bid: 0.9, delta: true });
  assert.ok(topics.includes("orders") && topics.includes("positions") && topics.includes("prices:AAPL"));
  local.clearUser();
  assert.equal(local.orders.size + local.positions.size, 0);
  assert.equal(local.prices.size, 1, "prices are public: kept");
});

test("status colours", () => {
  assert.equal(colorOf("connected"), "green");
  for (const s of ["connecting", "reconnecting", "fallback"]) assert.equal(colorOf(s), "yellow");
  for (const s of ["disconnected", "closed"]) assert.equal(colorOf(s), "red");
});

test("msgpack: round trip, and what the server's Python msgpack writes", () => {
  const value = { a: [1, -1, -33, 200, 70000, -70000, 2 ** 40, 1.5, null, true, "é".repeat(40)], b: {} };
  assert.deepEqual(decode(encode(value)), value);
  const fromPython =
    "85a474797065a56576656e74a673747265616da6707269636573a56576656e74ac70726963653a757064617465a26964b0313830303030303030303030302d7031a46461746189a673796d626f6ca44141504ca57072696365cb4067680000000000a3626964cb4067666666666666a473697a65cd012ca36e6567fba3626967cf0000010000000000a26f6bc3a46e6f6e65c0a46c69737493010203";
  const msg = decode(Buffer.from(fromPython, "hex"));
  assert.deepEqual(msg, {
    type: "event",
    stream: "prices",
    event: "price:update",
    id: "1800000000000-p1",
    data: { symbol: "AAPL", price: 187.25, bid: 187.2, size: 300, neg: -5, big: 2 ** 40, ok: true, none: null, list: [1, 2, 3] },
  });
  assert.throws(() => decode(Uint8Array.of(0x92, 0x01)), /truncated/);
});

test("SSE parser: split chunks, CRLF, comments, multi-line data", () => {
  const events = [];
  const parser = new SseParser((type, id, data) => events.push([type, id, data]));
  const text = ": keepalive\r\n\r\nevent: order:update\r\ndata: {\"a\":\r\ndata: 1}\r\nid: 1-x\r\nretry: 5000\r\n\r\nevent: connected\ndata: {}\n\n";
  for (let i = 0; i < text.length; i += 3) parser.push(text.slice(i, i + 3));
  assert.deepEqual(events, [
    ["order:update", "1-x", '{"a":\n1}'],
    ["connected", null, "{}"],
  ]);
});

test("per-key throttle: first at once, then at most one per window, latest wins", async () => {
  const clock = new FakeClock();
  const throttle = new KeyThrottle(clock, 100);
  const out = [];
  for (let i = 1; i <= 10; i++) {
    throttle.push("AAPL", () => out.push(["AAPL", i, clock.now()]));
    throttle.push("MSFT", () => out.push(["MSFT", i, clock.now()]));
    await clock.advance(10);
  }
  await clock.advance(300);
  const t0 = 1_800_000_000_000;
  assert.deepEqual(out, [
    ["AAPL", 1, t0],
    ["MSFT", 1, t0],
    ["AAPL", 10, t0 + 100],
    ["MSFT", 10, t0 + 100],
  ]);
});

test("frame batcher: many marks, one call per frame per renderer", async () => {
  const clock = new FakeClock();
  const batcher = new FrameBatcher({ ...clock, requestAnimationFrame: (fn) => clock.setTimeout(fn, 16) });
  let a = 0;
  let b = 0;
  batcher.subscribe("prices:AAPL", () => a++);
  batcher.subscribe("prices:MSFT", () => b++);
  for (let i = 0; i < 20; i++) batcher.mark("prices:AAPL");
  await clock.advance(16);
  assert.deepEqual([a, b], [1, 0]);
});

test("seq holes: per type, per strategy for strategy events; overlaps are no holes; only whole-sequence streams", () => {
  const w = new SequenceWatch();
  const s = (id) => ({ strategyId: id });
  assert.equal(w.hole("order:update", {}, 7), null, "no baseline yet");
  w.note("order:update", {}, 7);
  w.note("strategy:update", s("a"), 3);
  assert.equal(w.hole("order:update", {}, 8), null);
  assert.equal(w.hole("order:update", {}, 5), null, "seen already (a replay's overlap)");
  assert.equal(w.hole("order:fill", {}, 40), null, "another type: its own numbering");
  assert.equal(w.hole("strategy:update", s("b"), 9), null, "another strategy: its own numbering");
  assert.equal(w.hole("price:update", {}, null), null, "ticks carry no seq");
  const hole = w.hole("strategy:update", s("a"), 6);
  assert.deepEqual(hole, { key: "strategy:update:a", after: 3, missing: 2 });
  assert.equal(w.shouldRepair(hole), true);
  assert.equal(w.note("strategy:update", s("a"), 4), true, "the repair filled it");
  assert.equal(w.shouldRepair(w.hole("order:update", {}, 10)), true);
  assert.equal(w.shouldRepair(w.hole("order:update", {}, 10)), false, "the same hole after a repair: accepted");
  assert.equal(w.hole("order:update", {}, 10), null);
  w.clear();
  assert.equal(w.hole("order:update", {}, 99), null, "a snapshot or reset: a new baseline");
  assert.deepEqual(["orders", "alerts", "strategies/s1", "scans/x", "prices"].map(sequenced), [true, true, true, true, false]);
});

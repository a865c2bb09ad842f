import assert from "node:assert/strict";
import { test } from "node:test";
import { answer, openSocket, setup } from "./fakes.js";

const tick = (symbol, price, id) => ({ type: "event", stream: "prices", event: "price:update", id, data: { symbol, price } });

test("price callbacks are throttled per symbol (latest wins); orders and alerts never", async () => {
  const t = setup();
  const prices = [];
  const orders = [];
  t.client.subscribe("prices", { onEvent: (e) => prices.push(`${e.data.symbol}=${e.data.price}`) });
  t.client.subscribe("orders", { onEvent: (e) => orders.push(e.data.orderId) });
  const ws = await openSocket(t);
  for (let i = 1; i <= 20; i++) {
    ws.receive(tick("AAPL", i, `1800000000000-p${i}`));
    ws.receive({ type: "event", stream: "orders", event: "order:update", id: `1800000000000-o${i}`, data: { orderId: `o${i}` } });
    await t.clock.advance(5); // 20 ticks in 100 ms
  }
  await t.clock.advance(200);
  assert.deepEqual(prices, ["AAPL=1", "AAPL=20"]);
  assert.equal(orders.length, 20);
  assert.equal(t.client.local.prices.get("AAPL").price, 20, "local state is always the latest");
});

test("error alerts reach their callback at once, each one, while the same burst's prices wait", async () => {
  const t = setup();
  const prices = [];
  const alerts = [];
  t.client.subscribe("prices", { onEvent: (e) => prices.push(e.data.price) });
  t.client.subscribe("alerts", { onEvent: (e) => alerts.push(e.data.alertId) });
  const ws = await openSocket(t);
  for (let i = 1; i <= 10; i++) {
    ws.receive(tick("AAPL", i, `1800000000000-e${i}`));
    const data = { alertId: `a${i}`, severity: "error", level: "error", urgent: true, message: `m${i}` };
    ws.receive({ type: "event", stream: "alerts", event: "alert:new", id: `1800000000000-k${i}`, data });
    assert.equal(alerts.length, i, "synchronously, on arrival (no timer ran)");
  }
  assert.deepEqual(prices, [1], "the prices of the burst are throttled");
  await t.clock.advance(200);
  assert.deepEqual(prices, [1, 10]);
  assert.deepEqual(alerts, ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10"]);
});

test("renderers watching a symbol are called once per frame, and only for their symbol", async () => {
  const t = setup();
  t.client.subscribe("prices");
  const ws = await openSocket(t);
  let aapl = 0;
  let msft = 0;
  t.client.watch("prices:AAPL", () => aapl++);
  t.client.watch("prices:MSFT", () => msft++);
  for (let i = 0; i < 10; i++) ws.receive(tick("AAPL", i, `1800000000000-q${i}`));
  await t.clock.advance(50);
  assert.equal(aapl, 1);
  assert.equal(msft, 0);
});

test("a remount within 30 s shows the cached snapshot at once and resumes; after 30 s it starts fresh", async () => {
  const t = setup();
  const first = t.client.subscribe("orders");
  const ws = await openSocket(t);
  ws.receive({ type: "event", stream: "orders", event: "order:update", id: "1800000000000-s1", data: { snapshot: true, orders: [{ orderId: "o1" }] } });
  ws.receive({ type: "event", stream: "orders", event: "order:update", id: "1800000000001-s2", data: { orderId: "o2" } });
  first.release();
  await t.clock.advance(20);
  assert.deepEqual(ws.sentOf("unsubscribe")[0].streams, ["orders"]);
  await t.clock.advance(10_000);
  const seen = [];
  const again = t.client.subscribe("orders", { onEvent: (e) => seen.push(e) });
  assert.equal(seen.length, 1, "at once, before the server answers");
  assert.equal(seen[0].replayed, true);
  assert.deepEqual(seen[0].data.orders.map((o) => o.orderId), ["o1", "o2"]);
  await t.clock.advance(20);
  assert.deepEqual(ws.sentOf("subscribe").at(-1).streams, [{ stream: "orders", lastEventId: "1800000000001-s2" }]);
  again.release();
  await t.clock.advance(31_000);
  const late = [];
  t.client.subscribe("orders", { onEvent: (e) => late.push(e) });
  await t.clock.advance(20);
  assert.equal(late.length, 0);
  assert.deepEqual(ws.sentOf("subscribe").at(-1).streams, [{ stream: "orders" }], "fresh: the cache expired");
});

test("a second subscriber of a live stream gets its current state at once", async () => {
  const t = setup();
  t.client.subscribe("prices", { symbols: ["AAPL"] });
  const ws = await openSocket(t);
  ws.receive({ type: "event", stream: "prices", event: "price:update", id: "1800000000000-i1", data: { initializing: true, prices: [{ symbol: "AAPL", price: 5 }] } });
  ws.receive(tick("AAPL", 6, "1800000000000-i2"));
  const seen = [];
  t.client.subscribe("prices", { symbols: ["AAPL"], onEvent: (e) => seen.push(e) });
  assert.deepEqual(seen[0].data.prices, [{ symbol: "AAPL", price: 6 }]);
});

test("a new symbol re-subscribes prices with the union, fresh (its snapshot is needed)", async () => {
  const t = setup();
  const seen = { a: [], m: [] };
  t.client.subscribe("prices", { symbols: ["AAPL"], onEvent: (e) => seen.a.push(e) });
  const ws = await openSocket(t);
  ws.receive({ type: "event", stream: "prices", event: "price:update", id: "1800000000000-j1", data: { initializing: true, prices: [{ symbol: "AAPL", price: 1 }] } });
  t.client.subscribe("prices", { symbols: ["MSFT"], onEvent: (e) => seen.m.push(e) });
  await t.clock.advance(20);
  assert.deepEqual(ws.sentOf("subscribe").at(-1).streams, [{ stream: "prices", symbols: ["AAPL", "MSFT"] }]);
  ws.receive({ type: "event", stream: "prices", event: "price:update", id: "1800000000000-j2", data: { initializing: true, prices: [{ symbol: "AAPL", price: 1 }, { symbol: "MSFT", price: 2 }] } });
  ws.receive(tick("MSFT", 3, "1800000000000-j3"));
  assert.deepEqual(seen.m.map((e) => e.data.prices?.length ?? e.data.price), [1, 3]);
  assert.deepEqual(seen.a.at(-1).data.prices, [{ symbol: "AAPL", price: 1 }]);
});

test("status transitions: connecting, connected, reconnecting, connected, closed", async () => {
  const t = setup();
  const states = [];
  t.client.onStatus((s) => states.push(s.state));
  t.client.subscribe("prices");
  assert.equal(t.client.status.state, "connecting");
  let ws = await openSocket(t);
  ws.serverClose(1011);
  await t.clock.advance(1200);
  ws = t.WebSocket.last();
  ws.open();
  ws.receive({ type: "pong", ts: t.clock.now() });
  await t.clock.advance(20);
  t.client.close();
  assert.deepEqual(
    states.filter((s, i) => s !== states[i - 1]),
    ["connecting", "connected", "reconnecting", "connected", "closed"],
  );
  assert.equal(t.client.status.color, "red");
  assert.throws(() => t.client.subscribe("prices"), /closed/);
});

test("login keeps public streams flowing; logout clears the user's state", async () => {
  const t = setup();
  t.client.subscribe("prices");
  t.client.subscribe("orders");
  const ws = await openSocket(t);
  ws.receive({ type: "event", stream: "orders", event: "order:update", id: "1800000000000-l1", data: { snapshot: true, orders: [{ orderId: "o1" }] } });
  t.client.logout();
  assert.equal(t.client.local.orders.size, 0);
  await t.clock.advance(2000);
  const anon = t.WebSocket.last();
  assert.notEqual(anon, ws);
  anon.open();
  answer(anon);
  await t.clock.advance(20);
  assert.deepEqual(anon.sentOf("subscribe")[0].streams, [{ stream: "prices" }]);
  const token = ["e30", Buffer.from(JSON.stringify({ sub: "bob", exp: 1_900_000_000 })).toString("base64url"), "s"].join(".");
  t.client.login(token);
  await t.clock.advance(20);
  assert.equal(t.WebSocket.instances.length, 2, "the same socket: an auth message");
  assert.deepEqual(anon.sentOf("auth")[0], { type: "auth", token });
  assert.equal(anon.sentOf("subscribe").length, 1, "user streams wait for authenticated");
  anon.receive({ type: "authenticated", userId: "bob" });
  assert.deepEqual(anon.sentOf("subscribe")[1].streams, [{ stream: "orders" }], "bob's orders start fresh");
});

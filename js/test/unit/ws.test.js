import assert from "node:assert/strict";
import { test } from "node:test";
import { jwt, openSocket, setup } from "./fakes.js";

test("subscriptions are batched into one subscribe message and shared when equal", async () => {
  const t = setup();
  const seen = [];
  const a = t.client.subscribe("orders", { onEvent: (e) => seen.push(["a", e.type]) });
  const b = t.client.subscribe("orders", { onEvent: (e) => seen.push(["b", e.type]) });
  t.client.subscribe("prices", { symbols: ["MSFT", "AAPL"] });
  t.client.subscribe("prices", { symbols: ["AAPL"] });
  const ws = await openSocket(t);
  assert.deepEqual(ws.protocols, ["tickwire.json"]);
  assert.equal(ws.url, "ws://example.test/api/stream/ws");
  const subs = ws.sentOf("subscribe");
  assert.equal(subs.length, 1);
  assert.deepEqual(subs[0].streams, [{ stream: "orders" }, { stream: "prices", symbols: ["AAPL", "MSFT"] }]);
  ws.receive({ type: "event", stream: "orders", event: "order:update", id: "1800000000000-a1", data: { orderId: "o1", status: "new" } });
  assert.deepEqual(seen, [["a", "order:update"], ["b", "order:update"]]);
  a.release();
  await t.clock.advance(20);
  assert.equal(ws.sentOf("unsubscribe").length, 0, "one subscriber is left");
  b.release();
  await t.clock.advance(20);
  assert.deepEqual(ws.sentOf("unsubscribe")[0].streams, ["orders"]);
  assert.equal(t.client.status.state, "connected");
  assert.equal(t.client.status.color, "green");
});

test("duplicates are dropped by id and counted", async () => {
  const t = setup();
  const seen = [];
  t.client.subscribe("alerts", { onEvent: (e) => seen.push(e.id) });
  const ws = await openSocket(t);
  const alert = { type: "event", stream: "alerts", event: "alert:new", id: "1800000000000-x1", data: { alertId: "a1", message: "m" } };
  ws.receive(alert);
  ws.receive(alert);
  ws.receive({ ...alert, id: "1800000000001-x2" });
  assert.deepEqual(seen, ["1800000000000-x1", "1800000000001-x2"]);
  const stats = t.client.status.streams.alerts;
  assert.equal(stats.events, 2);
  assert.equal(stats.dupes, 1);
  assert.equal(stats.lastEventId, "1800000000001-x2");
});

test("after a drop every stream resumes from its last id, with backoff", async () => {
  const t = setup();
  t.client.subscribe("orders");
  t.client.subscribe("alerts");
  let ws = await openSocket(t);
  ws.receive({ type: "event", stream: "orders", event: "order:update", id: "1800000000000-o9", data: { orderId: "o1" } });
  ws.serverClose(1006);
  assert.equal(t.client.status.state, "reconnecting");
  assert.equal(t.client.status.color, "yellow");
  await t.clock.advance(999);
  assert.equal(t.WebSocket.instances.length, 1, "waits for the backoff (1 s +-20%, random 0.5 -> 1 s)");
  await t.clock.advance(1);
  ws = await openSocket(t);
  assert.equal(t.WebSocket.instances.length, 2);
  const streams = ws.sentOf("subscribe")[0].streams;
  assert.deepEqual(streams, [{ stream: "orders", lastEventId: "1800000000000-o9" }, { stream: "alerts" }]);
  assert.equal(t.client.status.state, "connected");
});

test("stream:reset is surfaced with reset: true and the fresh snapshot replaces local state", async () => {
  const t = setup();
  const seen = [];
  t.client.subscribe("orders", { onEvent: (e) => seen.push(e) });
  const ws = await openSocket(t);
  const snap = (orders, id) => ({ type: "event", stream: "orders", event: "order:update", id, data: { snapshot: true, orders } });
  ws.receive(snap([{ orderId: "o1", status: "new" }, { orderId: "o2", status: "new" }], "1800000000000-a1"));
  assert.deepEqual([...t.client.local.orders.keys()], ["o1", "o2"]);
  ws.receive({ type: "event", stream: "orders", event: "stream:reset", data: { recovered: false, reason: "unknown_epoch" } });
  ws.receive(snap([{ orderId: "o3", status: "new" }], "1800000000005-b1"));
  const reset = seen.find((e) => e.type === "stream:reset");
  assert.equal(reset.reset, true);
  assert.equal(reset.data.reason, "unknown_epoch");
  assert.deepEqual([...t.client.local.orders.keys()], ["o3"]);
  assert.equal(t.client.status.streams.orders.gaps, 1);
});

test("a token is sent in an auth message before subscribing; close codes decide about reconnecting", async () => {
  const token = jwt({ sub: "alice", exp: 1_800_000_000 + 3600 });
  const t = setup({ token });
  t.client.subscribe("orders");
  const ws = await openSocket(t);
  assert.deepEqual(ws.sent[0], { type: "auth", token });
  assert.equal(ws.sentOf("subscribe").length, 0, "waits for authenticated");
  ws.receive({ type: "authenticated", userId: "alice", v: 1 });
  await t.clock.advance(20);
  assert.equal(ws.sentOf("subscribe").length, 1);
  ws.receive({ type: "event", stream: "orders", event: "connection:limit", data: { message: "limit", limit: 10 } });
  ws.serverClose(4029, "too many connections for this user");
  await t.clock.advance(60_000);
  assert.equal(t.WebSocket.instances.length, 1, "4029: no reconnect");
  assert.equal(t.client.status.state, "disconnected");
  assert.equal(t.client.status.color, "red");
  t.client.reconnect();
  await t.clock.advance(0);
  assert.equal(t.WebSocket.instances.length, 2, "reconnect() tries again");
});

test("1008 ends the client; an unknown protocol version is refused", async () => {
  const t = setup();
  t.client.subscribe("prices");
  let ws = await openSocket(t);
  ws.serverClose(1008, "policy violation");
  await t.clock.advance(60_000);
  assert.equal(t.client.status.state, "disconnected");
  assert.match(t.client.status.lastError, /policy/);
  t.client.reconnect();
  ws = await openSocket(t);
  ws.receive({ type: "subscribed", rid: "1", streams: [{ stream: "prices", recovered: true }], v: 2 });
  assert.equal(t.client.status.state, "disconnected");
  assert.match(t.client.status.lastError, /version 2/);
});

test("4001 with getToken reconnects with a new token; without one, public streams go on anonymously", async () => {
  let n = 0;
  const getToken = async () => jwt({ sub: "alice", exp: 1_800_000_000 + 3600, n: ++n });
  const t = setup({ getToken });
  t.client.subscribe("orders");
  let ws = await openSocket(t);
  assert.equal(ws.sent[0].type, "auth");
  ws.receive({ type: "authenticated", userId: "alice" });
  ws.receive({ type: "event", stream: "orders", event: "auth:expired", data: { message: "expired" } });
  ws.serverClose(4001, "token expired");
  await t.clock.advance(600);
  ws = t.WebSocket.last();
  assert.equal(t.WebSocket.instances.length, 2, "reconnected at once");
  ws.open();
  await t.clock.advance(0);
  assert.equal(ws.sent[0].token.split(".")[1], getTokenPayload(2));

  const u = setup({ token: jwt({ sub: "bob", exp: 1_800_000_000 + 3600 }) });
  u.client.subscribe("orders");
  u.client.subscribe("prices");
  const first = await openSocket(u);
  first.serverClose(4001, "invalid or expired token");
  await u.clock.advance(600);
  const second = u.WebSocket.last();
  assert.equal(u.WebSocket.instances.length, 2);
  second.open();
  await u.clock.advance(20);
  assert.equal(second.sentOf("auth").length, 0, "anonymous now");
  assert.deepEqual(second.sentOf("subscribe")[0].streams, [{ stream: "prices" }]);
  assert.equal(u.client.status.streams.orders.state, "unauthorized");
});

function getTokenPayload(n) {
  return Buffer.from(JSON.stringify({ sub: "alice", exp: 1_800_000_000 + 3600, n })).toString("base64url");
}

test("pings measure the round trip; 90 s without bytes is a stale connection", async () => {
  const t = setup();
  t.client.subscribe("prices");
  const ws = await openSocket(t);
  const ping = ws.sentOf("ping")[0];
  assert.ok(ping, "pings at once");
  await t.clock.advance(42);
  ws.receive({ type: "pong", ts: ping.ts });
  assert.equal(t.client.status.rttMs, t.clock.now() - ping.ts);
  // Pongs keep it alive...
  for (let i = 0; i < 5; i++) {
    await t.clock.advance(25_000);
    ws.receive({ type: "pong", ts: t.clock.now() });
  }
  assert.equal(t.WebSocket.instances.length, 1);
  // ... silence for 90 s does not.
  await t.clock.advance(90_000);
  assert.equal(ws.closedWith.code, 4000);
  assert.equal(t.client.status.state, "reconnecting");
  assert.match(t.client.status.lastError, /stale/);
  await t.clock.advance(1200);
  assert.equal(t.WebSocket.instances.length, 2);
});

test("the token is refreshed before exp and sent on the open socket", async () => {
  const exp = 1_800_000_000 + 120; // the fake clock starts at 1_800_000_000_000 ms
  let calls = 0;
  const t = setup({ getToken: async () => jwt({ sub: "alice", exp: exp + 3600 * calls++ }) });
  t.client.subscribe("orders");
  const ws = await openSocket(t);
  ws.receive({ type: "authenticated", userId: "alice" });
  await t.clock.advance(20);
  assert.equal(calls, 1);
  await t.clock.advance(90_000); // exp - 30 s
  assert.equal(calls, 2);
  const auths = ws.sentOf("auth");
  assert.equal(auths.length, 2, "fresh token sent on the same socket");
  assert.equal(t.WebSocket.instances.length, 1);
});

test("msgpack subprotocol: binary commands", async () => {
  const t = setup({ protocol: "msgpack" });
  t.client.subscribe("prices");
  const ws = await openSocket(t);
  assert.deepEqual(ws.protocols, ["tickwire.msgpack"]);
  assert.deepEqual(ws.sentOf("subscribe")[0].streams, [{ stream: "prices" }]);
});

test("coming back online reconnects at once", async () => {
  const t = setup();
  t.client.subscribe("prices");
  const ws = await openSocket(t);
  t.navigator.onLine = false;
  ws.serverClose(1006);
  await t.clock.advance(100);
  t.navigator.onLine = true;
  t.win.dispatch("online");
  await t.clock.advance(0);
  assert.equal(t.WebSocket.instances.length, 2);
});

test("a page visible again after a long hidden period reconnects", async () => {
  const t = setup();
  t.client.subscribe("prices");
  await openSocket(t);
  t.doc.visibilityState = "hidden";
  t.doc.dispatch("visibilitychange");
  await t.clock.advance(10_000);
  t.doc.visibilityState = "visible";
  t.doc.dispatch("visibilitychange");
  await t.clock.advance(0);
  assert.equal(t.WebSocket.instances.length, 1, "short: a ping is enough");
  t.doc.visibilityState = "hidden";
  t.doc.dispatch("visibilitychange");
  t.clock.t += 120_000; // timers of hidden pages are throttled: time passes without them
  t.doc.visibilityState = "visible";
  t.doc.dispatch("visibilitychange");
  await t.clock.advance(0);
  assert.equal(t.WebSocket.instances.length, 2);
});

test("getToken giving no token: user streams wait as unauthorized (no retry loop) until login", async () => {
  let calls = 0;
  const t = setup({ getToken: async () => (calls++, "") });
  t.client.subscribe("prices");
  t.client.subscribe("orders");
  const ws = await openSocket(t);
  assert.equal(ws.sentOf("auth").length, 0, "anonymous");
  assert.deepEqual(ws.sentOf("subscribe")[0].streams, [{ stream: "prices" }, { stream: "orders" }]);
  ws.receive({ type: "error", rid: "1", code: "unauthorized", message: "log in first", stream: "orders" });
  ws.receive({ type: "subscribed", rid: "1", streams: [{ stream: "prices", recovered: true }], v: 1 });
  await t.clock.advance(10_000);
  assert.equal(calls, 2, "asked once before connecting and once on the refusal");
  assert.equal(ws.sentOf("subscribe").length, 1, "no re-subscribe loop");
  assert.equal(t.client.status.streams.orders.state, "unauthorized");
  assert.equal(t.client.status.streams.prices.state, "live");
  const token = jwt({ sub: "carol", exp: 1_800_000_000 + 3600 });
  t.client.login(token);
  await t.clock.advance(20);
  assert.deepEqual(ws.sentOf("auth").at(-1), { type: "auth", token });
  ws.receive({ type: "authenticated", userId: "carol", v: 1 });
  await t.clock.advance(20);
  assert.deepEqual(ws.sentOf("subscribe").at(-1).streams, [{ stream: "orders" }]);
  assert.equal(t.WebSocket.instances.length, 1, "prices never stopped");
});

test("a refusal on a socket without a user sends getToken's fresh token on that socket", async () => {
  let token = "";
  const t = setup({ getToken: async () => token });
  t.client.subscribe("orders");
  const ws = await openSocket(t);
  token = jwt({ sub: "dave", exp: 1_800_000_000 + 3600 });
  ws.receive({ type: "error", rid: "1", code: "unauthorized", message: "log in first", stream: "orders" });
  await t.clock.advance(20);
  assert.deepEqual(ws.sentOf("auth"), [{ type: "auth", token }]);
  ws.receive({ type: "authenticated", userId: "dave", v: 1 });
  await t.clock.advance(20);
  assert.deepEqual(ws.sentOf("subscribe").at(-1).streams, [{ stream: "orders" }]);
});

test("a seq jump resubscribes that stream from its last id; the replay fills the hole in order", async () => {
  const t = setup();
  const seen = [];
  const replayed = [];
  t.client.subscribe("trading", { onEvent: (e) => (e.replayed ? replayed : seen).push(e.data.n) });
  t.client.subscribe("strategies/s1");
  const ws = await openSocket(t);
  const ev = (stream, event, n, seq, data = {}) =>
    ws.receive({ type: "event", stream, event, id: `18000000000${String(n).padStart(2, "0")}-x${n}`, seq, data: { orderId: "o", ...data, n } });
  ev("trading", "order:update", 1, 4);
  ev("trading", "order:fill", 2, 9); // another sequence key
  ev("trading", "order:update", 3, 5);
  ev("trading", "order:update", 3, 5); // a duplicate: neither an event nor a hole
  ev("strategies/s1", "strategy:update", 4, 1, { strategyId: "s1" });
  ev("strategies/s1", "strategy:update", 5, 2, { strategyId: "s1" });
  assert.equal(ws.sentOf("unsubscribe").length, 0);
  ev("trading", "order:update", 8, 8); // 6 and 7 are missing
  ev("trading", "order:fill", 9, 10); // sent before the server saw the resubscribe: dropped
  assert.deepEqual(ws.sentOf("unsubscribe").at(-1).streams, ["trading"]);
  assert.deepEqual(ws.sentOf("subscribe").at(-1).streams, [{ stream: "trading", lastEventId: "1800000000003-x3" }]);
  assert.equal(t.client.status.streams.trading.lastEventId, "1800000000003-x3");
  ws.receive({ type: "unsubscribed", rid: "3", streams: ["trading"] });
  ev("trading", "order:update", 6, 6);
  ev("trading", "order:update", 7, 7);
  ev("trading", "order:update", 8, 8);
  ev("trading", "order:fill", 9, 10);
  ws.receive({ type: "subscribed", rid: "4", streams: [{ stream: "trading", recovered: true }], v: 1 });
  assert.deepEqual(seen, [1, 2, 3]);
  assert.deepEqual(replayed, [6, 7, 8, 9], "the repair's replay, in order, marked as such");
  let stats = t.client.status.streams.trading;
  assert.deepEqual([stats.gaps, stats.repaired, stats.missed, stats.dupes], [1, 1, 0, 1]);
  assert.equal(t.client.status.streams["strategies/s1"].gaps, 0);

  ev("trading", "order:update", 12, 12); // 9..11 missing, and the server does not have them
  ws.receive({ type: "unsubscribed", rid: "5", streams: ["trading"] });
  ev("trading", "order:update", 12, 12);
  ws.receive({ type: "subscribed", rid: "6", streams: [{ stream: "trading", recovered: true }], v: 1 });
  assert.equal(ws.sentOf("subscribe").length, 3, "one repair; the same hole again is accepted, not repaired forever");
  stats = t.client.status.streams.trading;
  assert.deepEqual([stats.gaps, stats.repaired, stats.missed], [2, 1, 3]);
  ev("trading", "order:update", 13, 13);
  assert.deepEqual([replayed.at(-1), seen.at(-1)], [12, 13]);
  assert.equal(ws.sentOf("subscribe").length, 3);

  ws.receive({ type: "event", stream: "trading", event: "order:update", id: "1800000000020-s", data: { snapshot: true, orders: [] } });
  ev("trading", "order:update", 21, 40);
  assert.equal(t.client.status.streams.trading.gaps, 2, "after a snapshot: a new baseline");
});

test("a frame that is not a message is logged and skipped; the socket and its streams keep going", async () => {
  const logged = [];
  const t = setup({}, { console: { error: (...args) => logged.push(args[0]), warn() {}, log() {} } });
  const seen = [];
  t.client.subscribe("orders", { onEvent: (e) => seen.push(e.data.orderId) });
  const ws = await openSocket(t);
  const order = (n) => ({ type: "event", stream: "orders", event: "order:update", id: `1800000000000-f${n}`, data: { orderId: `o${n}` } });
  ws.receive(order(1));
  ws.onmessage({ data: '{"type": "event", "stream": "orders"' });
  ws.onmessage({ data: new Uint8Array([0xc1]).buffer }); // a byte MessagePack never uses
  ws.receive(order(2));
  assert.deepEqual(seen, ["o1", "o2"]);
  assert.deepEqual(logged, ["tickwire: bad WebSocket message", "tickwire: bad WebSocket message"]);
  await t.clock.advance(1000);
  assert.equal(t.WebSocket.instances.length, 1, "no reconnect");
  assert.equal(ws.closedWith, undefined);
  assert.equal(t.client.status.state, "connected");
  assert.equal(t.client.status.streams.orders.events, 2);
});

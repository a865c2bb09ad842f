import assert from "node:assert/strict";
import { test } from "node:test";
import { jwt, setup, sse } from "./fakes.js";

test("SSE: the user's streams share one /me response, told apart by type; prices beside", async () => {
  const token = jwt({ sub: "alice", exp: 1_800_003_600 });
  const t = setup({ transport: "sse", token });
  const links = {};
  t.net.handler = (url) => ({
    status: 200,
    sse: (c) => {
      links[url.includes("/me") ? "me" : "prices"] = c;
      c.push(sse("connected", { clientId: "c", stream: "me", v: 1 }));
    },
  });
  const seen = { orders: [], positions: [], strategy: [], prices: [] };
  t.client.subscribe("orders", { onEvent: (e) => seen.orders.push(e.type) });
  t.client.subscribe("positions", { onEvent: (e) => seen.positions.push(e.type) });
  t.client.subscribe("strategies/s1", { onEvent: (e) => seen.strategy.push(e.data.strategyId) });
  t.client.subscribe("prices", { symbols: ["AAPL"], onEvent: (e) => seen.prices.push(e.type) });
  await t.clock.advance(10);
  assert.equal(t.net.calls.length, 2);
  const me = t.net.calls.find((c) => c.url.includes("/me"));
  assert.equal(me.url, "/api/stream/me?streams=orders%2Cpositions%2Cstrategies%2Fs1");
  assert.equal(me.headers.Authorization, `Bearer ${token}`);
  const prices = t.net.calls.find((c) => c.url.includes("/prices"));
  assert.equal(prices.url, "/api/stream/prices?symbols=AAPL");
  assert.equal(prices.headers.Authorization, undefined, "public streams never use the user's token");
  links.me.push(sse("order:update", { snapshot: true, orders: [] }, "1800000000000-m1"));
  links.me.push(sse("position:update", { snapshot: true, positions: [], totalValue: 0 }, "1800000000000-m1"));
  links.me.push(sse("strategy:update", { strategyId: "s1", status: "running" }, "1800000000000-m2"));
  links.me.push(sse("order:fill", { orderId: "o1", filledQty: 1 }, "1800000000000-m3"));
  links.prices.push(": keepalive\n\n");
  await t.clock.advance(10);
  assert.deepEqual(seen.orders, ["order:update", "order:fill"]);
  assert.deepEqual(seen.positions, ["position:update"]);
  assert.deepEqual(seen.strategy, ["s1"]);
  assert.equal(t.client.status.state, "connected");
  // The response ends: it resumes from the last id of the shared log.
  links.me.end();
  await t.clock.advance(1200);
  const again = t.net.calls.filter((c) => c.url.includes("/me"));
  assert.equal(again.length, 2);
  assert.match(again[1].url, /lastEventId=1800000000000-m3$/);
});

test("SSE: 401 asks getToken again; auth:expired reconnects at once with a fresh token", async () => {
  let n = 0;
  const t = setup({ transport: "sse", getToken: () => jwt({ sub: "alice", exp: 1_800_003_600, n: ++n }) });
  let answers = 0;
  t.net.handler = () => {
    answers += 1;
    if (answers === 1) return { status: 401, json: { error: "Unauthorized", message: "Invalid or expired session", statusCode: 401 } };
    return { status: 200, sse: (c) => {
      c.push(sse("connected", { clientId: "c", stream: "me" }));
      if (answers === 2) c.push(sse("auth:expired", { message: "token expired" })), c.end();
    } };
  };
  t.client.subscribe("alerts");
  await t.clock.advance(900);
  assert.equal(n, 2, "once before connecting, once after the 401");
  await t.clock.advance(1000);
  assert.equal(t.net.calls.length, 3, "auth:expired: at once (under the 500 ms jitter)");
  assert.equal(n, 3);
  assert.notEqual(t.net.calls[2].headers.Authorization, t.net.calls[1].headers.Authorization);
});

test("SSE: a server without /me (404) gets one response per stream", async () => {
  const t = setup({ transport: "sse" });
  t.net.handler = (url) =>
    url.includes("/me") ? { status: 404, json: { message: "Unknown stream 'me'" } } : { status: 200, sse: (c) => c.push(sse("connected", {})) };
  t.client.subscribe("orders");
  t.client.subscribe("alerts");
  await t.clock.advance(50);
  const urls = t.net.calls.map((c) => c.url).sort();
  assert.deepEqual(urls, ["/api/stream/alerts", "/api/stream/me?streams=alerts%2Corders", "/api/stream/orders"]);
  assert.equal(t.client.status.state, "connected");
});

test("SSE: keepalive comments count as bytes for the stale watchdog", async () => {
  const t = setup({ transport: "sse", staleTimeoutMs: 90_000 });
  let link;
  t.net.handler = () => ({ status: 200, sse: (c) => ((link = c), c.push(sse("connected", {}))) });
  t.client.subscribe("prices");
  await t.clock.advance(10);
  for (let i = 0; i < 6; i++) {
    await t.clock.advance(30_000);
    link.push(": keepalive\n\n");
  }
  assert.equal(t.net.calls.length, 1, "alive for 3 minutes on keepalives");
  await t.clock.advance(90_000);
  assert.equal(link.aborted, true);
  assert.equal(t.client.status.state, "reconnecting");
});

/** An SSE frame with a `seq:` line, as the server writes log events. */
const logged = (type, data, id, seq) => `event: ${type}\ndata: ${JSON.stringify(data)}\nseq: ${seq}\nid: ${id}\nretry: 5000\n\n`;
const at = (ms) => new Date(ms).toISOString();

test("SSE: a resumed response marks its replay (stamped before `connected`); a seq jump reopens it from the last id", async () => {
  const t = setup({ transport: "sse" });
  const links = [];
  t.net.handler = () => ({ status: 200, sse: (c) => links.push(c) });
  const seen = [];
  t.client.subscribe("alerts", { onEvent: (e) => seen.push([e.data.alertId, e.replayed, e.seq]) });
  await t.clock.advance(10);
  let link = links.at(-1);
  link.push(sse("connected", { clientId: "c", stream: "me", v: 1, timestamp: at(1_800_000_000_000) }));
  link.push(logged("alert:new", { alertId: "a1" }, "1800000000100-x1", 1));
  link.push(logged("alert:new", { alertId: "a2" }, "1800000000200-x2", 2));
  link.end();
  await t.clock.advance(1200);
  assert.match(t.net.calls[1].url, /lastEventId=1800000000200-x2$/);
  link = links.at(-1);
  link.push(sse("connected", { clientId: "c", stream: "me", v: 1, timestamp: at(1_800_000_005_000) }));
  link.push(logged("alert:new", { alertId: "a3" }, "1800000003000-x3", 3));
  link.push(logged("alert:new", { alertId: "a6" }, "1800000006000-x6", 6) + logged("alert:new", { alertId: "a7" }, "1800000007000-x7", 7));
  await t.clock.advance(10);
  assert.equal(t.net.calls.length, 3, "the hole reopened the response at once");
  assert.match(t.net.calls[2].url, /lastEventId=1800000003000-x3$/);
  assert.equal(t.net.calls[1].aborted, true);
  link = links.at(-1);
  link.push(sse("connected", { clientId: "c", stream: "me", v: 1, timestamp: at(1_800_000_010_000) }));
  for (const n of [4, 5, 6, 7]) link.push(logged("alert:new", { alertId: `a${n}` }, `180000000${n}000-x${n}`, n));
  await t.clock.advance(10);
  assert.deepEqual(seen, [
    ["a1", false, 1],
    ["a2", false, 2],
    ["a3", true, 3],
    ["a4", true, 4],
    ["a5", true, 5],
    ["a6", true, 6],
    ["a7", true, 7],
  ]);
  const stats = t.client.status.streams.alerts;
  assert.deepEqual([stats.gaps, stats.repaired, stats.missed], [1, 1, 0]);
  assert.equal(t.client.status.state, "connected");
});

test("SSE over EventSource: control events and id-less snapshots carry no id (EventSource repeats the last one)", async () => {
  const sources = [];
  class FakeEventSource {
    constructor(url) {
      this.url = url;
      this.listeners = new Map();
      sources.push(this);
    }
    addEventListener(type, fn) {
      this.listeners.set(type, fn);
    }
    close() {
      this.closed = true;
    }
    emit(type, data, lastEventId) {
      this.listeners.get(type)?.({ type, data: JSON.stringify(data), lastEventId });
    }
  }
  const t = setup({ transport: "sse", sseReader: "eventsource" }, { EventSource: FakeEventSource });
  const seen = [];
  t.client.subscribe("orders", { onEvent: (e) => seen.push([e.type, e.id, e.reset]) });
  await t.clock.advance(10);
  const source = sources[0];
  source.onopen();
  source.emit("connected", { clientId: "c", stream: "me", v: 1 }, "");
  source.emit("order:update", { orderId: "o1" }, "1800000000000-a1");
  source.emit("stream:reset", { recovered: false, reason: "unknown_epoch" }, "1800000000000-a1");
  source.emit("order:update", { snapshot: true, orders: [] }, "1800000000000-a1"); // an empty log's snapshot: no id of its own
  source.emit("order:update", { orderId: "o2" }, "1800000000001-b1");
  assert.deepEqual(seen, [
    ["order:update", "1800000000000-a1", false],
    ["stream:reset", null, true],
    ["order:update", null, false],
    ["order:update", "1800000000001-b1", false],
  ]);
  assert.deepEqual([...t.client.local.orders.keys()], ["o2"], "the snapshot after the reset replaced the state");
  assert.equal(t.client.status.state, "connected");
});

test("SSE: data that is not JSON is logged and handed on as {unparsed}; the response keeps going", async () => {
  const logged = [];
  const t = setup({ transport: "sse" }, { console: { error: (...args) => logged.push(args[0]), warn() {}, log() {} } });
  let link;
  t.net.handler = () => ({ status: 200, sse: (c) => ((link = c), c.push(sse("connected", { clientId: "c", stream: "me", v: 1 }))) });
  const seen = [];
  t.client.subscribe("orders", { onEvent: (e) => seen.push(e.data) });
  await t.clock.advance(10);
  link.push(sse("order:update", { orderId: "o1" }, "1800000000000-u1"));
  link.push("event: order:update\ndata: {\"orderId\": \"o2\"\nid: 1800000000000-u2\n\n");
  link.push(sse("order:update", { orderId: "o3" }, "1800000000000-u3"));
  await t.clock.advance(10);
  assert.deepEqual(seen, [{ orderId: "o1" }, { unparsed: "{\"orderId\": \"o2\"" }, { orderId: "o3" }]);
  assert.deepEqual(logged, ["tickwire: SSE data that is not JSON"]);
  assert.deepEqual([...t.client.local.orders.keys()], ["o1", "o3"]);
  assert.equal(t.net.calls.length, 1, "the same response");
  assert.equal(t.client.status.state, "connected");
  assert.equal(t.client.status.streams.orders.events, 3);
});

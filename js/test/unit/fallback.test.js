import assert from "node:assert/strict";
import { test } from "node:test";
import { setup, sse } from "./fakes.js";

const pollAnswer = (events, lastEventId = null, recovered = true) => ({ status: 200, json: { events, lastEventId, recovered } });

test("auto: WebSocket, then SSE, then polling after 5 failed attempts; a probe every 30 s returns", async () => {
  const t = setup({ transport: "auto" });
  let sseUp = false;
  t.net.handler = (url) => {
    if (url.includes("/events")) return pollAnswer([{ event: "price:update", id: "1800000000000-p1", data: { initializing: true, prices: [] } }], "1800000000000-p1");
    if (sseUp) return { status: 200, sse: (c) => c.push(sse("connected", { clientId: "x", stream: "prices", v: 1 })) };
    return new TypeError("Failed to fetch");
  };
  t.client.subscribe("prices");
  await t.clock.advance(0);
  t.WebSocket.last().serverClose(1006);
  await t.clock.advance(1200);
  t.WebSocket.last().serverClose(1006);
  await t.clock.advance(0);
  assert.equal(t.client.status.transport, "sse", "two failed WebSockets: SSE");
  for (let i = 0; i < 600 && t.client.status.state !== "fallback"; i++) await t.clock.advance(100);
  const status = t.client.status;
  assert.equal(status.state, "fallback");
  assert.equal(status.color, "yellow");
  assert.equal(status.transport, "poll");
  assert.match(status.fallbackReason, /5 failed streaming attempts/);
  assert.ok(t.net.of("/api/stream/prices/events").length >= 1);
  // A probe round tries WebSocket, then SSE at once, then waits 30 s.
  let sockets = t.WebSocket.instances.length;
  const streams = t.net.calls.filter((c) => !c.url.includes("/events")).length;
  await t.clock.advance(30_000);
  assert.equal(t.WebSocket.instances.length, sockets + 1);
  t.WebSocket.last().serverClose(1006);
  await t.clock.advance(0);
  assert.equal(t.net.calls.filter((c) => !c.url.includes("/events")).length, streams + 1, "SSE tried right after");
  assert.equal(t.client.status.state, "fallback");
  // The next round starts with WebSocket again (which opens): streaming again.
  sockets = t.WebSocket.instances.length;
  await t.clock.advance(29_000);
  assert.equal(t.WebSocket.instances.length, sockets);
  await t.clock.advance(1_000);
  assert.equal(t.WebSocket.instances.length, sockets + 1);
  t.WebSocket.last().open();
  t.WebSocket.last().receive({ type: "pong", ts: t.clock.now() });
  await t.clock.advance(20);
  assert.equal(t.client.status.state, "connected");
  assert.equal(t.client.status.transport, "ws");
  assert.equal(t.client.status.fallbackReason, null);
});

test("without WebSocket and EventSource (nor streamed fetch) the client polls at once", async () => {
  const t = setup({ transport: "auto" }, { WebSocket: undefined, EventSource: undefined, AbortController: undefined });
  t.net.handler = () => pollAnswer([]);
  t.client.subscribe("prices");
  await t.clock.advance(0);
  assert.equal(t.client.status.transport, "poll");
  assert.match(t.client.status.fallbackReason, /no WebSocket or EventSource/);
});

test("poll: resume with after=, a reset when the id cannot be honoured", async () => {
  const t = setup({ transport: "poll" });
  const seen = [];
  let n = 0;
  t.net.handler = (url) => {
    n += 1;
    if (n === 1) return pollAnswer([{ event: "alert:new", id: "1800000000000-a1", data: { alertId: "a1", message: "m" } }], "1800000000000-a1");
    if (n === 2) return pollAnswer([], null, false);
    return pollAnswer([]);
  };
  t.client.subscribe("alerts", { onEvent: (e) => seen.push(e) });
  await t.clock.advance(3000);
  assert.match(t.net.calls[0].url, /\/api\/stream\/me\/events\?streams=alerts&limit=500$/);
  assert.match(t.net.calls[1].url, /after=1800000000000-a1&wait=25/);
  assert.deepEqual(seen.map((e) => [e.type, e.reset]), [["alert:new", false], ["stream:reset", true]]);
  assert.equal(t.client.status.state, "connected", "polling by choice is not a fallback");
});

test("poll: a seq jump asks again from the last id at once; a hole the server repeats is accepted", async () => {
  const t = setup({ transport: "poll" });
  const alert = (n, seq = n) => ({ event: "alert:new", id: `180000000000${n}-a${n}`, seq, data: { alertId: `a${n}` } });
  const answers = [
    pollAnswer([alert(1)], alert(1).id),
    pollAnswer([alert(2), alert(4)], alert(4).id), // 3 is missing
    pollAnswer([alert(3), alert(4)], alert(4).id), // from a2: the repair
    pollAnswer([alert(7)], alert(7).id), // 5 and 6 are missing...
    pollAnswer([alert(7)], alert(7).id), // ...and the server does not have them
  ];
  t.net.handler = () => answers.shift() ?? pollAnswer([]);
  const seen = [];
  t.client.subscribe("alerts", { onEvent: (e) => seen.push(e.data.alertId + (e.replayed ? " (replayed)" : "")) });
  await t.clock.advance(3000);
  const afters = t.net.calls.map((c) => new URL(c.url, "http://x").searchParams.get("after"));
  assert.deepEqual(afters.slice(0, 6), [null, alert(1).id, alert(2).id, alert(4).id, alert(4).id, alert(7).id]);
  assert.deepEqual(seen, ["a1", "a2", "a3 (replayed)", "a4 (replayed)", "a7 (replayed)"]);
  const stats = t.client.status.streams.alerts;
  assert.deepEqual([stats.gaps, stats.repaired, stats.missed], [2, 1, 2]);
});

test("poll of an empty log: no id to long-poll from, so a short poll each interval; an unchanged answer is not delivered again", async () => {
  const t = setup({ transport: "poll" });
  const snapshot = (orders, id) => ({ event: "order:update", id, data: { snapshot: true, orders, timestamp: new Date(t.clock.now()).toISOString() } });
  const answers = [
    pollAnswer([snapshot([], null)], null),
    pollAnswer([snapshot([], null)], null),
    pollAnswer([snapshot([{ orderId: "o1", status: "new" }], "1800000000000-a1")], "1800000000000-a1"),
  ];
  t.net.handler = () => answers.shift() ?? pollAnswer([], "1800000000000-a1");
  const seen = [];
  t.client.subscribe("orders", { onEvent: (e) => seen.push(e.data.orders.map((o) => o.orderId)) });
  await t.clock.advance(3500);
  const params = t.net.calls.map((c) => new URL(c.url, "http://x").searchParams);
  assert.deepEqual(params.slice(0, 4).map((p) => [p.get("after"), p.get("wait")]), [
    [null, null],
    [null, null],
    [null, null],
    ["1800000000000-a1", "25"],
  ]);
  assert.deepEqual(seen, [[], ["o1"]]);
  assert.equal(t.client.status.streams.orders.events, 2);
});

test("SSE: a session of several responses failing together is one attempt each time", async () => {
  const t = setup({ transport: "sse" });
  t.net.handler = (url) => (url.includes("/events") ? pollAnswer([]) : new TypeError("Failed to fetch"));
  t.client.subscribe("orders");
  t.client.subscribe("prices");
  await t.clock.advance(14_000); // attempts at 0, 1, 3 and 7 s (backoff 1, 2, 4 s), both responses each time
  assert.equal(t.net.calls.filter((c) => !c.url.includes("/events")).length, 8);
  assert.equal(t.client.status.state, "connecting");
  await t.clock.advance(2_000); // the fifth, at 15 s
  assert.equal(t.client.status.state, "fallback");
  assert.match(t.client.status.fallbackReason, /^5 failed streaming attempts/);
});

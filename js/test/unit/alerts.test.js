// Alerts (SPEC 13): the JSON API with the client's credentials, and the feed of
// unacknowledged alerts kept from the history and the `alerts` stream.
import assert from "node:assert/strict";
import { test } from "node:test";
import { TickwireApiError } from "../../src/index.js";
import { jwt, openSocket, settle, setup } from "./fakes.js";

const TOKEN = jwt({ sub: "alice" });
const alert = (n, extra = {}) => ({ alertId: `a${n}`, message: `m${n}`, timestamp: `2027-01-01T00:00:0${n}.000Z`, ...extra });
const event = (type, data, n) => ({ type: "event", stream: "alerts", event: type, id: `180000000000${n}-x${n}`, data });

/** Answers the history with `unacked` (a function, read at each request) and acks with 200. */
function serve(t, unacked) {
  t.net.handler = (url, init) => {
    if (url.includes("/api/alerts?")) return { json: { alerts: unacked(), next: null } };
    const ack = url.match(/\/api\/alerts\/([^/]+)\/ack$/);
    if (ack && init.method === "POST") return { json: { alertId: decodeURIComponent(ack[1]), ackedAt: "t", by: "alice" } };
    return { status: 404, json: { message: "not here" } };
  };
}

test("ackAlert POSTs JSON with the bearer token and same-origin credentials", async () => {
  const t = setup({ token: TOKEN });
  serve(t, () => []);
  const answer = await t.client.ackAlert("r-1/2");
  assert.deepEqual(answer, { alertId: "r-1/2", ackedAt: "t", by: "alice" });
  const [call] = t.net.of("/ack");
  assert.equal(call.url, "/api/alerts/r-1%2F2/ack");
  assert.equal(call.init.method, "POST");
  assert.equal(call.init.credentials, "same-origin");
  assert.equal(call.headers["Content-Type"], "application/json");
  assert.equal(call.headers.Authorization, `Bearer ${TOKEN}`);
});

test("with the cookie no Authorization goes; GETs declare no body type", async () => {
  const t = setup({ baseUrl: "https://api.example" });
  serve(t, () => [alert(1)]);
  const page = await t.client.alertHistory({ unacked: true, limit: 5, before: "a9" });
  assert.deepEqual(page, { alerts: [alert(1)], next: null });
  const [call] = t.net.calls;
  assert.equal(call.url, "https://api.example/api/alerts?limit=5&unacked=true&before=a9");
  assert.equal(call.init.method, "GET");
  assert.equal(call.headers.Authorization, undefined);
  assert.equal(call.headers["Content-Type"], undefined);
});

test("rules: create, list, update, delete; a refusal is a TickwireApiError with the server's message", async () => {
  const t = setup({ token: TOKEN });
  const rule = { ruleId: "r-1", kind: "price_above", symbol: "AAPL", threshold: 190, enabled: true };
  t.net.handler = (url, init) => {
    if (init.method === "POST" && JSON.parse(init.body).kind === "colour") return { status: 400, json: { error: "bad_request", message: "`kind` must be one of ..." } };
    if (init.method === "POST") return { status: 201, json: { ...rule, ...JSON.parse(init.body) } };
    if (init.method === "PATCH") return { json: { ...rule, ...JSON.parse(init.body) } };
    if (init.method === "DELETE") return { status: 204 };
    return { json: { rules: [rule] } };
  };
  assert.deepEqual(await t.client.createAlertRule({ kind: "price_above", symbol: "AAPL", threshold: 190 }), rule);
  assert.deepEqual(await t.client.alertRules(), [rule]);
  assert.equal((await t.client.updateAlertRule("r-1", { enabled: false })).enabled, false);
  assert.equal(await t.client.deleteAlertRule("r-1"), undefined);
  assert.deepEqual(
    t.net.calls.map((c) => `${c.init.method} ${c.url} ${c.init.body ?? ""}`),
    [
      'POST /api/alerts/rules {"kind":"price_above","symbol":"AAPL","threshold":190}',
      "GET /api/alerts/rules ",
      'PATCH /api/alerts/rules/r-1 {"enabled":false}',
      "DELETE /api/alerts/rules/r-1 ",
    ],
  );
  const refused = await t.client.createAlertRule({ kind: "colour" }).catch((err) => err);
  assert.ok(refused instanceof TickwireApiError);
  assert.equal(refused.status, 400);
  assert.equal(refused.message, "`kind` must be one of ...");
  assert.equal(refused.body.error, "bad_request");
});

test("a 401 asks getToken once more and repeats the request; a network failure is status 0", async () => {
  let n = 0;
  const t = setup({ getToken: () => jwt({ sub: "alice", n: ++n }) });
  t.net.handler = () => (t.net.calls.length === 1 ? { status: 401, json: { message: "expired" } } : { json: { rules: [] } });
  assert.deepEqual(await t.client.alertRules(), []);
  assert.equal(n, 2);
  const [first, second] = t.net.of("/rules").map((c) => c.headers.Authorization);
  assert.notEqual(first, second);
  t.net.handler = () => new TypeError("Failed to fetch");
  const failed = await t.client.alertRules().catch((err) => err);
  assert.equal(failed.status, 0);
  assert.match(failed.message, /network error: Failed to fetch/);
});

test("the feed: the unacked history, new alerts from the stream (not doubled), acks from another tab and from here", async () => {
  const t = setup();
  serve(t, () => [alert(2), alert(1)]);
  const feed = t.client.alerts();
  const changes = [];
  feed.onChange(() => changes.push(feed.alerts.map((a) => a.alertId)));
  assert.equal(feed.loading, true);
  const ws = await openSocket(t);
  assert.deepEqual(ws.sentOf("subscribe")[0].streams, [{ stream: "alerts" }]);
  assert.equal(feed.loading, false);
  assert.deepEqual(feed.alerts.map((a) => a.alertId), ["a2", "a1"]);
  ws.receive(event("alert:new", alert(3), 3));
  ws.receive(event("alert:new", alert(2), 4)); // already listed: not doubled
  assert.deepEqual(feed.alerts.map((a) => a.alertId), ["a3", "a2", "a1"]);
  ws.receive(event("alert:ack", { alertId: "a2", ackedAt: "t", by: "alice" }, 5)); // another tab
  assert.deepEqual(feed.alerts.map((a) => a.alertId), ["a3", "a1"]);
  assert.deepEqual(await feed.ack("a1"), { alertId: "a1", ackedAt: "t", by: "alice" });
  assert.deepEqual(feed.alerts.map((a) => a.alertId), ["a3"]);
  ws.receive(event("alert:ack", { alertId: "a1", ackedAt: "t", by: "alice" }, 6)); // its echo: nothing changes
  assert.deepEqual(changes, [["a2", "a1"], ["a3", "a2", "a1"], ["a3", "a1"], ["a3"]]);
  feed.release();
  await t.clock.advance(20);
  assert.deepEqual(ws.sentOf("unsubscribe")[0].streams, ["alerts"]);
});

test("the history answer does not bring back an alert acknowledged meanwhile, nor drop one it has not recorded", async () => {
  const t = setup();
  let release;
  const answered = new Promise((resolve) => (release = resolve));
  t.net.handler = async () => {
    await answered;
    return { json: { alerts: [alert(2), alert(1)], next: null } };
  };
  const feed = t.client.alerts();
  const ws = await openSocket(t);
  ws.receive(event("alert:ack", { alertId: "a2" }, 1));
  ws.receive(event("alert:new", alert(4), 2));
  release();
  await settle();
  await settle();
  assert.deepEqual(feed.alerts.map((a) => a.alertId), ["a4", "a1"]);
  feed.release();
});

test("a stream:reset reads the history again; another user empties the list and reads it for them", async () => {
  const t = setup();
  let unacked = [alert(1)];
  serve(t, () => unacked);
  const feed = t.client.alerts({ limit: 2 });
  const ws = await openSocket(t);
  assert.deepEqual(feed.alerts.map((a) => a.alertId), ["a1"]);
  unacked = [alert(3), alert(2), alert(1)].slice(0, 2);
  ws.receive({ type: "event", stream: "alerts", event: "stream:reset", data: { recovered: false, reason: "expired" } });
  await settle();
  assert.deepEqual(feed.alerts.map((a) => a.alertId), ["a3", "a2"]);
  assert.match(t.net.calls[1].url, /limit=2&unacked=true$/);
  ws.receive(event("alert:new", alert(4), 7));
  assert.deepEqual(feed.alerts.map((a) => a.alertId), ["a4", "a3"], "at most `limit`, newest first");
  unacked = [alert(5, { message: "bob's" })];
  let during = null;
  feed.onChange(() => (during ??= feed.alerts.length));
  t.client.login(jwt({ sub: "bob" }));
  assert.equal(during, 0, "emptied at once");
  assert.equal(feed.loading, true);
  await settle();
  assert.deepEqual(feed.alerts.map((a) => a.message), ["bob's"]);
  assert.equal(feed.loading, false);
  feed.release();
});

test("a history refusal is the feed's error", async () => {
  const t = setup();
  t.net.handler = () => ({ status: 401, json: { message: "Authentication required" } });
  const feed = t.client.alerts();
  await settle();
  await settle();
  assert.equal(feed.loading, false);
  assert.equal(feed.error.status, 401);
  assert.deepEqual(feed.alerts, []);
  feed.release();
});

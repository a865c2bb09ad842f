// Test doubles: a fake clock (every timer of the client), a scriptable WebSocket, a
// scriptable fetch (SSE bodies and poll answers) and window/document event targets.

import { decode } from "../../src/msgpack.js";
import { TickwireClient } from "../../src/index.js";

export const settle = () => new Promise((resolve) => setImmediate(resolve));

export class FakeClock {
  constructor(start = 1_800_000_000_000) {
    this.t = start;
    this.timers = new Map();
    this.seq = 0;
    this.now = () => this.t;
    this.setTimeout = (fn, ms) => {
      const id = ++this.seq;
      this.timers.set(id, { at: this.t + Math.max(0, ms || 0), fn, id });
      return id;
    };
    this.clearTimeout = (id) => this.timers.delete(id);
  }

  /** Run every timer due within `ms`, in order, letting promises settle in between. */
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next = null;
      for (const timer of this.timers.values()) if (timer.at <= end && (!next || timer.at < next.at || (timer.at === next.at && timer.id < next.id))) next = timer;
      if (!next) break;
      this.t = next.at;
      this.timers.delete(next.id);
      next.fn();
    }
    this.t = end;
    await settle();
  }
}

export function fakeWebSocketClass() {
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      FakeWebSocket.instances.push(this);
    }
    send(data) {
      this.sent.push(typeof data === "string" ? JSON.parse(data) : decode(data));
    }
    close(code, reason) {
      this.readyState = 3;
      this.closedWith = { code, reason };
    }
    open() {
      this.readyState = 1;
      this.onopen?.();
    }
    receive(message) {
      this.onmessage?.({ data: JSON.stringify(message) });
    }
    serverClose(code, reason = "") {
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
    sentOf(type) {
      return this.sent.filter((m) => m.type === type);
    }
  }
  FakeWebSocket.instances = [];
  FakeWebSocket.last = () => FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  return FakeWebSocket;
}

/** A fetch whose answers the test gives: `net.handler = (url, init) => answer`. */
export class FakeNet {
  constructor() {
    this.calls = [];
    this.handler = () => ({ status: 503, json: { message: "down" } });
    this.fetch = async (url, init = {}) => {
      const call = { url: String(url), init, headers: init.headers || {} };
      this.calls.push(call);
      const answer = await this.handler(call.url, init, call);
      if (answer instanceof Error) throw answer;
      return toResponse(answer, init.signal, call);
    };
  }
  of(path) {
    return this.calls.filter((c) => c.url.includes(path));
  }
}

function toResponse(answer, signal, call) {
  const status = answer.status ?? 200;
  const headers = new Map(Object.entries(answer.headers || {}).map(([k, v]) => [k.toLowerCase(), v]));
  let body = null;
  if (answer.sse) {
    body = new ReadableStream({
      start(controller) {
        const encoder = new TextEncoder();
        call.push = (text) => controller.enqueue(encoder.encode(text));
        call.end = () => controller.close();
        signal?.addEventListener("abort", () => {
          call.aborted = true;
          try {
            controller.error(Object.assign(new Error("aborted"), { name: "AbortError" }));
          } catch {
            /* closed */
          }
        });
        answer.sse(call);
      },
    });
  }
  return {
    status,
    body,
    headers: { get: (name) => headers.get(name.toLowerCase()) ?? null },
    json: async () => answer.json ?? {},
  };
}

/** An SSE frame. */
export function sse(type, data, id = null) {
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n${id ? `id: ${id}\n` : ""}\n`;
}

export class FakeTarget {
  constructor(props = {}) {
    Object.assign(this, props);
    this.listeners = new Map();
  }
  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
  }
  removeEventListener(type, fn) {
    this.listeners.get(type)?.delete(fn);
  }
  dispatch(type) {
    for (const fn of this.listeners.get(type) || []) fn({ type });
  }
}

/** A client on fakes; returns everything a test drives. */
export function setup(options = {}, envOverrides = {}) {
  const clock = new FakeClock();
  const WebSocket = fakeWebSocketClass();
  const net = new FakeNet();
  const navigator = { onLine: true };
  const win = new FakeTarget();
  const doc = new FakeTarget({ visibilityState: "visible" });
  let random = 0.5;
  const env = {
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => random,
    WebSocket,
    EventSource: undefined,
    fetch: net.fetch,
    AbortController,
    location: { protocol: "http:", host: "example.test" },
    window: win,
    document: doc,
    navigator,
    requestAnimationFrame: (fn) => clock.setTimeout(fn, 16),
    console: { error() {}, warn() {}, log() {} },
    ...envOverrides,
  };
  const client = new TickwireClient({ transport: "ws", ...options, env });
  return { client, clock, WebSocket, net, navigator, win, doc, setRandom: (r) => (random = r) };
}

/** Open the last socket and answer like a server (a pong to the first ping). */
export async function openSocket(t) {
  await t.clock.advance(0);
  const ws = t.WebSocket.last();
  ws.open();
  answer(ws);
  await t.clock.advance(20);
  return ws;
}

/** The server's answer to an open socket: a pong to its ping (or nothing yet, with a token). */
export function answer(ws) {
  const ping = ws.sentOf("ping")[0];
  if (ping) ws.receive({ type: "pong", ts: ping.ts });
}

/** A JWT-looking token (unsigned: the client only reads its claims). */
export function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}.sig`;
}

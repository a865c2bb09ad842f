// Reading one Server-Sent Events response, two ways:
// - `readFetch`: fetch() with a streamed body. It sees every byte (the server's
//   `: keepalive` comments feed the watchdog), the HTTP status (401 -> new token,
//   429 -> Retry-After) and can send `Authorization: Bearer`.
// - `readEventSource`: the browser's EventSource, for hosts without streamed fetch. It
//   cannot send a token (cookie only) nor see comments, so the watchdog sees events only.
// Both report through the same handlers: open(), bytes(), event(type, id, data, seq), end(info).

import { CONTROL_TYPES, EVENT_TYPES } from "../streams.js";
import { retryAfterMs } from "./watchdog.js";

/**
 * Incremental `text/event-stream` parser (WHATWG rules for event, data, id), which also
 * reads tickwire's `seq: N` field (a log event's number, which EventSource ignores).
 */
export class SseParser {
  /** @param {(type: string, id: string|null, data: string, seq: number|null) => void} onEvent */
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.type = "";
    this.data = [];
    this.id = null;
    this.seq = null;
  }

  push(text) {
    this.buffer += text;
    let start = 0;
    for (;;) {
      const nl = this.buffer.indexOf("\n", start);
      if (nl < 0) break;
      let line = this.buffer.slice(start, nl);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      start = nl + 1;
      this.line(line);
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      if (this.data.length) this.onEvent(this.type || "message", this.id, this.data.join("\n"), this.seq);
      this.reset();
      return;
    }
    if (line.startsWith(":")) return; // a comment (keepalive)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.id = value;
    else if (field === "seq" && /^[0-9]{1,15}$/.test(value)) this.seq = Number(value);
  }
}

/** An event's data as JSON; data that is not JSON is logged and handed on as `{unparsed}`. */
function parseData(env, text) {
  try {
    return JSON.parse(text);
  } catch (err) {
    env.console?.error("tickwire: SSE data that is not JSON", err);
    return { unparsed: text };
  }
}

/** What an HTTP error status means for the client. */
export async function statusInfo(response) {
  let message = "";
  try {
    message = (await response.json())?.message ?? "";
  } catch {
    /* not JSON */
  }
  const status = response.status;
  const reason = `HTTP ${status}${message ? `: ${message}` : ""}`;
  if (status === 401) return { unauthorized: true, status, reason };
  if (status === 429) return { failed: true, status, reason, retryAfterMs: retryAfterMs(response) };
  if (status >= 400 && status < 500) return { refused: true, status, reason, message };
  return { failed: true, status, reason };
}

/**
 * Read an SSE response with fetch; returns a function that aborts it.
 * @param {import("../../types/tickwire").Env} env
 */
export function readFetch(env, url, { token, credentials }, handlers) {
  const controller = new env.AbortController();
  let ended = false;
  const end = (info) => {
    if (ended) return;
    ended = true;
    handlers.end(info);
  };
  (async () => {
    const headers = { Accept: "text/event-stream" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await env.fetch(url, { headers, credentials, cache: "no-store", signal: controller.signal });
    if (response.status !== 200 || !response.body) return end({ opened: false, ...(await statusInfo(response)) });
    handlers.open();
    const parser = new SseParser((type, id, data, seq) => handlers.event(type, id, parseData(env, data), seq));
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      handlers.bytes();
      parser.push(decoder.decode(value, { stream: true }));
    }
    end({ opened: true, reason: "the server ended the stream" });
  })().catch((err) => end({ failed: true, reason: err?.name === "AbortError" ? "aborted" : `network error: ${err?.message ?? err}` }));
  return () => {
    ended = true;
    controller.abort();
  };
}

/**
 * Read an SSE response with EventSource (the browser's own reconnect is not used: the
 * client reconnects with its own backoff and resume id). Returns a function that closes it.
 */
export function readEventSource(env, url, { credentials }, handlers) {
  const source = new env.EventSource(url, { withCredentials: credentials === "include" });
  let opened = false;
  let ended = false;
  source.onopen = () => {
    opened = true;
    handlers.open();
  };
  let lastId = "";
  const listener = (message) => {
    handlers.bytes();
    // lastEventId is the last id seen on the response, also for events that carry none
    // (control events; a snapshot of an empty log, e.g. after a reset): an id the previous
    // event had is not this event's (the server never sends an id twice on a response).
    const fresh = message.lastEventId && message.lastEventId !== lastId ? message.lastEventId : null;
    if (fresh) lastId = fresh;
    handlers.event(message.type, CONTROL_TYPES.has(message.type) ? null : fresh, parseData(env, message.data), null);
  };
  for (const type of [...EVENT_TYPES, "message"]) source.addEventListener(type, listener);
  source.onerror = () => {
    if (ended) return;
    ended = true;
    source.close();
    // EventSource hides the status: a refusal (401, 429...) looks like a network error.
    handlers.end(opened ? { opened: true, reason: "connection lost" } : { failed: true, reason: "EventSource could not connect" });
  };
  return () => {
    ended = true;
    source.close();
  };
}

/** Whether `env` can stream a fetch body (else EventSource is used for SSE). */
export function canStreamFetch(env) {
  return typeof env.fetch === "function" && typeof env.AbortController === "function" && typeof globalThis.TextDecoder === "function" && typeof globalThis.ReadableStream === "function";
}

// A transport made of one link per wire (SSE: one response each; polling: one loop each).
// A wire whose query changed gets a new link; a link that went down waits for the
// controller to restart it.

export class LinkTransport {
  /** @param {import("../controller.js").TransportContext} ctx @param {string} kind */
  constructor(ctx, kind) {
    this.ctx = ctx;
    this.kind = kind;
    /** @type {Map<string, any>} wire key -> link */
    this.links = new Map();
    this.wires = new Map();
    this.closed = false;
  }

  /** @abstract @returns {{start(): void, stop(): void, up: boolean, wire: import("../wires.js").Wire}} */
  createLink(_wire) {
    throw new Error("abstract");
  }

  get linkKeys() {
    return [...this.links.keys()];
  }

  isUp() {
    return [...this.links.values()].every((link) => link.up);
  }

  sync(wires) {
    this.wires = wires;
    for (const [key, link] of this.links) {
      const wire = wires.get(key);
      if (!wire || wire.signature !== link.wire.signature) {
        link.stop();
        this.links.delete(key);
        this.ctx.forget(this, key);
      } else {
        link.wire = wire; // same query, maybe other entries
      }
    }
    for (const [key, wire] of wires) {
      if (this.links.has(key) || this.closed) continue;
      const link = this.createLink(wire);
      this.links.set(key, link);
      link.start();
    }
    if (this.links.size === 0) this.ctx.up(this, null); // nothing to read: nothing is down
  }

  /** Restart one link (or all): the controller decided it is time. */
  restart(key = null) {
    for (const [k, link] of this.links) {
      if (key !== null && k !== key) continue;
      link.stop();
      const fresh = this.createLink(this.wires.get(k) ?? link.wire);
      this.links.set(k, fresh);
      fresh.start();
    }
  }

  /** Restart the links that carry the user's streams (credentials changed). */
  restartUserLinks() {
    for (const [key, link] of this.links) if (!link.wire.isPublic) this.restart(key);
  }

  close() {
    this.closed = true;
    for (const link of this.links.values()) link.stop();
    this.links.clear();
  }
}

/** One wire's connection of a LinkTransport: it reports going down once, with why. */
export class Link {
  /** @param {LinkTransport} transport @param {import("../wires.js").Wire} wire */
  constructor(transport, wire) {
    this.transport = transport;
    this.ctx = transport.ctx;
    this.wire = wire;
    this.up = false;
    this.stopped = false;
  }

  /** Stop and tell the controller; an attempt that never came up counts as failed. */
  fail(info) {
    if (this.stopped) return;
    const wasUp = this.up;
    this.stop();
    this.ctx.down(this.transport, this.wire.key, { ...info, failed: info.failed ?? !wasUp });
  }

  /** @abstract */
  stop() {
    throw new Error("abstract");
  }
}

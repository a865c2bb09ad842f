// The user's unacknowledged alerts, kept current (SPEC 13): the history API gives the list
// (`GET /api/alerts?unacked=true`), the `alerts` stream adds `alert:new` and removes on
// `alert:ack` (this page's acknowledgements and every other tab's).
//
// The history answer and the stream race: an alert the stream already brought is not
// doubled, one acknowledged while the answer travelled is not brought back, and one the
// history has not recorded yet is kept. The list is loaded again after a `stream:reset`
// (alerts may have been missed) and when the user changes.

import { RecentIds } from "./dedup.js";

const ACKED_REMEMBERED = 1000;

export class AlertFeed {
  /**
   * @param {import("./client.js").TickwireClient} client
   * @param {{limit?: number}} [options] how many alerts are kept (newest first; default 100, at most 1000)
   */
  constructor(client, { limit = 100 } = {}) {
    this.client = client;
    this.limit = Math.max(1, Math.min(1000, limit));
    /** Unacknowledged alerts (their `alert:new` data), newest first; replaced on every change. */
    this.alerts = [];
    /** True until the first history answer (or its failure). */
    this.loading = true;
    /** Why the history could not be read (a TickwireApiError), or null. */
    this.error = null;
    this.byId = new Map();
    this.acked = new RecentIds(ACKED_REMEMBERED);
    this.listeners = new Set();
    this.loads = 0;
    this.closed = false;
    this.handle = client.subscribe("alerts", { onEvent: (e) => this.onEvent(e) });
    this.unwatch = client.onUserChange(() => this.userChanged());
    this.reload();
  }

  /** Call `listener()` after every change of `alerts`, `loading` or `error`; returns its remover. */
  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Acknowledge: the server records it and tells every connection of the user (`alert:ack`). */
  async ack(alertId) {
    const answer = await this.client.ackAlert(alertId);
    this.remove(alertId);
    return answer;
  }

  /** Read the unacknowledged alerts from the history again. */
  async reload() {
    const load = ++this.loads;
    const before = new Set(this.byId.keys());
    try {
      const answer = await this.client.alertHistory({ unacked: true, limit: this.limit });
      if (load !== this.loads || this.closed) return;
      const fresh = new Map();
      let newest = -Infinity;
      for (const alert of answer.alerts ?? []) {
        newest = Math.max(newest, timeOf(alert));
        if (!this.acked.has(alert.alertId)) fresh.set(alert.alertId, alert);
      }
      // The history decides for what it covers; the stream's alerts that arrived during the
      // request, or that are newer than its newest (not recorded yet), stay.
      for (const [id, alert] of this.byId) {
        if (!fresh.has(id) && (!before.has(id) || timeOf(alert) > newest)) fresh.set(id, alert);
      }
      this.byId = fresh;
      this.error = null;
    } catch (err) {
      if (load !== this.loads || this.closed) return;
      this.error = err;
    }
    this.loading = false;
    this.changed();
  }

  /** Stop: the stream subscription is released; no more changes. */
  release() {
    if (this.closed) return;
    this.closed = true;
    this.handle.release();
    this.unwatch();
    this.listeners.clear();
  }

  /** Another user (or none): the list was theirs. */
  userChanged() {
    this.byId.clear();
    this.acked = new RecentIds(ACKED_REMEMBERED);
    this.loading = true;
    this.changed();
    this.reload();
  }

  onEvent(event) {
    if (event.reset) {
      this.reload();
      return;
    }
    const alertId = event.data?.alertId;
    if (typeof alertId !== "string") return;
    if (event.type === "alert:ack") {
      this.remove(alertId);
    } else if (event.type === "alert:new" && !this.acked.has(alertId) && !this.byId.has(alertId)) {
      this.byId.set(alertId, event.data);
      this.changed();
    }
  }

  remove(alertId) {
    this.acked.add(alertId);
    if (this.byId.delete(alertId)) this.changed();
  }

  changed() {
    if (this.closed) return;
    const list = [...this.byId.values()];
    list.sort((a, b) => timeOf(b) - timeOf(a));
    if (list.length > this.limit) {
      for (const old of list.splice(this.limit)) this.byId.delete(old.alertId);
    }
    this.alerts = list;
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch (err) {
        this.client.env.console?.error("tickwire: an alerts listener failed", err);
      }
    }
  }
}

function timeOf(alert) {
  const t = Date.parse(alert.timestamp ?? "");
  return Number.isNaN(t) ? 0 : t;
}

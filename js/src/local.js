// Local state: the snapshot each stream starts with, and every delta after it, merged.
//
// `orders` and `positions` are Maps replaced on every change (so a renderer can compare
// references); `prices` is one Map whose entries are replaced, and every change names a
// topic ("orders", "positions", "prices:AAPL") for the renderers that watch it.

export class LocalState {
  /** @param {(topic: string) => void} [changed] called with each topic that changed */
  constructor(changed = () => {}) {
    this.changed = changed;
    /** @type {Map<string, any>} orderId -> order (order:update merged with its fills) */
    this.orders = new Map();
    /** @type {Map<string, any>} symbol -> open position */
    this.positions = new Map();
    /** @type {Map<string, any>} symbol -> latest price:update */
    this.prices = new Map();
    /** @type {number|null} sum of the open positions' value, as the server reports it */
    this.totalValue = null;
  }

  /**
   * Merge one event; returns whether anything changed.
   * @param {string} type @param {any} data
   */
  apply(type, data) {
    if (!data || typeof data !== "object") return false;
    switch (type) {
      case "order:update":
        return data.snapshot ? this.replaceOrders(data.orders) : this.mergeOrder(data);
      case "order:fill":
        return this.mergeOrder(pick(data, ["orderId", "filledQty", "filledAvgPrice", "status", "timestamp"]));
      case "position:update":
        return data.snapshot ? this.replacePositions(data) : this.mergePosition(data);
      case "price:update":
        return this.mergePrices(data);
      default:
        return false;
    }
  }

  replaceOrders(orders) {
    this.orders = new Map((orders || []).filter((o) => o && o.orderId != null).map((o) => [o.orderId, o]));
    this.changed("orders");
    return true;
  }

  mergeOrder(data) {
    if (data.orderId == null) return false;
    const orders = new Map(this.orders);
    orders.set(data.orderId, { ...orders.get(data.orderId), ...data });
    this.orders = orders;
    this.changed("orders");
    return true;
  }

  replacePositions(data) {
    const open = (data.positions || []).filter((p) => p && p.symbol != null && p.quantity !== 0);
    this.positions = new Map(open.map((p) => [p.symbol, p]));
    if (typeof data.totalValue === "number") this.totalValue = data.totalValue;
    this.changed("positions");
    return true;
  }

  mergePosition(data) {
    if (data.symbol == null) return false;
    const positions = new Map(this.positions);
    if (data.quantity === 0) positions.delete(data.symbol);
    else positions.set(data.symbol, { ...positions.get(data.symbol), ...data });
    this.positions = positions;
    if (typeof data.totalValue === "number") this.totalValue = data.totalValue;
    this.changed("positions");
    return true;
  }

  mergePrices(data) {
    const list = data.initializing ? data.prices || [] : [data];
    for (const price of list) {
      if (!price || price.symbol == null) continue;
      // A delta tick carries only what changed since the previous tick of its symbol.
      const merged = price.delta ? { ...this.prices.get(price.symbol), ...price } : price;
      this.prices.set(price.symbol, merged);
      this.changed(`prices:${price.symbol}`);
    }
    return list.length > 0;
  }

  /** Forget what belongs to the user (on logout, or when another user logs in). */
  clearUser() {
    this.orders = new Map();
    this.positions = new Map();
    this.totalValue = null;
    this.changed("orders");
    this.changed("positions");
  }

  /**
   * The events a new subscriber of `stream` needs to show the current state at once
   * (a snapshot rebuilt from the merged state), or null for streams without one.
   * @param {string} stream @param {{symbols: string[]|null}} params
   */
  snapshotEvents(stream, params) {
    const timestamp = new Date().toISOString();
    const orders = { type: "order:update", data: { snapshot: true, orders: [...this.orders.values()], timestamp } };
    const positions = {
      type: "position:update",
      data: { snapshot: true, positions: [...this.positions.values()], totalValue: this.totalValue ?? 0, timestamp },
    };
    switch (stream) {
      case "orders":
        return [orders];
      case "positions":
        return [positions];
      case "trading":
        return [orders, positions];
      case "prices": {
        const wanted = params.symbols ? params.symbols.filter((s) => this.prices.has(s)) : [...this.prices.keys()];
        const prices = wanted.map((s) => this.prices.get(s));
        return [{ type: "price:update", data: { initializing: true, prices, timestamp } }];
      }
      default:
        return null;
    }
  }
}

function pick(data, keys) {
  const out = {};
  for (const key of keys) if (data[key] !== undefined) out[key] = data[key];
  return out;
}

// A bounded set of recently seen event ids: the oldest id is forgotten first.

export class RecentIds {
  /** @param {number} limit how many ids are remembered */
  constructor(limit = 1000) {
    this.limit = Math.max(1, limit);
    this.ids = new Set();
  }

  /** Remember `id`; false when it was already there (a duplicate). */
  add(id) {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.limit) this.ids.delete(this.ids.values().next().value);
    return true;
  }

  has(id) {
    return this.ids.has(id);
  }

  get size() {
    return this.ids.size;
  }
}

// Holes in a stream, seen without asking the server: every log event carries `seq`, its
// number among the events of its log with the same type (strategy events: the same type
// and strategyId), consecutive from 1. A stream that carries every event of the types it
// reads is a union of such sequences, so a jump in one of them is a hole. Ticks (prices,
// marks) have no `seq`; a snapshot or a reset starts afresh.
//
// A hole is repaired by reading the stream again from the last id delivered before it
// (the transport resubscribes); the event that revealed it is not delivered, so the
// replay brings the missing events in log order. When the replay from the same point
// shows the same hole again, the server does not have those events: the hole is accepted
// and counted as missed.

/** The payload field that splits a type's numbering (the server's item streams). */
const ITEM_FIELDS = { "strategy:update": "strategyId", "scan:result": "scanId" };

/**
 * Streams whose filter takes whole sequences (all events of a type, or of one strategy or
 * scan); prices carry ticks only, which are not numbered.
 */
const SEQUENCED = new Set(["orders", "positions", "trading", "alerts", "ai-decisions", "strategies", "scans", "agents", "providers", "chain"]);

/** @param {string} stream */
export const sequenced = (stream) => SEQUENCED.has(stream.split("/")[0]);

/**
 * @typedef {object} Hole
 * @property {string} key the sequence key (type, or type:strategyId / type:scanId)
 * @property {number} after the last seq delivered of that key
 * @property {number} missing how many events are missing before the one that revealed it
 */

const keyOf = (type, data) => {
  const field = ITEM_FIELDS[type];
  return field && data && data[field] != null ? `${type}:${data[field]}` : type;
};

const numbered = (seq) => typeof seq === "number" && Number.isInteger(seq) && seq > 0;

export class SequenceWatch {
  constructor() {
    /** @type {Map<string, number>} sequence key -> last seq delivered */
    this.last = new Map();
    /** @type {Set<string>} holes a repair was started for ("key#after") */
    this.tried = new Set();
  }

  /**
   * The hole an event would leave, or null (no seq, no baseline yet, consecutive, or
   * already seen: a replay's overlap, dropped by id).
   * @param {string} type @param {any} data @param {number|null|undefined} seq
   * @returns {Hole|null}
   */
  hole(type, data, seq) {
    if (!numbered(seq)) return null;
    const key = keyOf(type, data);
    const last = this.last.get(key);
    if (last === undefined || seq <= last + 1) return null;
    return { key, after: last, missing: seq - last - 1 };
  }

  /**
   * Whether to repair `hole`: true the first time, false when a repair from the same
   * point already showed it (the server does not have the events: the hole is accepted,
   * and the sequence goes on after it).
   * @param {Hole} hole
   */
  shouldRepair(hole) {
    const mark = `${hole.key}#${hole.after}`;
    if (this.tried.delete(mark)) {
      this.last.set(hole.key, hole.after + hole.missing);
      return false;
    }
    this.tried.add(mark);
    return true;
  }

  /**
   * An event was delivered; true when it filled a hole a repair was started for.
   * @param {string} type @param {any} data @param {number|null|undefined} seq
   */
  note(type, data, seq) {
    if (!numbered(seq)) return false;
    const key = keyOf(type, data);
    const last = this.last.get(key);
    if (last !== undefined && seq <= last) return false;
    this.last.set(key, seq);
    return this.tried.size > 0 && last !== undefined && this.tried.delete(`${key}#${last}`);
  }

  /** A new baseline: after a reset, a snapshot, or for another user. */
  clear() {
    this.last.clear();
    this.tried.clear();
  }
}

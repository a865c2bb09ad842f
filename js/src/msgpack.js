// A small MessagePack codec (the subset tickwire's `tickwire.msgpack` subprotocol uses:
// nil, booleans, integers up to 64 bits, floats, strings, binary, arrays, maps; ext
// values decode to {type, data}). Written for this SDK: no runtime dependency.

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/**
 * Encode a JSON-like value.
 * @param {unknown} value
 * @returns {Uint8Array}
 */
export function encode(value) {
  const out = new Writer();
  write(out, value);
  return out.bytes();
}

/**
 * Decode one MessagePack value.
 * @param {ArrayBuffer|Uint8Array} input
 */
export function decode(input) {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), bytes, pos: 0 };
  const value = read(reader);
  if (reader.pos !== bytes.length) throw new Error("msgpack: trailing bytes");
  return value;
}

class Writer {
  constructor() {
    this.buf = new Uint8Array(256);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }
  ensure(n) {
    if (this.pos + n <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    grown.set(this.buf);
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }
  u8(v) {
    this.ensure(1);
    this.view.setUint8(this.pos++, v);
  }
  put(kind, v, size) {
    this.ensure(size);
    this.view[kind](this.pos, v);
    this.pos += size;
  }
  raw(bytes) {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
  bytes() {
    return this.buf.slice(0, this.pos);
  }
}

function write(out, value) {
  if (value === null || value === undefined) return out.u8(0xc0);
  if (value === false) return out.u8(0xc2);
  if (value === true) return out.u8(0xc3);
  if (typeof value === "number") return writeNumber(out, value);
  if (typeof value === "bigint") return writeBig(out, value);
  if (typeof value === "string") return writeString(out, value);
  if (value instanceof Uint8Array) return writeHeader(out, value.length, null, 0xc4, 0xc5, 0xc6), out.raw(value);
  if (Array.isArray(value)) {
    writeHeader(out, value.length, 0x90, null, 0xdc, 0xdd, 15);
    for (const item of value) write(out, item);
    return undefined;
  }
  if (typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    writeHeader(out, entries.length, 0x80, null, 0xde, 0xdf, 15);
    for (const [k, v] of entries) {
      writeString(out, k);
      write(out, v);
    }
    return undefined;
  }
  throw new TypeError(`msgpack: cannot encode ${typeof value}`);
}

/** A length header: fix form (up to `fixMax`), then 8-, 16- and 32-bit forms where they exist. */
function writeHeader(out, n, fix, c8, c16, c32, fixMax = 31) {
  if (fix !== null && n <= fixMax) return out.u8(fix | n);
  if (c8 !== null && n < 0x100) return out.u8(c8), out.u8(n);
  if (n < 0x10000) return out.u8(c16), out.put("setUint16", n, 2);
  return out.u8(c32), out.put("setUint32", n, 4);
}

function writeString(out, s) {
  const bytes = textEncoder.encode(s);
  writeHeader(out, bytes.length, 0xa0, 0xd9, 0xda, 0xdb);
  out.raw(bytes);
}

function writeNumber(out, n) {
  if (!Number.isInteger(n) || !Number.isSafeInteger(n)) return out.u8(0xcb), out.put("setFloat64", n, 8);
  if (n >= 0) {
    if (n < 0x80) return out.u8(n);
    if (n < 0x100) return out.u8(0xcc), out.u8(n);
    if (n < 0x10000) return out.u8(0xcd), out.put("setUint16", n, 2);
    if (n < 0x100000000) return out.u8(0xce), out.put("setUint32", n, 4);
    return out.u8(0xcf), out.put("setBigUint64", BigInt(n), 8);
  }
  if (n >= -32) return out.u8(n & 0xff);
  if (n >= -0x80) return out.u8(0xd0), out.put("setInt8", n, 1);
  if (n >= -0x8000) return out.u8(0xd1), out.put("setInt16", n, 2);
  if (n >= -0x80000000) return out.u8(0xd2), out.put("setInt32", n, 4);
  return out.u8(0xd3), out.put("setBigInt64", BigInt(n), 8);
}

function writeBig(out, n) {
  if (n >= 0n) return out.u8(0xcf), out.put("setBigUint64", n, 8);
  return out.u8(0xd3), out.put("setBigInt64", n, 8);
}

function take(r, kind, size) {
  if (r.pos + size > r.bytes.length) throw new Error("msgpack: truncated");
  const value = r.view[kind](r.pos);
  r.pos += size;
  return value;
}

function slice(r, n) {
  if (r.pos + n > r.bytes.length) throw new Error("msgpack: truncated");
  const out = r.bytes.subarray(r.pos, r.pos + n);
  r.pos += n;
  return out;
}

/** A 64-bit integer as a number when it is safe, else as a BigInt. */
const safe = (big) => (big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big);

function readArray(r, n) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = read(r);
  return out;
}

function readMap(r, n) {
  const out = {};
  for (let i = 0; i < n; i++) {
    const key = read(r);
    out[String(key)] = read(r);
  }
  return out;
}

const str = (r, n) => textDecoder.decode(slice(r, n));
const ext = (r, n) => ({ type: take(r, "getInt8", 1), data: slice(r, n).slice() });

/** Decoders of the one-byte codes with a fixed layout. */
const CODES = {
  0xc0: () => null,
  0xc2: () => false,
  0xc3: () => true,
  0xc4: (r) => slice(r, take(r, "getUint8", 1)).slice(),
  0xc5: (r) => slice(r, take(r, "getUint16", 2)).slice(),
  0xc6: (r) => slice(r, take(r, "getUint32", 4)).slice(),
  0xc7: (r) => ext(r, take(r, "getUint8", 1)),
  0xc8: (r) => ext(r, take(r, "getUint16", 2)),
  0xc9: (r) => ext(r, take(r, "getUint32", 4)),
  0xca: (r) => take(r, "getFloat32", 4),
  0xcb: (r) => take(r, "getFloat64", 8),
  0xcc: (r) => take(r, "getUint8", 1),
  0xcd: (r) => take(r, "getUint16", 2),
  0xce: (r) => take(r, "getUint32", 4),
  0xcf: (r) => safe(take(r, "getBigUint64", 8)),
  0xd0: (r) => take(r, "getInt8", 1),
  0xd1: (r) => take(r, "getInt16", 2),
  0xd2: (r) => take(r, "getInt32", 4),
  0xd3: (r) => safe(take(r, "getBigInt64", 8)),
  0xd4: (r) => ext(r, 1),
  0xd5: (r) => ext(r, 2),
  0xd6: (r) => ext(r, 4),
  0xd7: (r) => ext(r, 8),
  0xd8: (r) => ext(r, 16),
  0xd9: (r) => str(r, take(r, "getUint8", 1)),
  0xda: (r) => str(r, take(r, "getUint16", 2)),
  0xdb: (r) => str(r, take(r, "getUint32", 4)),
  0xdc: (r) => readArray(r, take(r, "getUint16", 2)),
  0xdd: (r) => readArray(r, take(r, "getUint32", 4)),
  0xde: (r) => readMap(r, take(r, "getUint16", 2)),
  0xdf: (r) => readMap(r, take(r, "getUint32", 4)),
};

function read(r) {
  const b = take(r, "getUint8", 1);
  if (b < 0x80) return b;
  if (b < 0x90) return readMap(r, b & 0x0f);
  if (b < 0xa0) return readArray(r, b & 0x0f);
  if (b < 0xc0) return str(r, b & 0x1f);
  if (b >= 0xe0) return b - 0x100;
  const decodeCode = CODES[b];
  if (!decodeCode) throw new Error(`msgpack: unknown byte 0x${b.toString(16)}`);
  return decodeCode(r);
}

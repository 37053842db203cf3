import { Code, SwitchyardError } from "@switchyard/errors";
import { type ExchangeRequestMsg, type ExchangeResponseMsg, rowSource } from "@switchyard/proto";
import { viewAs } from "@switchyard/tensor";

/**
 * Hand-written protobuf codec of the per-layer row exchange (switchyard.worker.v1
 * ExchangeRequest / ExchangeResponse), the data plane's hot path.
 *
 * The encoder writes rows straight from the sender's matrix (a gather) or its experts'
 * output chunks into the one buffer gRPC frames, and pads (field 15, which receivers
 * ignore) so that every tensor starts 4-byte aligned in the framed message: gRPC puts
 * the message at offset 5 of a fresh buffer, so the decoder views the floats in place
 * instead of copying them. The decoder reads any valid encoding (field order, unknown
 * fields, misalignment: then it copies), so generic clients such as grpcurl still work.
 * Measured allocation-bound: a worker's GC time follows the bytes it allocates.
 */

/**
 * Where gRPC puts a message in the buffer it hands to the deserializer (after the 5-byte
 * frame header): the default offset tensors are aligned for. The exchange's TCP transport
 * (exchange-tcp.ts) reads a message into a buffer of its own, at offset 0.
 */
export const GRPC_FRAME_HEADER = 5;
const PAD_FIELD = 15;

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

class Writer {
  pos = 0;
  /** `at`: the offset (mod 4) the receiver will hold this message at. */
  constructor(readonly buf: Buffer, private readonly at: number) {}
  varint(v: number): void {
    while (v >= 128) {
      this.buf[this.pos++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }
  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }
  uint(field: number, v: number): void {
    if (v === 0) return;
    this.tag(field, WIRE_VARINT);
    this.varint(v);
  }
  string(field: number, s: string): void {
    this.tag(field, WIRE_LEN);
    const n = Buffer.byteLength(s);
    this.varint(n);
    this.pos += this.buf.write(s, this.pos);
  }
  /** A pad field that makes the next length-delimited payload (of `len` bytes, field `field`) start aligned. */
  alignFor(field: number, len: number): void {
    const head = varintSize(field * 8 + WIRE_LEN) + varintSize(len);
    const misalign = (this.at + this.pos + head) % 4;
    if (misalign === 0) return;
    // A pad field is at least 2 bytes (tag + zero length): 2..5 bytes cover every shift.
    const shift = 4 - misalign;
    const padLen = shift >= 2 ? shift : shift + 4;
    this.tag(PAD_FIELD, WIRE_LEN);
    this.varint(padLen - 2);
    this.buf.fill(0, this.pos, this.pos + padLen - 2);
    this.pos += padLen - 2;
  }
  bytesHeader(field: number, len: number): void {
    this.alignFor(field, len);
    this.tag(field, WIRE_LEN);
    this.varint(len);
  }
  typed(a: Float32Array | Int32Array, begin = 0, end = a.length): void {
    const bytes = new Uint8Array(a.buffer, a.byteOffset + begin * 4, (end - begin) * 4);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.byteLength;
  }
}

/** Upper bound of a length-delimited field's size plus its worst-case pad (7 bytes). */
const bytesFieldBound = (field: number, len: number) => 7 + varintSize(field * 8 + WIRE_LEN) + varintSize(len) + len;

/** Where a message is written and the offset its receiver holds it at (tensors are aligned for that offset). */
export interface EncodeTarget {
  /** The bytes to write into, at least `bytes` long (default: a fresh Buffer). */
  readonly buffer?: (bytes: number) => Buffer;
  /** Default GRPC_FRAME_HEADER. */
  readonly at?: number;
}

const fresh = (n: number) => Buffer.allocUnsafe(n);

export function encodeExchangeRequest(r: ExchangeRequestMsg, target: EncodeTarget = {}): Buffer {
  const { src, index } = rowSource(r.u);
  if (index && index.length !== r.rows) throw new SwitchyardError(`exchange u gathers ${index.length} rows, rows is ${r.rows}`, Code.InvalidArgument);
  const dim = r.u instanceof Float32Array ? 0 : r.u.dim;
  const uBytes = index ? r.rows * dim * 4 : src.byteLength;
  const strings = [r.from, ...r.homes];
  let size = 64; // the varint fields
  for (const s of strings) size += 1 + 5 + Buffer.byteLength(s);
  size += bytesFieldBound(7, r.assignRow.byteLength) + bytesFieldBound(8, r.assignExpert.byteLength) + bytesFieldBound(6, uBytes);
  const w = new Writer((target.buffer ?? fresh)(size), target.at ?? GRPC_FRAME_HEADER);
  w.uint(1, r.tick);
  w.uint(2, r.layer);
  w.string(3, r.from);
  for (const h of r.homes) w.string(4, h);
  w.uint(5, r.rows);
  w.uint(10, r.micro ?? 0);
  w.uint(11, r.micros ?? 0);
  w.bytesHeader(7, r.assignRow.byteLength);
  w.typed(r.assignRow);
  w.bytesHeader(8, r.assignExpert.byteLength);
  w.typed(r.assignExpert);
  w.bytesHeader(6, uBytes);
  if (!index) w.typed(src);
  else for (let j = 0; j < r.rows; j++) w.typed(src, index[j]! * dim, (index[j]! + 1) * dim);
  return w.buf.subarray(0, w.pos);
}

/**
 * A gRPC server may pass a reused buffer, because grpc-js copies a response into its
 * framed buffer within the same synchronous call that serializes it.
 */
export function encodeExchangeResponse(r: ExchangeResponseMsg, target: EncodeTarget = {}): Buffer {
  const len = r.y.reduce((s, c) => s + c.byteLength, 0);
  const w = new Writer((target.buffer ?? fresh)(bytesFieldBound(1, len)), target.at ?? GRPC_FRAME_HEADER);
  w.bytesHeader(1, len);
  for (const c of r.y) w.typed(c);
  return w.buf.subarray(0, w.pos);
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): number {
    let v = 0;
    let mul = 1;
    for (;;) {
      if (this.pos >= this.buf.length) throw new SwitchyardError("exchange message is truncated", Code.InvalidArgument);
      const b = this.buf[this.pos++]!;
      v += (b & 127) * mul;
      if (b < 128) return v;
      mul *= 128;
    }
  }
  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.buf.length) throw new SwitchyardError("exchange message is truncated", Code.InvalidArgument);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_LEN) this.bytes();
    else if (wire === 1) this.pos += 8;
    else if (wire === 5) this.pos += 4;
    else throw new SwitchyardError(`exchange message has an unsupported wire type ${wire}`, Code.InvalidArgument);
  }
}

/** A view in place when aligned, else an aligned copy (viewAs); the error names the exchange. */
function tensor<D extends "float32" | "int32">(dtype: D, b: Uint8Array) {
  if (b.byteLength % 4 !== 0) throw new SwitchyardError(`exchange tensor of ${b.byteLength} bytes is not ${dtype}`, Code.InvalidArgument);
  return viewAs(dtype, b);
}
const f32 = (b: Uint8Array) => tensor("float32", b);
const i32 = (b: Uint8Array) => tensor("int32", b);
const utf8 = new TextDecoder();

export function decodeExchangeRequest(buf: Uint8Array): ExchangeRequestMsg {
  const rd = new Reader(buf);
  let tick = 0, layer = 0, rows = 0, micro = 0, micros = 0;
  let from = "";
  const homes: string[] = [];
  let u: Float32Array = new Float32Array(0);
  let assignRow: Int32Array = new Int32Array(0);
  let assignExpert: Int32Array = new Int32Array(0);
  while (!rd.done) {
    const key = rd.varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    const want = (t: number) => {
      if (wire !== t) throw new SwitchyardError(`exchange field ${field} has wire type ${wire}, expected ${t}`, Code.InvalidArgument);
    };
    switch (field) {
      case 1: want(WIRE_VARINT); tick = rd.varint(); break;
      case 2: want(WIRE_VARINT); layer = rd.varint(); break;
      case 3: want(WIRE_LEN); from = utf8.decode(rd.bytes()); break;
      case 4: want(WIRE_LEN); homes.push(utf8.decode(rd.bytes())); break;
      case 5: want(WIRE_VARINT); rows = rd.varint(); break;
      case 6: want(WIRE_LEN); u = f32(rd.bytes()); break;
      case 7: want(WIRE_LEN); assignRow = i32(rd.bytes()); break;
      case 8: want(WIRE_LEN); assignExpert = i32(rd.bytes()); break;
      case 10: want(WIRE_VARINT); micro = rd.varint(); break;
      case 11: want(WIRE_VARINT); micros = rd.varint(); break;
      default: rd.skip(wire);
    }
  }
  return { tick, layer, from, homes, rows, u, assignRow, assignExpert, ...(micros > 1 ? { micro, micros } : {}) };
}

export function decodeExchangeResponse(buf: Uint8Array): ExchangeResponseMsg {
  const rd = new Reader(buf);
  let y: Float32Array = new Float32Array(0);
  while (!rd.done) {
    const key = rd.varint();
    if (key === 1 * 8 + WIRE_LEN) y = f32(rd.bytes());
    else rd.skip(key % 8);
  }
  return { y: [y] };
}

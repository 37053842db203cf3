import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * Just enough of the protobuf wire format to rewrite ONNX models without a schema:
 * a message is its list of fields, each kept as the bytes it was read from, so that
 * every field this code does not touch (weights, attributes, metadata) is written back
 * exactly as it was. Used to derive grouped expert models from the committed parts.
 */
export interface WireField {
  readonly no: number;
  /** 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
  readonly type: 0 | 1 | 2 | 5;
  /** The value's bytes: the varint itself, the fixed bytes, or the payload of a length-delimited field. */
  readonly value: Uint8Array;
}

/** The varint at `pos`, and the position after it. */
export function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new SwitchyardError("protobuf: a varint runs past the end of the message", Code.DataLoss);
    const b = buf[pos++]!;
    result += (b & 0x7f) * mul;
    if (b < 0x80) return [result, pos];
    mul *= 128;
  }
  throw new SwitchyardError("protobuf: a varint is longer than 10 bytes", Code.DataLoss);
}

/** The fields of one message, in order. */
export function parseMessage(buf: Uint8Array): WireField[] {
  const fields: WireField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, p] = readVarint(buf, pos);
    const no = Math.floor(key / 8);
    const type = key % 8;
    let end: number;
    let start = p;
    if (type === 0) end = readVarint(buf, p)[1];
    else if (type === 1) end = p + 8;
    else if (type === 5) end = p + 4;
    else if (type === 2) {
      const [len, q] = readVarint(buf, p);
      start = q;
      end = q + len;
    } else throw new SwitchyardError(`protobuf: field ${no} has wire type ${type}, which ONNX models do not use`, Code.DataLoss);
    if (end > buf.length) throw new SwitchyardError(`protobuf: field ${no} runs past the end of the message`, Code.DataLoss);
    fields.push({ no, type: type as WireField["type"], value: buf.subarray(start, end) });
    pos = end;
  }
  return fields;
}

/** A varint's bytes. */
export function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** Serializes fields back into a message. */
export function writeMessage(fields: readonly WireField[]): Uint8Array {
  const heads = fields.map((f) => Uint8Array.from([...varint(f.no * 8 + f.type), ...(f.type === 2 ? varint(f.value.length) : [])]));
  const out = new Uint8Array(heads.reduce((s, h, i) => s + h.length + fields[i]!.value.length, 0));
  let o = 0;
  fields.forEach((f, i) => {
    out.set(heads[i]!, o);
    o += heads[i]!.length;
    out.set(f.value, o);
    o += f.value.length;
  });
  return out;
}

const utf8 = new TextEncoder();
const text = new TextDecoder();

export function stringField(no: number, s: string): WireField {
  return { no, type: 2, value: utf8.encode(s) };
}

export function fieldString(f: WireField): string {
  return text.decode(f.value);
}

/** A length-delimited field whose payload is `fields`. */
export function messageField(no: number, fields: readonly WireField[]): WireField {
  return { no, type: 2, value: writeMessage(fields) };
}

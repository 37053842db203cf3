import { readFileSync } from "node:fs";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type DType, type Tensor, bytesPerElement, shapeSize, viewAs } from "./tensor";

/**
 * The safetensors layout: u64 little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {k: string}}`,
 * then the tensor bytes (offsets relative to the end of the header). Switchyard
 * stores golden tensors and routing traces in it.
 */
const DTYPES: Record<string, DType> = {
  F32: "float32", F16: "float16", F64: "float64", I64: "int64", I32: "int32", I16: "int16", U8: "uint8", BOOL: "bool",
};

/** Refuse headers larger than this: a corrupt length would otherwise allocate wildly. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafeTensors {
  readonly tensors: ReadonlyMap<string, Tensor>;
  readonly metadata: Readonly<Record<string, string>>;
  /** The named tensor; NOT_FOUND naming it when absent. */
  get(name: string): Tensor;
}

function corrupt(source: string, why: string): SwitchyardError {
  return new SwitchyardError(`${source}: not a valid safetensors file: ${why}`, Code.DataLoss);
}

/** Parses safetensors bytes; tensors are views over `bytes` (aligned data is not copied). */
export function parseSafeTensors(bytes: Uint8Array, source = "safetensors"): SafeTensors {
  if (bytes.byteLength < 8) throw corrupt(source, `${bytes.byteLength} bytes is shorter than the 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > MAX_HEADER_BYTES || 8 + n > bytes.byteLength) throw corrupt(source, `header length ${n} exceeds the file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  } catch (e) {
    throw new SwitchyardError(`${source}: header is not JSON`, Code.DataLoss, { cause: e });
  }
  const body = bytes.subarray(8 + n);
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = (info ?? {}) as Record<string, string>;
      continue;
    }
    const i = info as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    const dtype = DTYPES[i.dtype ?? ""];
    if (!dtype) throw corrupt(source, `${name}: dtype ${JSON.stringify(i.dtype)} must be one of ${Object.keys(DTYPES).join(", ")}`);
    if (!Array.isArray(i.shape) || !i.shape.every((d) => Number.isInteger(d) && d >= 0)) throw corrupt(source, `${name}: bad shape`);
    const [a, b] = i.data_offsets ?? [NaN, NaN];
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b < a || b > body.byteLength) {
      throw corrupt(source, `${name}: data_offsets out of range`);
    }
    if (b - a !== shapeSize(i.shape) * bytesPerElement(dtype)) throw corrupt(source, `${name}: byte length does not match shape`);
    tensors.set(name, { dtype, shape: i.shape, data: viewAs(dtype, body.subarray(a, b)) });
  }
  return {
    tensors,
    metadata,
    get(name: string): Tensor {
      const t = tensors.get(name);
      if (!t) throw new SwitchyardError(`${source}: tensor ${JSON.stringify(name)} not found`, Code.NotFound);
      return t;
    },
  };
}

export function readSafeTensors(path: string): SafeTensors {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new SwitchyardError(`cannot read ${path}`, Code.NotFound, { cause: e });
  }
  return parseSafeTensors(bytes, path);
}

/** Serialises tensors in the same layout (tensor data 8-byte aligned). */
export function encodeSafeTensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  const rev = Object.fromEntries(Object.entries(DTYPES).map(([k, v]) => [v, k])) as Record<DType, string>;
  const header: Record<string, unknown> = {};
  let offset = 0;
  const parts: Uint8Array[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: rev[t.dtype], shape: t.shape, data_offsets: [offset, offset + raw.byteLength] };
    parts.push(raw);
    offset += raw.byteLength;
  }
  if (metadata) header.__metadata__ = metadata;
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  let p = 8 + head.byteLength;
  for (const raw of parts) {
    out.set(raw, p);
    p += raw.byteLength;
  }
  return out;
}

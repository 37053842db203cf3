import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * Tensors are raw little-endian bytes with a dtype and a shape; on the hot path we pass
 * typed-array views over the same buffer, never copies.
 */
export type DType = "float32" | "float16" | "float64" | "int64" | "int32" | "int16" | "uint8" | "bool";

export interface TypedArrayByDType {
  float32: Float32Array;
  float16: Uint16Array; // raw IEEE half bits
  float64: Float64Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int16: Int16Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

export type AnyTypedArray = TypedArrayByDType[DType];

export interface Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: TypedArrayByDType[D];
}

const BYTES: Record<DType, number> = {
  float32: 4, float16: 2, float64: 8, int64: 8, int32: 4, int16: 2, uint8: 1, bool: 1,
};

export function bytesPerElement(dtype: DType): number {
  return BYTES[dtype];
}

/** Number of elements of a shape (1 for a scalar). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A typed view over `bytes` (no copy when aligned; one copy when the offset is misaligned). */
export function viewAs<D extends DType>(dtype: D, bytes: Uint8Array): TypedArrayByDType[D] {
  const size = BYTES[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new SwitchyardError(`tensor bytes ${bytes.byteLength} is not a multiple of ${size} (${dtype})`, Code.InvalidArgument);
  }
  let buf = bytes;
  // new Uint8Array(view) copies into a fresh, aligned buffer (Buffer#slice would not copy)
  if (bytes.byteOffset % size !== 0) buf = new Uint8Array(bytes);
  const n = buf.byteLength / size;
  const b = buf.buffer as ArrayBuffer;
  const o = buf.byteOffset;
  const views: { [K in DType]: () => TypedArrayByDType[K] } = {
    float32: () => new Float32Array(b, o, n),
    float16: () => new Uint16Array(b, o, n),
    float64: () => new Float64Array(b, o, n),
    int64: () => new BigInt64Array(b, o, n),
    int32: () => new Int32Array(b, o, n),
    int16: () => new Int16Array(b, o, n),
    uint8: () => new Uint8Array(b, o, n),
    bool: () => new Uint8Array(b, o, n),
  };
  return views[dtype]();
}

/** The bytes under a typed array (a view, no copy). */
export function bytesOf(data: AnyTypedArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Builds a tensor, checking that the data length matches the shape. */
export function tensor<D extends DType>(dtype: D, shape: readonly number[], data: TypedArrayByDType[D]): Tensor<D> {
  const n = shapeSize(shape);
  if (data.length !== n) {
    throw new SwitchyardError(`tensor shape [${shape.join(", ")}] needs ${n} elements, got ${data.length}`, Code.InvalidArgument);
  }
  return { dtype, shape, data };
}

/** IEEE 754 half (as raw bits) to float32. */
export function halfToFloat(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const f = bits & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** float32 to IEEE 754 half bits, round to nearest even (overflow → ±Infinity). */
export function floatToHalf(value: number): number {
  const f = new Float32Array([value]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  e = h >> 10;
  return sign | h;
}

/** Converts a float16/float32/float64 array to a fresh Float32Array. */
export function toFloat32(t: Tensor): Float32Array {
  switch (t.dtype) {
    case "float32":
      return t.data as Float32Array;
    case "float16": {
      const src = t.data as Uint16Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i] as number);
      return out;
    }
    case "float64":
      return Float32Array.from(t.data as Float64Array);
    default:
      throw new SwitchyardError(`cannot read ${t.dtype} tensor as float32`, Code.InvalidArgument);
  }
}

/** Largest absolute elementwise difference of two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) {
    throw new SwitchyardError(`maxAbsDiff: lengths differ (${a.length} vs ${b.length})`, Code.InvalidArgument);
  }
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] as number) - (b[i] as number));
    if (d > m || Number.isNaN(d)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

import { KERNELS_WASM } from "./kernels-wasm";

/**
 * Top-k routing and per-expert row grouping, in TypeScript so that the runtime sees
 * (and can schedule) data-dependent routing.
 *
 * Worked example (E = 4, K = 2, one token with logits [0.1, 2.0, -1, 1.5]):
 *   top-2 = experts [1, 3]; softmax renormalised over the two:
 *   w = [e^2.0, e^1.5] / (e^2.0 + e^1.5) = [0.622, 0.378]
 * (softmax over all E followed by renormalising the top-k gives the same weights:
 * the full softmax denominator cancels.)
 */

/** Routing of one MoE layer for R rows: expert ids and weights, both [R, K]. */
export interface LayerRouting {
  readonly rows: number;
  readonly topK: number;
  readonly experts: Int16Array;
  readonly weights: Float32Array;
}

/** Top-k of each row of `logits` [rows, E]; ties go to the lower expert id. */
export function routeTopK(logits: Float32Array, rows: number, numExperts: number, topK: number): LayerRouting {
  if (topK === 2 && numExperts >= 2) return routeTop2(logits, rows, numExperts);
  const experts = new Int16Array(rows * topK);
  const weights = new Float32Array(rows * topK);
  const idx = new Int32Array(topK);
  const val = new Float64Array(topK);
  for (let r = 0; r < rows; r++) {
    const base = r * numExperts;
    let filled = 0;
    for (let e = 0; e < numExperts; e++) {
      const v = logits[base + e] as number;
      // insertion into a descending list of size topK; strict > keeps lower ids first on ties
      if (filled < topK || v > (val[topK - 1] as number)) {
        let j = filled < topK ? filled++ : topK - 1;
        while (j > 0 && v > (val[j - 1] as number)) {
          val[j] = val[j - 1] as number;
          idx[j] = idx[j - 1] as number;
          j--;
        }
        val[j] = v;
        idx[j] = e;
      }
    }
    const max = val[0] as number;
    let sum = 0;
    for (let k = 0; k < topK; k++) sum += Math.exp((val[k] as number) - max);
    for (let k = 0; k < topK; k++) {
      experts[r * topK + k] = idx[k] as number;
      weights[r * topK + k] = Math.exp((val[k] as number) - max) / sum;
    }
  }
  return { rows, topK, experts, weights };
}

/**
 * routeTopK for K = 2, bitwise the same (the insertion above unrolled: the first two
 * experts fill the list, later ones enter on strict >) with one Math.exp per row instead
 * of four: exp(v1 - v1) is exactly 1 (NaN for an infinite or NaN v1, as there).
 */
function routeTop2(logits: Float32Array, rows: number, numExperts: number): LayerRouting {
  const experts = new Int16Array(rows * 2);
  const weights = new Float32Array(rows * 2);
  for (let r = 0; r < rows; r++) {
    const base = r * numExperts;
    let v1 = logits[base]!;
    let i1 = 0;
    let v2 = logits[base + 1]!;
    let i2 = 1;
    if (v2 > v1) {
      v2 = v1;
      i2 = 0;
      v1 = logits[base + 1]!;
      i1 = 1;
    }
    for (let e = 2; e < numExperts; e++) {
      const v = logits[base + e]!;
      if (v > v2) {
        if (v > v1) {
          v2 = v1;
          i2 = i1;
          v1 = v;
          i1 = e;
        } else {
          v2 = v;
          i2 = e;
        }
      }
    }
    const e1 = 1 + (v1 - v1); // exp(v1 - v1): 1, or NaN where v1 is infinite or NaN
    const e2 = Math.exp(v2 - v1);
    const sum = e1 + e2;
    experts[2 * r] = i1;
    experts[2 * r + 1] = i2;
    weights[2 * r] = e1 / sum;
    weights[2 * r + 1] = e2 / sum;
  }
  return { rows, topK: 2, experts, weights };
}

/**
 * Rows grouped by expert (a counting sort): for expert e, entries
 * offsets[e] .. offsets[e+1]-1 of `row` / `weight` are the rows routed to e, ascending.
 */
export interface ExpertGroups {
  readonly numExperts: number;
  /** [E+1] */
  readonly offsets: Int32Array;
  /** [R*K] row index of each assignment */
  readonly row: Int32Array;
  /** [R*K] routing weight of each assignment */
  readonly weight: Float32Array;
}

export function groupByExpert(routing: LayerRouting, numExperts: number): ExpertGroups {
  const n = routing.rows * routing.topK;
  const offsets = new Int32Array(numExperts + 1);
  for (let i = 0; i < n; i++) offsets[(routing.experts[i] as number) + 1]! += 1;
  for (let e = 0; e < numExperts; e++) offsets[e + 1]! += offsets[e] as number;
  const cursor = offsets.slice(0, numExperts);
  const row = new Int32Array(n);
  const weight = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const e = routing.experts[i] as number;
    const p = cursor[e]!;
    cursor[e] = p + 1;
    row[p] = Math.floor(i / routing.topK);
    weight[p] = routing.weights[i] as number;
  }
  return { numExperts, offsets, row, weight };
}

/** Number of distinct experts with at least one row. */
export function activeExperts(groups: ExpertGroups): number {
  let n = 0;
  for (let e = 0; e < groups.numExperts; e++) if ((groups.offsets[e + 1] as number) > (groups.offsets[e] as number)) n++;
  return n;
}

/** Copies the listed rows of `src` ([*, D]) into a contiguous [rows.length, D] buffer. */
export function gatherRows(src: Float32Array, dim: number, rows: Int32Array, begin: number, end: number, out = new Float32Array((end - begin) * dim)): Float32Array {
  // Through the SIMD kernel when the rows read are at least half of src (copying src into
  // its memory costs less than the per-row subarrays then): at batch 32 the profile's
  // gatherRows went from 4.8 to 2.6 ms per step (6 layers of 6272 rows).
  const k = dim % 4 === 0 && 2 * (end - begin) * dim >= src.length ? wasmKernels() : null;
  if (k) return gatherWasm(k, [src], dim, rows.subarray(begin, end), out);
  // TypedArray#set of a row view is a native copy: ~1.6x faster than an element loop here
  // (measured again in #17 inside the engine at batch 32: 8.6 ms/step against 15.6).
  for (let i = begin; i < end; i++) {
    const s = (rows[i] as number) * dim;
    out.set(src.subarray(s, s + dim), (i - begin) * dim);
  }
  return out;
}

/**
 * out[i] = row rows[i] of the sources laid end to end (each [*, dim]): an expert owner's
 * input, gathered in expert-major order from the rows of every home of a layer. Through
 * the SIMD kernel (the sources copied into its memory) when dim is a multiple of 4 and
 * the rows read are at least half of the sources' rows; else row views (TypedArray#set).
 * At batch 32 on 2 workers the element loop this replaces took 11 ms of a worker's tick.
 */
export function gatherRowsFrom(sources: readonly Float32Array[], dim: number, rows: Int32Array, out: Float32Array = new Float32Array(rows.length * dim)): Float32Array {
  let total = 0;
  for (const s of sources) total += s.length;
  const n = rows.length;
  const rowsIn = total / dim;
  for (let i = 0; i < n; i++) if (!(rows[i]! >= 0 && rows[i]! < rowsIn)) throw new RangeError(`rows[${i}] = ${rows[i]} must be >= 0 and < ${rowsIn} (the sources' rows)`);
  const k = dim % 4 === 0 && 2 * n * dim >= total ? wasmKernels() : null;
  if (k) return gatherWasm(k, sources, dim, rows, out);
  // Each source's first row in the concatenation.
  const first = new Int32Array(sources.length + 1);
  sources.forEach((s, i) => (first[i + 1] = first[i]! + s.length / dim));
  let j = 0;
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    if (!(r >= first[j]! && r < first[j + 1]!)) {
      j = 0;
      while (r >= first[j + 1]!) j++;
    }
    const s = (r - first[j]!) * dim;
    out.set(sources[j]!.subarray(s, s + dim), i * dim);
  }
  return out;
}

/**
 * Where a layer's expert outputs are: assignment p (in the groups' expert-major order)
 * has its D outputs in chunks[chunkOf[p]] from float offset offOf[p]. Executors hand
 * out the buffers they got (a grouped session's outputs, a peer's answer) instead of
 * copying them into one.
 */
export interface ExpertOutputs {
  readonly chunks: readonly Float32Array[];
  readonly chunkOf: Int32Array;
  readonly offOf: Int32Array;
}

/** Outputs laid out one chunk per expert with rows (`ys[i]` for the i-th expert that has rows, ascending). */
export function outputsPerExpert(groups: ExpertGroups, ys: readonly Float32Array[], dim: number): ExpertOutputs {
  const n = groups.offsets[groups.numExperts]!;
  const chunkOf = new Int32Array(n);
  const offOf = new Int32Array(n);
  let q = 0;
  for (let e = 0; e < groups.numExperts; e++) {
    const b = groups.offsets[e]!;
    const end = groups.offsets[e + 1]!;
    if (end === b) continue;
    for (let p = b; p < end; p++) {
      chunkOf[p] = q;
      offOf[p] = (p - b) * dim;
    }
    q++;
  }
  return { chunks: ys, chunkOf, offOf };
}

/**
 * One MoE block's end, in one pass over its rows: out = h1 + gate[b] * mix, where a
 * row's mix is `base` (the shared expert's output, or zeros when `base` is undefined)
 * plus w * y of each of its K assignments, added in ascending assignment order (that
 * is, ascending expert id) with one float32 rounding per add — bitwise what adding
 * each expert's weighted rows into a float32 accumulator (like torch's index_add_)
 * and then combining gives, without writing the accumulator back once per expert.
 * `out` may be h1 itself. Rows are B*T; every row has exactly K assignments.
 */
export function mixAndCombine(
  h1: Float32Array,
  gate: Float32Array,
  base: Float32Array | undefined,
  outputs: ExpertOutputs,
  groups: ExpertGroups,
  B: number,
  T: number,
  D: number,
  K: number,
  out: Float32Array = new Float32Array(B * T * D),
  kernel: "auto" | "javascript" = "auto",
): Float32Array {
  const n = groups.row.length;
  if (n !== B * T * K) throw new RangeError(`mixAndCombine: ${n} assignments for ${B * T} rows of ${K}`);
  const block: BlockEnd = { h1, gate, base, outputs, groups, B, T, D, K };
  const m = kernel === "auto" && K === 2 && D % 4 === 0 ? wasmKernels() : null;
  return m ? mixTop2Wasm(m, block, out) : mixScalar(block, out);
}

/** mixAndCombine's operands. */
interface BlockEnd {
  readonly h1: Float32Array;
  readonly gate: Float32Array;
  readonly base: Float32Array | undefined;
  readonly outputs: ExpertOutputs;
  readonly groups: ExpertGroups;
  readonly B: number;
  readonly T: number;
  readonly D: number;
  readonly K: number;
}

/** mixAndCombine in plain JavaScript, for any K and D (and where WebAssembly SIMD is missing). */
function mixScalar({ h1, gate, base, outputs, groups, B, T, D, K }: BlockEnd, out: Float32Array): Float32Array {
  const R = B * T;
  const { row, weight } = groups;
  const n = row.length;
  // Each row's assignments in ascending order (a counting pass: rows are dense, K each).
  const at = new Int32Array(n);
  const filled = new Uint8Array(R);
  for (let p = 0; p < n; p++) {
    const r = row[p]!;
    at[r * K + filled[r]!] = p;
    filled[r]! += 1;
  }
  const { chunks, chunkOf, offOf } = outputs;
  const fr = Math.fround;
  if (K === 2) {
    for (let r = 0; r < R; r++) {
      const p1 = at[2 * r]!;
      const p2 = at[2 * r + 1]!;
      const y1 = chunks[chunkOf[p1]!]!;
      const y2 = chunks[chunkOf[p2]!]!;
      const o1 = offOf[p1]!;
      const o2 = offOf[p2]!;
      const w1 = weight[p1]!;
      const w2 = weight[p2]!;
      const o = r * D;
      const go = ((r / T) | 0) * D;
      if (base) for (let d = 0; d < D; d++) out[o + d] = h1[o + d]! + gate[go + d]! * fr(fr(base[o + d]! + y1[o1 + d]! * w1) + y2[o2 + d]! * w2);
      else for (let d = 0; d < D; d++) out[o + d] = h1[o + d]! + gate[go + d]! * fr(fr(0 + y1[o1 + d]! * w1) + y2[o2 + d]! * w2); // 0 + keeps a zero accumulator's +0
    }
    return out;
  }
  const acc = new Float32Array(D);
  for (let r = 0; r < R; r++) {
    const o = r * D;
    if (base) acc.set(base.subarray(o, o + D));
    else acc.fill(0);
    for (let k = 0; k < K; k++) {
      const p = at[r * K + k]!;
      const y = chunks[chunkOf[p]!]!;
      const oy = offOf[p]!;
      const w = weight[p]!;
      for (let d = 0; d < D; d++) acc[d] = acc[d]! + y[oy + d]! * w;
    }
    const go = ((r / T) | 0) * D;
    for (let d = 0; d < D; d++) out[o + d] = h1[o + d]! + gate[go + d]! * acc[d]!;
  }
  return out;
}

/** What this file uses of the WebAssembly JS API (the compiler's libs here do not declare it). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  readonly Module: new (bytes: Uint8Array) => object;
  readonly Instance: new (module: object) => { readonly exports: Record<string, unknown> };
}

interface Kernels {
  readonly memory: WasmMemory;
  readonly mix2: (yoff: number, w: number, h: number, gate: number, base: number, R: number, T: number, D: number) => void;
  readonly gather: (dst: number, src: number, rows: number, n: number, D: number) => void;
}

let kernels: Kernels | null | undefined;

/** kernels.wat, instantiated once per thread; null where WebAssembly SIMD is missing. */
function wasmKernels(): Kernels | null {
  if (kernels === undefined) {
    try {
      const bytes = Uint8Array.from(atob(KERNELS_WASM), (c) => c.charCodeAt(0));
      const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
      const { exports } = new wasm.Instance(new wasm.Module(bytes));
      kernels = {
        memory: exports.memory as WasmMemory,
        mix2: exports.mix2 as Kernels["mix2"],
        gather: exports.gather as Kernels["gather"],
      };
    } catch {
      kernels = null;
    }
  }
  return kernels;
}

/** Whether the WebAssembly SIMD kernels run here (else the JavaScript loops do, with the same results). */
export function simdKernels(): boolean {
  return wasmKernels() !== null;
}

/**
 * Lays out one kernel call's operands from the start of the kernels' memory (each call
 * is synchronous, so calls never share it): `take` reserves 16-byte-aligned bytes, and
 * `memory()` grows the memory to what was taken and returns its buffer.
 */
function arena(k: Kernels): { take: (bytes: number) => number; memory: () => ArrayBuffer } {
  let top = 0;
  return {
    take(bytes) {
      const at = top;
      top += (bytes + 15) & ~15;
      return at;
    },
    memory() {
      const have = k.memory.buffer.byteLength;
      if (top > have) k.memory.grow(Math.ceil((top - have) / 65536));
      return k.memory.buffer;
    },
  };
}

/** out[i] = row rows[i] of the sources laid end to end, through the gather kernel (the sources copied into its memory). */
function gatherWasm(k: Kernels, sources: readonly Float32Array[], dim: number, rows: Int32Array, out: Float32Array): Float32Array {
  const n = rows.length;
  const a = arena(k);
  const rowsAt = a.take(n * 4);
  const srcAt = sources.map((s) => a.take(s.length * 4));
  const dstAt = a.take(n * dim * 4);
  const mem = a.memory();
  new Int32Array(mem, rowsAt, n).set(rows);
  // take() pads to 16 bytes; with dim a multiple of 4 every source's length is too, so the sources lie end to end.
  sources.forEach((s, i) => new Float32Array(mem, srcAt[i]!, s.length).set(s));
  k.gather(dstAt, srcAt[0] ?? 0, rowsAt, n, dim);
  out.set(new Float32Array(mem, dstAt, n * dim));
  return out;
}

/**
 * Top-2 mixAndCombine through the SIMD kernel: the operands are copied into its memory
 * (native copies, ~0.2 ms for 64 images' 3136 rows), each row's two output rows and
 * weights are listed, and the result is copied out. The memory keeps the largest size
 * a call needed.
 */
function mixTop2Wasm(m: Kernels, { h1, gate, base, outputs, groups, B, T, D }: BlockEnd, out: Float32Array): Float32Array {
  const R = B * T;
  const { chunks, chunkOf, offOf } = outputs;
  const a = arena(m);
  const yoffAt = a.take(R * 8);
  const wAt = a.take(R * 8);
  const hAt = a.take(R * D * 4);
  const gateAt = a.take(B * D * 4);
  const baseAt = a.take(R * D * 4);
  const chunkAt = chunks.map((c) => a.take(c.length * 4));
  const mem = a.memory();
  const yoff = new Int32Array(mem, yoffAt, 2 * R);
  const w = new Float32Array(mem, wAt, 2 * R);
  // Each row's two assignments in ascending order (expert-major order: lower expert first).
  const filled = new Uint8Array(R);
  const { row, weight } = groups;
  for (let p = 0; p < row.length; p++) {
    const r = row[p]!;
    const slot = 2 * r + filled[r]!;
    filled[r]! += 1;
    yoff[slot] = chunkAt[chunkOf[p]!]! + offOf[p]! * 4;
    w[slot] = weight[p]!;
  }
  new Float32Array(mem, hAt, R * D).set(h1.subarray(0, R * D));
  new Float32Array(mem, gateAt, B * D).set(gate.subarray(0, B * D));
  const baseView = new Float32Array(mem, baseAt, R * D);
  if (base) baseView.set(base.subarray(0, R * D));
  else baseView.fill(0);
  for (let i = 0; i < chunks.length; i++) new Float32Array(mem, chunkAt[i]!, chunks[i]!.length).set(chunks[i]!);
  m.mix2(yoffAt, wAt, hAt, gateAt, baseAt, R, T, D);
  out.set(new Float32Array(mem, hAt, R * D));
  return out;
}

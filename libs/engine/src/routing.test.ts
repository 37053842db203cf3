import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ExpertGroups, type LayerRouting, activeExperts, gatherRows, gatherRowsFrom, groupByExpert, mixAndCombine, outputsPerExpert, routeTopK, simdKernels } from "./routing";

/** Top-k by insertion into a descending list (strict >, so ties keep the lower id), softmax over the k: routeTopK's general path, for any k. */
function insertionTopK(logits: Float32Array, rows: number, E: number, K: number): LayerRouting {
  const experts = new Int16Array(rows * K);
  const weights = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++) {
    const idx: number[] = [];
    const val: number[] = [];
    for (let e = 0; e < E; e++) {
      const v = logits[r * E + e]!;
      if (idx.length < K || v > val[K - 1]!) {
        let j = idx.length < K ? idx.length : K - 1;
        while (j > 0 && v > val[j - 1]!) {
          val[j] = val[j - 1]!;
          idx[j] = idx[j - 1]!;
          j--;
        }
        val[j] = v;
        idx[j] = e;
      }
    }
    let sum = 0;
    for (let k = 0; k < K; k++) sum += Math.exp(val[k]! - val[0]!);
    for (let k = 0; k < K; k++) {
      experts[r * K + k] = idx[k]!;
      weights[r * K + k] = Math.exp(val[k]! - val[0]!) / sum;
    }
  }
  return { rows, topK: K, experts, weights };
}

/** acc[row] += w * y[j] for the assignments begin..end, one float32 rounding per add (like torch's index_add_): the engine's mix before it was fused. */
function scatterAddWeighted(acc: Float32Array, dim: number, y: Float32Array, rows: Int32Array, weights: Float32Array, begin: number, end: number): void {
  for (let i = begin; i < end; i++) {
    const r = rows[i]! * dim;
    const j = (i - begin) * dim;
    const w = weights[i]!;
    for (let d = 0; d < dim; d++) acc[r + d] = acc[r + d]! + y[j + d]! * w;
  }
}

/** The block's end as the engine computed it before mixAndCombine: every expert's weighted rows into the base, then h1 + gate * mix. */
function reference(h1: Float32Array, gate: Float32Array, base: Float32Array | undefined, ys: Float32Array[], g: ExpertGroups, B: number, T: number, D: number): Float32Array {
  const acc = base ? base.slice() : new Float32Array(B * T * D);
  let q = 0;
  for (let e = 0; e < g.numExperts; e++) {
    if (g.offsets[e + 1] === g.offsets[e]) continue;
    scatterAddWeighted(acc, D, ys[q++]!, g.row, g.weight, g.offsets[e]!, g.offsets[e + 1]!);
  }
  const out = new Float32Array(B * T * D);
  for (let r = 0; r < B * T; r++) for (let d = 0; d < D; d++) out[r * D + d] = h1[r * D + d]! + gate[Math.floor(r / T) * D + d]! * acc[r * D + d]!;
  return out;
}

describe("routeTopK", () => {
  it("picks the top-k and renormalises the softmax over them", () => {
    const r = routeTopK(new Float32Array([0.1, 2.0, -1, 1.5]), 1, 4, 2);
    expect(Array.from(r.experts)).toEqual([1, 3]);
    const e = Math.exp(0.5);
    expect(r.weights[0]).toBeCloseTo(e / (e + 1), 6);
    expect((r.weights[0] as number) + (r.weights[1] as number)).toBeCloseTo(1, 6);
  });

  it("breaks ties toward the lower expert id and handles k = 1 and k = E", () => {
    expect(Array.from(routeTopK(new Float32Array([1, 3, 3, 0]), 1, 4, 2).experts)).toEqual([1, 2]);
    const one = routeTopK(new Float32Array([0, 5, 1, 0, 9, 2]), 2, 3, 1);
    expect(Array.from(one.experts)).toEqual([1, 1]);
    expect(Array.from(one.weights)).toEqual([1, 1]);
    const all = routeTopK(new Float32Array([3, 1, 2]), 1, 3, 3);
    expect(Array.from(all.experts)).toEqual([0, 2, 1]);
  });

  it("is bitwise the insertion top-k at every K (K = 2 has a path of its own), ties, infinities and NaN included", () => {
    const logit = fc.oneof(fc.float(), fc.constantFrom(0, -0, 1, -1, Infinity, -Infinity, Number.NaN));
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 9 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.array(logit, { minLength: 36, maxLength: 36 }), (E, rows, k, pool) => {
        const K = Math.min(k, E);
        const logits = Float32Array.from({ length: rows * E }, (_, i) => pool[(i * 7) % pool.length]!);
        const got = routeTopK(logits, rows, E, K);
        const want = insertionTopK(logits, rows, E, K);
        expect(Array.from(got.experts)).toEqual(Array.from(want.experts));
        expect(Array.from(got.weights, (v, i) => Object.is(v, want.weights[i]))).not.toContain(false);
      }),
      { numRuns: 500 },
    );
  });

  it("matches softmax-then-renormalise on random logits", () => {
    const E = 32, R = 50, K = 2;
    const logits = Float32Array.from({ length: R * E }, (_, i) => Math.sin(i * 12.9898) * 4);
    const r = routeTopK(logits, R, E, K);
    for (let row = 0; row < R; row++) {
      const l = Array.from(logits.subarray(row * E, row * E + E));
      const p = l.map((v) => Math.exp(v));
      const order = p.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]);
      expect(r.experts[row * K]).toBe(order[0]![1]);
      expect(r.experts[row * K + 1]).toBe(order[1]![1]);
      expect(r.weights[row * K]).toBeCloseTo(order[0]![0] / (order[0]![0] + order[1]![0]), 6);
    }
  });
});

describe("groupByExpert", () => {
  it("groups rows per expert in ascending row order and scatters back", () => {
    const routing = { rows: 3, topK: 2, experts: new Int16Array([2, 0, 0, 1, 2, 1]), weights: new Float32Array([0.6, 0.4, 0.7, 0.3, 0.5, 0.5]) };
    const g = groupByExpert(routing, 4);
    expect(Array.from(g.offsets)).toEqual([0, 2, 4, 6, 6]);
    expect(Array.from(g.row)).toEqual([0, 1, 1, 2, 0, 2]);
    expect(Array.from(g.weight)).toEqual(Array.from(new Float32Array([0.4, 0.7, 0.3, 0.5, 0.6, 0.5])));
    expect(activeExperts(g)).toBe(3);

    const D = 2;
    const u = new Float32Array([1, 1, 2, 2, 3, 3]);
    const rows0 = gatherRows(u, D, g.row, 0, 2);
    expect(Array.from(rows0)).toEqual([1, 1, 2, 2]);
    const acc = new Float32Array(3 * D);
    for (let e = 0; e < 4; e++) {
      const b = g.offsets[e]!, end = g.offsets[e + 1]!;
      const y = gatherRows(u, D, g.row, b, end).map((v) => v * (e + 1)); // expert e multiplies by e+1
      scatterAddWeighted(acc, D, y, g.row, g.weight, b, end);
    }
    // row 0: 0.6*3*1 + 0.4*1*1 = 2.2 ; row 1: 0.7*1*2 + 0.3*2*2 = 2.6 ; row 2: 0.5*3*3 + 0.5*2*3 = 7.5
    expect(Array.from(acc).map((v) => +v.toFixed(5))).toEqual([2.2, 2.2, 2.6, 2.6, 7.5, 7.5]);
  });
});

describe("gatherRows", () => {
  it("copies the listed rows, through the SIMD kernel (D a multiple of 4, most of src read) or row views, into out", () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 3, 4, 8), fc.integer({ min: 1, max: 12 }), fc.array(fc.nat(), { maxLength: 30 }), fc.nat(), (D, srcRows, picks, skip) => {
        const src = Float32Array.from({ length: srcRows * D }, (_, i) => (i % 2 ? -i : i) / 3);
        const rows = Int32Array.from(picks, (p) => p % srcRows);
        const begin = rows.length ? skip % rows.length : 0;
        const want = Array.from(rows.subarray(begin), (r) => Array.from(src.subarray(r * D, r * D + D))).flat();
        expect(Array.from(gatherRows(src, D, rows, begin, rows.length))).toEqual(want);
        const out = new Float32Array(want.length + D).fill(7);
        gatherRows(src, D, rows, begin, rows.length, out.subarray(D));
        expect(Array.from(out)).toEqual([...new Array(D).fill(7), ...want]);
      }),
      { numRuns: 300 },
    );
  });
});

describe("gatherRowsFrom", () => {
  it("copies the listed rows of the sources laid end to end, through the SIMD kernel or row views", () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 3, 4, 8), fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { maxLength: 40 }), (D, sizes, picks) => {
        let v = 0;
        const sources = sizes.map((n) => Float32Array.from({ length: n * D }, () => (v++ % 2 ? -v : v) / 3));
        const all = sources.flatMap((s) => Array.from(s));
        const total = all.length / D;
        if (total === 0) return;
        const rows = Int32Array.from(picks, (p) => p % total);
        const want = Array.from(rows, (r) => all.slice(r * D, r * D + D)).flat();
        expect(Array.from(gatherRowsFrom(sources, D, rows))).toEqual(want);
        const out = new Float32Array(want.length + D).fill(7);
        gatherRowsFrom(sources, D, rows, out.subarray(D));
        expect(Array.from(out)).toEqual([...new Array(D).fill(7), ...want]);
      }),
      { numRuns: 300 },
    );
  });

  it("names a row past the sources", () => {
    expect(() => gatherRowsFrom([new Float32Array(3)], 3, Int32Array.of(0, 1))).toThrow(/rows\[1\] = 1 must be >= 0 and < 1/);
    expect(() => gatherRowsFrom([new Float32Array(8), new Float32Array(4)], 4, Int32Array.of(2, 3))).toThrow(/rows\[1\] = 3 must be >= 0 and < 3/);
  });
});

describe("mixAndCombine", () => {
  const f32 = fc.float({ noNaN: true, noDefaultInfinity: true, min: -8, max: 8 });
  it("is bitwise the per-expert weighted scatter followed by the block combine, for any routing, K, base and signed zeros", () => {
    // D = 4 and 8 with K = 2 take the SIMD kernel; the others, and kernel "javascript", the loops.
    const shape = fc.record({ B: fc.integer({ min: 1, max: 3 }), T: fc.integer({ min: 1, max: 4 }), D: fc.constantFrom(1, 3, 4, 5, 8), E: fc.integer({ min: 1, max: 6 }), K: fc.integer({ min: 1, max: 3 }), shared: fc.boolean(), seed: fc.integer() });
    fc.assert(
      fc.property(shape, fc.array(fc.oneof(f32, fc.constantFrom(0, -0, 1e-30, -1e-30)), { minLength: 64, maxLength: 64 }), ({ B, T, D, E, K: k, shared, seed }, pool) => {
        const K = Math.min(k, E);
        const R = B * T;
        let s = seed >>> 0;
        const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
        const pick = () => pool[next() % pool.length]!;
        const experts = new Int16Array(R * K);
        const weights = new Float32Array(R * K);
        for (let r = 0; r < R; r++) {
          const ids = Array.from({ length: E }, (_, e) => e).sort(() => (next() % 3) - 1).slice(0, K); // K distinct, any order
          ids.forEach((e, j) => {
            experts[r * K + j] = e;
            weights[r * K + j] = Math.abs(pick()) / 8;
          });
        }
        const g = groupByExpert({ rows: R, topK: K, experts, weights }, E);
        const ys: Float32Array[] = [];
        for (let e = 0; e < E; e++) if (g.offsets[e + 1]! > g.offsets[e]!) ys.push(Float32Array.from({ length: (g.offsets[e + 1]! - g.offsets[e]!) * D }, pick));
        const h1 = Float32Array.from({ length: R * D }, pick);
        const gate = Float32Array.from({ length: B * D }, pick);
        const base = shared ? Float32Array.from({ length: R * D }, pick) : undefined;
        const want = reference(h1, gate, base, ys, g, B, T, D);
        const got = mixAndCombine(h1, gate, base, outputsPerExpert(g, ys, D), g, B, T, D, K);
        expect(Array.from(got, (v, i) => Object.is(v, want[i]))).not.toContain(false);
        // In place over h1, as the engine calls it.
        const inPlace = mixAndCombine(h1.slice(), gate, base, outputsPerExpert(g, ys, D), g, B, T, D, K);
        expect(Array.from(inPlace, (v, i) => Object.is(v, want[i]))).not.toContain(false);
        const scalar = mixAndCombine(h1, gate, base, outputsPerExpert(g, ys, D), g, B, T, D, K, undefined, "javascript");
        expect(Array.from(scalar, (v, i) => Object.is(v, want[i]))).not.toContain(false);
      }),
      { numRuns: 300 },
    );
  });

  it("runs on the WebAssembly SIMD kernels, built from the committed kernels.wat", () => {
    expect(simdKernels()).toBe(true);
    const script = fileURLToPath(new URL("../scripts/build-wasm.mjs", import.meta.url));
    // Exits 1, naming the fix, when kernels-wasm.ts is not what kernels.wat assembles to.
    execFileSync(process.execPath, [script, "--check"], { stdio: "pipe" });
  });

  it("reads outputs wherever the executor left them (one buffer with offsets, as a peer's answer)", () => {
    const g = groupByExpert({ rows: 2, topK: 2, experts: new Int16Array([1, 0, 0, 1]), weights: new Float32Array([0.75, 0.25, 0.5, 0.5]) }, 2);
    // Expert 0 doubles, expert 1 triples; rows u = [1], [10]; one answer buffer with both experts' outputs reversed.
    const answer = new Float32Array([30, 3, 20, 2]); // expert 1 rows 1,0 then expert 0 rows 1,0
    const outputs = { chunks: [answer], chunkOf: new Int32Array([0, 0, 0, 0]), offOf: new Int32Array([3, 2, 1, 0]) };
    const h = mixAndCombine(new Float32Array([0, 0]), new Float32Array([1]), undefined, outputs, g, 1, 2, 1, 2);
    // row 0: 0.25*2 + 0.75*3 = 2.75; row 1: 0.5*20 + 0.5*30 = 25
    expect(Array.from(h)).toEqual([2.75, 25]);
  });

  it("refuses assignments that are not K per row", () => {
    const g = groupByExpert({ rows: 2, topK: 1, experts: new Int16Array([0, 0]), weights: new Float32Array([1, 1]) }, 1);
    expect(() => mixAndCombine(new Float32Array(2), new Float32Array(1), undefined, outputsPerExpert(g, [new Float32Array(2)], 1), g, 1, 2, 1, 2)).toThrow(/2 assignments for 2 rows of 2/);
  });
});

import * as fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ExpertGroups, activeExperts, gatherRows, groupByExpert, mixAndCombine, outputsPerExpert, routeTopK } from "./routing";

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

describe("mixAndCombine", () => {
  const f32 = fc.float({ noNaN: true, noDefaultInfinity: true, min: -8, max: 8 });
  it("is bitwise the per-expert weighted scatter followed by the block combine, for any routing, K, base and signed zeros", () => {
    const shape = fc.record({ B: fc.integer({ min: 1, max: 3 }), T: fc.integer({ min: 1, max: 4 }), D: fc.integer({ min: 1, max: 5 }), E: fc.integer({ min: 1, max: 6 }), K: fc.integer({ min: 1, max: 3 }), shared: fc.boolean(), seed: fc.integer() });
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
      }),
      { numRuns: 300 },
    );
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

import { describe, expect, it } from "vitest";
import { activeExperts, gatherRows, groupByExpert, routeTopK, scatterAddWeighted } from "./routing";

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

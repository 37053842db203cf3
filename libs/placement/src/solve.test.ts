import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { copiesOf, diffPlans, parsePlanFile, toPlanFile } from "@switchyard/contract";
import { type Placement, addReplicas, contiguousPlacement, loadGreedyPlacement } from "./placement";
import { expertLoad } from "@switchyard/trace";
import { crossWorkerLowerBound, placementCost } from "./cost";
import { solveExact, solveHeuristic, solvePlacement } from "./solve";
import { type Trace, readTrace } from "@switchyard/trace";

const MODEL = new URL("../../../models/dit-moe-fmnist", import.meta.url).pathname;

/**
 * Planted structure: W groups of requests; group g routes only to a scrambled set of
 * E/W experts per layer, evenly. The optimum puts each group's experts on one worker
 * and homes the group there: zero rows cross.
 */
function planted(W: number, E: number, L: number, perGroup: number, seed = 1): { trace: Trace; groupOf: (e: number, l: number) => number } {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const perm = Array.from({ length: L }, () => {
    const p = Array.from({ length: E }, (_, i) => i);
    for (let i = E - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    return p;
  });
  const slots = E / W;
  const T = 4, K = 2;
  const R = W * perGroup;
  const routing = new Int16Array(R * L * T * K);
  for (let r = 0; r < R; r++) {
    const g = r % W;
    for (let l = 0; l < L; l++)
      for (let t = 0; t < T; t++)
        for (let k = 0; k < K; k++) routing[((r * L + l) * T + t) * K + k] = perm[l]![g * slots + ((t * K + k + r) % slots)]!;
  }
  const trace: Trace = {
    layers: L, experts: E, topK: K, tokens: T, records: R,
    request: Int32Array.from({ length: R }, (_, i) => i), step: new Int32Array(R), branch: new Uint8Array(R), label: new Int32Array(R), t: new Float32Array(R),
    routing, weights: undefined,
  };
  return { trace, groupOf: (e, l) => Math.floor(perm[l]!.indexOf(e) / slots) };
}

function checkConstraints(p: Placement, trace: Trace, beta: number): void {
  const loads = expertLoad(trace);
  for (let l = 0; l < p.layers; l++) {
    const count = new Array(p.workers).fill(0);
    const load = new Array(p.workers).fill(0);
    for (let e = 0; e < p.experts; e++) {
      const w = p.owners[l * p.experts + e]!;
      count[w]++;
      load[w] += loads[l]![e]!;
    }
    expect(count.every((c) => c === p.experts / p.workers)).toBe(true);
    const mean = load.reduce((a, b) => a + b, 0) / p.workers;
    expect(Math.max(...load)).toBeLessThanOrEqual((1 + beta) * mean + 1e-9);
  }
}

describe("solvers", () => {
  it.each([
    ["exact", solveExact],
    ["heuristic", solveHeuristic],
  ] as const)("%s finds the planted optimum (no row crosses)", async (_, solve) => {
    const { trace, groupOf } = planted(4, 16, 3, 6);
    const before = placementCost(trace, contiguousPlacement(4, 3, 16), { hidden: 8 });
    expect(before.rowsBackPerImage).toBeGreaterThan(0);
    const r = await solve(trace, { workers: 4, timeLimitS: 5 });
    expect(r.cost).toBe(0);
    // experts of one group share a worker
    for (let l = 0; l < 3; l++)
      for (let e = 0; e < 16; e++) for (let f = 0; f < 16; f++) if (groupOf(e, l) === groupOf(f, l)) expect(r.placement.owners[l * 16 + e]).toBe(r.placement.owners[l * 16 + f]);
    checkConstraints(r.placement, trace, 0.1);
    expect(placementCost(trace, r.placement, { hidden: 8 }).bytesPerImage).toBe(0);
  });

  it("keep capacity and balance on the reference model's trace, and beat the baselines on held-out requests", async () => {
    const solve = readTrace(join(MODEL, "traces/solve.safetensors"));
    const hold = readTrace(join(MODEL, "traces/holdout.safetensors"));
    const r = await solveHeuristic(solve, { workers: 4 });
    checkConstraints(r.placement, solve, 0.1);
    const mine = placementCost(hold, r.placement, { hidden: 128 });
    const contiguous = placementCost(hold, contiguousPlacement(4, 6, 32), { hidden: 128 });
    const greedy = placementCost(hold, loadGreedyPlacement(solve, 4), { hidden: 128 });
    expect(mine.bytesPerImage).toBeLessThan(contiguous.bytesPerImage);
    expect(mine.bytesPerImage).toBeLessThan(greedy.bytesPerImage);
  });
});

describe("lower bound on cross-worker bytes", () => {
  it("is 0 where a plan crosses nothing, and never above any plan's cost", async () => {
    const { trace } = planted(4, 16, 3, 5);
    expect(crossWorkerLowerBound(trace, 4, { hidden: 8 }).bytesPerImage).toBe(0);
    const real = readTrace(join(MODEL, "traces/solve.safetensors"));
    for (const W of [2, 4, 8]) {
      const lb = crossWorkerLowerBound(real, W, { hidden: 128 });
      const lbStep = crossWorkerLowerBound(real, W, { hidden: 128, homesPer: "step" });
      expect(lbStep.bytesPerImage).toBeLessThanOrEqual(lb.bytesPerImage); // fewer constraints, weaker bound
      const solved = await solveHeuristic(real, { workers: W });
      for (const p of [solved.placement, contiguousPlacement(W, real.layers, real.experts), loadGreedyPlacement(real, W)]) {
        const c = placementCost(real, p, { hidden: 128 });
        expect(lb.bytesPerImage).toBeLessThanOrEqual(c.bytesPerImage);
        expect(lb.rowsBackPerImage).toBeLessThanOrEqual(c.rowsBackPerImage);
      }
    }
  }, 60_000);
});

describe("redundant copies (EPLB-style)", () => {
  it("lower the peak load, respect per-worker room, never copy onto the owner, and round-trip through plan files", async () => {
    const real = readTrace(join(MODEL, "traces/solve.safetensors"));
    const W = 8;
    const base = (await solveHeuristic(real, { workers: W })).placement;
    const withCopies = addReplicas(real, base, W);
    const loads = expertLoad(real);
    const peak = (p: Placement, l: number) => {
      const wl = new Float64Array(W);
      for (let e = 0; e < p.experts; e++) {
        const c = copiesOf(p, l * p.experts + e);
        for (const w of c) wl[w]! += loads[l]![e]! / c.length;
      }
      return Math.max(...wl);
    };
    let copies = 0;
    for (let l = 0; l < real.layers; l++) {
      expect(peak(withCopies, l)).toBeLessThanOrEqual(peak(base, l) + 1e-9);
      const extra = new Int32Array(W);
      for (let e = 0; e < real.experts; e++) {
        const g = l * real.experts + e;
        const r = withCopies.replicas![g]!;
        expect(r).not.toContain(withCopies.owners[g]);
        expect(new Set(r).size).toBe(r.length);
        for (const w of r) extra[w]!++;
        copies += r.length;
      }
      expect(Math.max(...extra)).toBeLessThanOrEqual(1); // W copies over W workers: one each at most
    }
    expect(copies).toBeGreaterThan(0);
    expect(addReplicas(real, base, 0).replicas!.every((r) => r.length === 0)).toBe(true);
    const file = toPlanFile(withCopies, "m", Array.from({ length: W }, (_, i) => `w${i}`));
    expect(parsePlanFile(JSON.parse(JSON.stringify(file))).placement).toEqual(withCopies);
    const bad = JSON.parse(JSON.stringify(file));
    bad.replicas[0][0] = [bad.owners[0][0]];
    expect(() => parsePlanFile(bad)).toThrow("replicas[0][0] must list distinct workers other than the owner");
    const d = diffPlans(toPlanFile(base, "m", file.workers), file);
    expect(d.moved).toEqual([]);
    expect(d.copiesChanged.length).toBe(withCopies.replicas!.filter((r) => r.length > 0).length);
    const eplb = await solvePlacement("eplb", real, { workers: W });
    expect(eplb.placement.replicas!.some((r) => r.length > 0)).toBe(true);
  }, 60_000);
});

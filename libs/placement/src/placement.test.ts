import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { caught } from "@switchyard/errors/testing";
import { readTrace } from "@switchyard/trace";
import { chooseHomes, placementCost } from "./cost";
import { type Placement, contiguousPlacement, loadGreedyPlacement, roundRobinPlacement } from "./placement";
import { syntheticTrace as synthetic } from "@switchyard/trace/testing";

const MODEL = new URL("../../../models/dit-moe-fmnist", import.meta.url).pathname;

describe("baselines", () => {
  it("fill every worker with the same number of experts", () => {
    const t = readTrace(join(MODEL, "traces/solve.safetensors"));
    for (const p of [contiguousPlacement(4, 6, 32), roundRobinPlacement(4, 6, 32), loadGreedyPlacement(t, 4)]) {
      for (let l = 0; l < 6; l++) {
        const counts = [0, 0, 0, 0];
        for (let e = 0; e < 32; e++) counts[p.owners[l * 32 + e]!]!++;
        expect(counts).toEqual([8, 8, 8, 8]);
      }
    }
    expect(caught(() => contiguousPlacement(3, 6, 32)).field).toBe("workers");
  });

  it("load-only greedy balances load better than contiguous", () => {
    const t = readTrace(join(MODEL, "traces/solve.safetensors"));
    const c = placementCost(t, contiguousPlacement(4, 6, 32), { hidden: 128 });
    const g = placementCost(t, loadGreedyPlacement(t, 4), { hidden: 128 });
    expect(g.meanImbalance).toBeLessThan(c.meanImbalance);
    expect(g.imbalance).toBeLessThan(1.1);
  });
});

describe("cost model", () => {
  // 2 workers, 4 experts (w0: 0,1; w1: 2,3), 1 layer, 1 token, top-2.
  const p: Placement = contiguousPlacement(2, 1, 4);

  it("counts rows out per remote owner and rows back per remote assignment", () => {
    // request 0 uses experts 0 and 1 (both on w0); request 1 uses 2 and 3 (both on w1)
    const t = synthetic([[[[0, 1]]], [[[2, 3]]]], 4);
    const local = placementCost(t, p, { hidden: 8 });
    expect(Array.from(local.homes)).toEqual([0, 1]); // affinity homing puts each where its experts are
    expect(local.bytesPerImage).toBe(0);
    const rr = placementCost(t, p, { hidden: 8, homing: "round-robin" });
    expect(rr.bytesPerImage).toBe(0);
    // both on w1 under round-robin for a request that needs w1 only when it is request 0
    const t2 = synthetic([[[[2, 3]]], [[[0, 1]]]], 4);
    const rr2 = placementCost(t2, p, { hidden: 8, homing: "round-robin" });
    expect(rr2.rowsOutPerImage).toBe(1); // one row sent per image
    expect(rr2.rowsBackPerImage).toBe(2); // two expert outputs back
    expect(rr2.bytesPerImage).toBe((1 + 2) * 8 * 4);
    expect(rr2.remoteFraction).toBe(1);
  });

  it("charges the token-stays scheme its attention all-gather", () => {
    const t = synthetic([[[[0, 1]]]], 4);
    const c = placementCost(t, p, { hidden: 8 });
    expect(c.tokenStaysBytesPerImage).toBe(2 * 8 * (2 - 1) * 4); // K and V to the one other worker
  });

  it("keeps homes within the balance bound", () => {
    const t = synthetic(Array.from({ length: 10 }, () => [[[0, 1]]]), 4); // everyone prefers w0
    const homes = chooseHomes(t, p, "affinity", 0.1);
    expect(homes.filter((h) => h === 0).length).toBeLessThanOrEqual(Math.ceil(5 * 1.1));
  });

  it("measures the reference model's traces under the baselines", () => {
    const t = readTrace(join(MODEL, "traces/holdout.safetensors"));
    const c = placementCost(t, contiguousPlacement(4, 6, 32), { hidden: 128 });
    expect(c.images).toBe(80);
    expect(c.bytesPerImage).toBeGreaterThan(0);
    expect(c.tokenStaysBytesPerImage).toBeGreaterThan(c.bytesPerImage); // the all-gather dominates for a DiT
    expect(() => placementCost(t, contiguousPlacement(4, 6, 64), { hidden: 128 })).toThrow(/placement is for/);
  });
});


import { describe, expect, it } from "vitest";
import { createClassPriors, tickPrediction, unpackExperts } from "./prediction";

describe("tick prediction", () => {
  it("unpacks expert bitmasks", () => {
    expect([...unpackExperts(Uint8Array.from([0b101, 0b10000000]), 16)]).toEqual([0, 2, 15]);
  });

  it("class priors keep the experts at least a quarter of a class's first evals used", () => {
    const p = createClassPriors(8);
    expect(p.prior(3)).toBeUndefined();
    p.observe(3, new Set([1, 2]));
    p.observe(3, new Set([1, 5]));
    p.observe(3, new Set([1]));
    p.observe(3, new Set([1]));
    p.observe(3, new Set([1]));
    expect([...p.prior(3)!].sort()).toEqual([1]); // 2 and 5: 1 of 5 each, below a quarter
    p.observe(3, new Set([2]));
    expect([...p.prior(3)!].sort()).toEqual([1, 2]); // 2 of 6
  });

  it("counts, per expert, the items predicted to use it", () => {
    expect(tickPrediction([undefined, undefined], 4)).toBeUndefined();
    expect([...tickPrediction([new Set([0, 3]), undefined, new Set([3])], 4)!]).toEqual([1, 0, 0, 2]);
  });
});

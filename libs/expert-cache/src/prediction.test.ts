import { describe, expect, it } from "vitest";
import { createClassPriors } from "./prediction";

describe("class priors", () => {
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
});

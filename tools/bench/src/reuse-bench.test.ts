import { describe, expect, it } from "vitest";
import { modelRows } from "./reuse-bench";

describe("bench:reuse's model calls", () => {
  it("count two rows per guided evaluation and one elsewhere", () => {
    expect(modelRows("euler", 10, 2)).toBe(20);
    expect(modelRows("euler", 10, 1)).toBe(10);
    // evaluations at t = 1, 0.9, …, 0.1: five of them in [0.25, 0.75]
    expect(modelRows("euler", 10, 2, { tMin: 0.25, tMax: 0.75 })).toBe(15);
    expect(modelRows("heun", 4, 2)).toBe(16);
    expect(modelRows("pc", 4, 2)).toBe(10);
  });
});

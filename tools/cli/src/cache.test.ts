import { describe, expect, it } from "vitest";
import { formatCacheStats } from "./commands/cache";

describe("switchyard cache stats", () => {
  it("prints each worker's cache figures, derived rates included", () => {
    const text = formatCacheStats(
      new Map([
        ["w1", {
          policy: "predictive", budgetBytes: 2 * 1048576, residentBytes: 1048576, residentExperts: 16, ticks: 10, layerRuns: 60, needed: 600, hits: 540, misses: 60,
          loads: 100, bytesLoaded: 100 * 65536, prefetchLoads: 40, wastedBytes: 65536, stallMs: 1234, demandLoadMs: 600, predicted: 500, predictedHits: 450,
        }],
      ]),
    );
    expect(text).toContain("w1: predictive, budget 2.00 MiB, resident 1.00 MiB (16 experts)");
    expect(text).toContain("distinct experts per layer 10.0, hit rate 90.0% (60 misses)");
    expect(text).toContain("loaded 6.25 MiB (100 experts, 40 by prefetch; 0.63 MiB/tick), wasted 0.06 MiB");
    expect(text).toContain("stall 1.23 s (123.4 ms/tick; on-demand loads 0.60 s), prediction precision 90.0%, recall 75.0%");
    expect(formatCacheStats(new Map())).toContain("SWITCHYARD_EXPERT_BUDGET");
  });
});

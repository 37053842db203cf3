import { describe, expect, it } from "vitest";
import { createRng } from "./arrivals";
import { cdf, createHistogram, decode, encode, merge, percentiles, recordMs } from "./histogram";

describe("latency histograms", () => {
  it("report percentiles within HdrHistogram's 3 significant digits", () => {
    const h = createHistogram();
    for (let i = 1; i <= 10_000; i++) recordMs(h, i / 10); // 0.1 … 1000 ms
    const p = percentiles(h);
    expect(p.count).toBe(10_000);
    for (const [got, want] of [[p.p50, 500], [p.p90, 900], [p.p99, 990], [p["p99.9"], 999]] as const) expect(Math.abs(got - want) / want).toBeLessThan(0.002);
    expect(p.min).toBeCloseTo(0.1, 3);
    expect(p.max).toBeGreaterThanOrEqual(999.5);
  });

  it("merge exactly: two processes' histograms equal one that saw everything, also through encode/decode", () => {
    const rng = createRng(4);
    const a = createHistogram();
    const b = createHistogram();
    const all = createHistogram();
    for (let i = 0; i < 5000; i++) {
      const ms = 10 + rng() * 3000;
      recordMs(i % 3 === 0 ? a : b, ms);
      recordMs(all, ms);
    }
    expect(percentiles(merge([a, b]))).toEqual(percentiles(all));
    // Through the wire format every value stays within its bucket (3 significant digits); only max is rounded up to its bucket's top.
    const { max, ...rest } = percentiles(merge([decode(encode(a)), decode(encode(b))]));
    const { max: wantMax, ...wantRest } = percentiles(all);
    expect(rest).toEqual(wantRest);
    expect(Math.abs(max - wantMax) / wantMax).toBeLessThan(0.001);
  });

  it("give a monotone CDF reaching the tail", () => {
    const h = createHistogram();
    for (let i = 1; i <= 1000; i++) recordMs(h, i);
    const pts = cdf(h, 50);
    for (let i = 1; i < pts.length; i++) {
      expect(pts[i]!.ms).toBeGreaterThanOrEqual(pts[i - 1]!.ms);
      expect(pts[i]!.fraction).toBeGreaterThan(pts[i - 1]!.fraction);
    }
    expect(pts.at(-1)!.fraction).toBeGreaterThan(0.9998);
  });
});

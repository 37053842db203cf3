import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Code } from "@switchyard/errors";
import { readTrace } from "@switchyard/trace";
import { createExpertCache, createPolicy, lfuPolicy, lruPolicy, predictivePolicy } from "./cache";
import { replayTrace } from "./replay";
import { caught } from "@switchyard/errors/testing";

const TRACES = new URL("../../../models/dit-moe-fmnist/traces", import.meta.url).pathname;


describe("expert cache", () => {
  it("loads what is needed, evicts by policy, never exceeds the budget or evicts a pinned expert", () => {
    const cache = createExpertCache({ budgetBytes: 30, policy: lruPolicy(), sizeOf: () => 10 });
    let p = cache.plan([1, 2, 3]);
    expect(p).toEqual({ load: [1, 2, 3], evict: [], skipped: [] });
    cache.apply(p);
    cache.access([1, 2, 3], 1);
    cache.access([1], 2); // 2 is now least recently used
    p = cache.plan([4], [], new Set([2]));
    expect(p.evict).toEqual([3]); // 2 is pinned (in use), so 3 goes
    cache.apply(p);
    expect(cache.usedBytes()).toBeLessThanOrEqual(30);
    expect(cache.residentIds().sort()).toEqual([1, 2, 4]);
    expect(caught(() => cache.plan([5, 6, 7, 8])).code).toBe(Code.ResourceExhausted);
  });

  it("shrinks to a smaller budget by evicting the lowest-valued experts, however many must go", () => {
    const cache = createExpertCache({ budgetBytes: 40, policy: lruPolicy(), sizeOf: () => 10 });
    cache.apply(cache.plan([1, 2, 3, 4]));
    cache.access([3, 1, 4, 2], 1);
    cache.access([2, 4], 2);
    // 1 and 3 were used longest ago; two must go at once (it used to throw after the first)
    expect(cache.resize(20).sort()).toEqual([1, 3]);
    expect(cache.residentIds().sort()).toEqual([2, 4]);
    expect(cache.usedBytes()).toBe(20);
    expect(cache.resize(40)).toEqual([]);
  });

  it("prefetches into free space, and replaces only what the policy values less", () => {
    const pol = predictivePolicy();
    const cache = createExpertCache({ budgetBytes: 20, policy: pol, sizeOf: () => 10 });
    cache.apply(cache.plan([1]));
    pol.setPrediction(new Map([[2, 5], [3, 1]]));
    const p = cache.plan([], [2, 3]);
    expect(p.load).toEqual([2, 3]); // 2 fits in the free slot; 3 replaces 1, which is not predicted
    expect(p.evict).toEqual([1]);
    cache.apply(p);
    pol.setPrediction(new Map([[2, 5], [3, 9], [4, 1]]));
    const q = cache.plan([], [4]);
    expect(q.load).toEqual([]); // 4 is valued below both residents
    expect(q.skipped).toEqual([4]);
  });

  it("keeps frequency counts for LFU and has a registry", () => {
    const lfu = lfuPolicy();
    lfu.onAccess(1, 0);
    lfu.onAccess(1, 1);
    lfu.onAccess(2, 2);
    expect(lfu.priority(1, 3)).toBeGreaterThan(lfu.priority(2, 3));
    expect(createPolicy("lru").name).toBe("lru");
    expect(caught(() => createPolicy("fifo")).message).toContain('cache policy "fifo" must be one of lru, lfu, predictive');
  });
});

describe("trace replay", () => {
  const hold = readTrace(join(TRACES, "holdout.safetensors"));
  const solve = readTrace(join(TRACES, "solve.safetensors"));
  it.each([0.25, 0.5, 0.75])("respects a %s budget and the predictor beats LRU on hits", async (f) => {
    const run = (policy: string) => replayTrace(hold, { policy, budgetFraction: f, batch: 4, expertBytes: 1000, priorTrace: solve });
    const [lru, pred] = [await run("lru"), await run("predictive")];
    for (const r of [lru, pred]) expect(r.maxUsedBytes).toBeLessThanOrEqual(r.budgetBytes);
    expect(pred.hitRate).toBeGreaterThan(lru.hitRate);
    expect(pred.precision!).toBeGreaterThan(0.9); // routing is stable step to step
    expect(pred.recall!).toBeGreaterThan(0.9);
  });
});

import { describe, expect, it } from "vitest";
import { Code } from "@switchyard/errors";
import { caught } from "@switchyard/errors/testing";
import { type DeviceRun, type ExpertDevice, MIN_PREFETCH_ROWS, type TickPrediction, createResidency, successorsFrom } from "./residency";

const L = 4;
const E = 8;
const D = 2;
const SIZE = 100;
/** Rows per expert per layer run (above MIN_PREFETCH_ROWS, so predictions are prefetched). */
const ROWS = MIN_PREFETCH_ROWS + 2;

/**
 * An in-memory expert device with a stream's semantics (commands in issue order). It
 * checks the invariants a real device relies on: resident bytes never exceed the
 * budget, and a run never finds one of its experts evicted mid-run.
 */
function fakeDevice(budget: () => number) {
  const resident = new Set<number>();
  const inUse = new Set<number>();
  let queue: Promise<unknown> = Promise.resolve();
  let maxBytes = 0;
  const violations: string[] = [];
  let loads = 0;
  const enqueue = <T>(f: () => Promise<T> | T): Promise<T> => {
    const p = queue.then(f);
    queue = p.catch(() => undefined);
    return p;
  };
  const load = (id: number) => {
    if (resident.has(id)) return;
    resident.add(id);
    loads++;
    maxBytes = Math.max(maxBytes, resident.size * SIZE);
    if (resident.size * SIZE > budget()) violations.push(`over budget loading ${id}: ${resident.size * SIZE} > ${budget()}`);
  };
  const device: ExpertDevice = {
    stage: async () => ({ ms: 0, bytes: 0 }),
    load: (ids) => enqueue(() => (ids.forEach(load), { ms: 0 })),
    evict: (ids) =>
      enqueue(() => {
        for (const id of ids) {
          if (inUse.has(id)) violations.push(`evicted ${id} while in use`);
          resident.delete(id);
        }
      }),
    run: (experts, offsets, x) =>
      enqueue(async (): Promise<DeviceRun> => {
        const loaded: number[] = [];
        experts.forEach((id) => inUse.add(id));
        const y = new Float32Array(x.length);
        for (let i = 0; i < experts.length; i++) {
          const id = experts[i]!;
          if (!resident.has(id)) {
            load(id);
            loaded.push(id);
          }
          await Promise.resolve(); // let other commands try to interleave
          for (let j = offsets[i]! * D; j < offsets[i + 1]! * D; j++) y[j] = x[j]! * (id + 1);
        }
        experts.forEach((id) => inUse.delete(id));
        return { y, loadMs: 0, computeMs: 0, loaded };
      }),
    residentIds: async () => [...resident],
    close: async () => undefined,
  };
  return { device, violations, maxBytes: () => maxBytes, loads: () => loads };
}

/** A deterministic workload: per tick and layer, which experts get rows. */
function workload(ticks: number, seed: number): number[][][] {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31), s / 2 ** 31);
  return Array.from({ length: ticks }, (_, t) => Array.from({ length: L }, (_, l) => Array.from({ length: E }, (_, e) => e).filter((e) => (e + l + (t % 3 === 0 ? 1 : 0)) % 3 !== 0 || rnd() < 0.2)));
}

/** `micros`: each layer runs that many times a tick (micro-batches in lockstep); `declared`: what beginTick is told. */
async function serve(budgetExperts: number | undefined, policy: string, ticks: number[][][], rows = ROWS, micros = 1, declared = micros) {
  const budget = budgetExperts === undefined ? Infinity : budgetExperts * SIZE;
  const f = fakeDevice(() => budget);
  const r = createResidency({ device: f.device, layers: L, experts: E, sizeOf: () => SIZE, ...(budgetExperts !== undefined ? { budgetBytes: budget } : {}), policy });
  await r.setHeld(Array.from({ length: L * E }, (_, i) => i));
  const outputs: number[] = [];
  for (const [t, tick] of ticks.entries()) {
    // the prediction: the previous tick's experts (what the scheduler sends)
    const prev = ticks[t - 1];
    const prediction: TickPrediction | undefined = prev?.map((es, l) => new Map(es.map((e) => [l * E + e, 1])));
    r.beginTick(prediction, declared);
    for (const [l, es] of tick.entries())
      for (let m = 0; m < micros; m++) {
        const offsets = Int32Array.from({ length: es.length + 1 }, (_, i) => i * rows);
        const x = Float32Array.from({ length: es.length * rows * D }, (_, i) => i + 1 + m);
        const y = await r.runLayer(l, Int32Array.from(es), offsets, x);
        outputs.push(...y);
      }
    r.endTick();
  }
  return { outputs, stats: r.stats(), violations: f.violations, maxBytes: f.maxBytes() };
}

describe("residency (expert device under a budget)", () => {
  const ticks = workload(12, 7);
  it("never changes results, never exceeds the budget, never evicts an expert in use", async () => {
    const all = await serve(undefined, "lru", ticks);
    expect(all.stats.policy).toBe("all-resident");
    for (const policy of ["lru", "lfu", "predictive"])
      for (const budget of [3, 8, 16, 24]) {
        const r = await serve(budget, policy, ticks);
        expect(r.outputs, `${policy} @ ${budget}`).toEqual(all.outputs);
        expect(r.violations, `${policy} @ ${budget}`).toEqual([]);
        expect(r.maxBytes).toBeLessThanOrEqual(budget * SIZE);
        expect(r.stats.residentBytes).toBeLessThanOrEqual(budget * SIZE);
        expect(r.stats.hits + r.stats.misses).toBe(r.stats.needed);
      }
  });

  it("with a good prediction, predictive loads ahead (few misses) and no more bytes than LRU or LFU", async () => {
    const stable = Array.from({ length: 12 }, () => workload(1, 3)[0]!); // the same routing every tick
    const budget = 16; // of 32 experts; each tick needs ~22
    const lru = await serve(budget, "lru", stable);
    const lfu = await serve(budget, "lfu", stable);
    const pred = await serve(budget, "predictive", stable);
    expect(pred.stats.misses).toBeLessThan(lru.stats.misses);
    expect(pred.stats.misses).toBeLessThan(lfu.stats.misses);
    expect(pred.stats.prefetchLoads).toBeGreaterThan(0);
    expect(pred.stats.bytesLoaded).toBeLessThanOrEqual(lru.stats.bytesLoaded);
    expect(pred.stats.bytesLoaded).toBeLessThanOrEqual(lfu.stats.bytesLoaded);
    expect(pred.stats.predictedHits / pred.stats.predicted).toBe(1); // precision
    expect(pred.stats.wastedBytes).toBe(0);
  });

  it("keeps a layer's experts until its last micro-batch ran it", async () => {
    const stable = Array.from({ length: 12 }, () => workload(1, 3)[0]!);
    const all = await serve(undefined, "lru", stable, ROWS, 2);
    const told = await serve(16, "predictive", stable, ROWS, 2, 2);
    const untold = await serve(16, "predictive", stable, ROWS, 2, 1);
    expect(told.outputs).toEqual(all.outputs);
    expect(untold.outputs).toEqual(all.outputs);
    expect(told.violations).toEqual([]);
    // Told, the second run of each layer finds its experts; untold, prefetching the next
    // layer evicts them after the first run.
    expect(told.stats.misses).toBeLessThan(untold.stats.misses);
    expect(told.stats.bytesLoaded).toBeLessThan(untold.stats.bytesLoaded);
  });

  it("leaves experts that served only a few rows to load on demand (their predictions often fail)", async () => {
    const stable = Array.from({ length: 6 }, () => workload(1, 3)[0]!);
    const few = await serve(16, "predictive", stable, 1);
    expect(few.stats.prefetchLoads).toBe(0);
    expect(few.violations).toEqual([]);
  });

  it("validates its options, naming the field", () => {
    const { device } = fakeDevice(() => Infinity);
    const base = { device, layers: L, experts: E, sizeOf: () => SIZE };
    expect(caught(() => createResidency({ ...base, budgetBytes: 50 })).message).toContain("expert budget 50 bytes must hold at least the largest expert (100 bytes)");
    expect(caught(() => createResidency({ ...base, budgetFraction: 1.5 })).message).toContain("budgetFraction 1.5 must be > 0 and <= 1");
    expect(caught(() => createResidency({ ...base, policy: "mru" })).code).toBe(Code.InvalidArgument);
    expect(caught(() => createResidency({ ...base, lookahead: L })).message).toContain(`lookahead ${L} must be an integer >= 0 and < ${L}`);
  });

  it("a fractional budget follows the experts the worker holds", async () => {
    const f = fakeDevice(() => Infinity);
    const r = createResidency({ device: f.device, layers: L, experts: E, sizeOf: () => SIZE, budgetFraction: 0.5, policy: "lru" });
    await r.setHeld(Array.from({ length: 16 }, (_, i) => i));
    expect(r.stats().budgetBytes).toBe(800);
    await r.setHeld(Array.from({ length: 32 }, (_, i) => i)); // took over a peer's experts
    expect(r.stats().budgetBytes).toBe(1600);
  });

  it("successors come from transition counts", () => {
    const counts = [new Float64Array(E * E)];
    counts[0]![1 * E + 2] = 8;
    counts[0]![1 * E + 3] = 1;
    const s = successorsFrom(counts, E, 0.2);
    expect(s(0, 1)).toEqual([2]);
    expect(s(0, 5)).toEqual([]);
  });
});

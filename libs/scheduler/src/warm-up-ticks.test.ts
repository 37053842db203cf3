import { describe, expect, it } from "vitest";
import { createMemoryBus } from "@switchyard/bus";
import { type Json, type SubmitMessage, type WorkerPool, contiguousPlan, subjects as makeSubjects } from "@switchyard/contract";
import { BUNDLED_MODEL_DIR, loadManifest } from "@switchyard/manifest";
import type { TickRequestMsg, TickResponseMsg } from "@switchyard/proto";
import { MICRO_BATCH_MIN_IMAGES, createSchedulerService } from "./service";
import { warmUpItems } from "./warm-up-ticks";

const manifest = loadManifest(BUNDLED_MODEL_DIR);
const P = 784;
const L = manifest.architecture.numLayers;
const TK = manifest.architecture.tokens * manifest.moe.topK;

/** Workers that answer every tick with zero velocities after `ms`, recording the calls. */
function fakePool(members: string[], ms = 5): WorkerPool & { calls: { worker: string; req: TickRequestMsg }[] } {
  const plan = contiguousPlan(members, L, manifest.moe.numExperts, 7);
  const calls: { worker: string; req: TickRequestMsg }[] = [];
  return {
    calls,
    members: () => members,
    owners: () => plan.owners,
    planVersion: () => plan.version,
    async runTick(worker, req): Promise<TickResponseMsg> {
      calls.push({ worker, req });
      await new Promise((r) => setTimeout(r, ms));
      const n = req.items.length;
      return { velocities: new Float32Array(n * P), routing: new Int16Array(n * L * TK), routingWeights: new Float32Array(n * L * TK), expertsUsed: new Uint8Array(0), denseMs: 0, expertMs: 0 };
    },
    markFailed: async () => undefined,
    changed: (wait) => new Promise((r) => setTimeout(r, Math.min(wait, 20))),
  };
}

const submit = (id: string): SubmitMessage => ({
  requestId: id, model: manifest.name, params: { label: 3, conditional: true, count: 1, steps: 2, sampler: "euler", guidance: 2, shift: 1, seed: 1 }, priority: 0, deadlineMs: null, previewInterval: 0,
});

describe("warm-up ticks", () => {
  it("fill the row budget with guided images, spread round-robin over the workers", () => {
    const byHome = warmUpItems(manifest, 20, ["a", "b", "c"]);
    expect([...byHome.values()].map((items) => items.length)).toEqual([4, 3, 3]); // 10 images × 2 rows
    const all = [...byHome.values()].flat();
    expect(new Set(all.map((it) => it.requestId)).size).toBe(10);
    for (const it of all) {
      expect(it.x.length).toBe(P);
      expect(it.guidance).toBe(2);
      expect(it.label).toBeGreaterThanOrEqual(0);
      expect(it.label).toBeLessThan(manifest.conditioning.numClasses);
    }
    expect(warmUpItems(manifest, 20, []).size).toBe(0);
    expect([...warmUpItems(manifest, 3, ["a"]).values()][0]!.length).toBe(1);
  });

  it("run when a plan comes into force with nothing queued, then say the plan is ready", async () => {
    const pool = fakePool(["w0", "w1"]);
    const logs: string[] = [];
    const bus = createMemoryBus();
    // a budget whose warm-up ticks give each home enough images for two micro-batches
    const perHome = MICRO_BATCH_MIN_IMAGES;
    const s = createSchedulerService({ bus, subjects: makeSubjects("t"), manifest, pool, limits: { maxTickRows: 4 * perHome }, warmUpTicks: 2, log: (m) => logs.push(m) });
    s.start();
    try {
      const ready = await s.whenReady(2);
      expect(logs.find((l) => l.startsWith("ready"))).toBe(ready);
      expect(await s.whenReady()).toBe(ready);
      expect(ready).toMatch(new RegExp(`^ready: plan v7 over 2 workers, warmed up: 2 ticks of ${2 * perHome} images in \\d+ ms$`));
      expect(pool.calls.map((c) => [c.worker, c.req.tick, c.req.items.length])).toEqual([["w0", 1, perHome], ["w1", 1, perHome], ["w0", 2, perHome], ["w1", 2, perHome]]);
      expect(pool.calls.every((c) => c.req.homes.join() === "w0,w1" && c.req.microBatches === 2 && c.req.planVersion === 7)).toBe(true);
      expect(s.stats()).toMatchObject({ warmUpTicks: 2, ticks: 2, completed: 0, queued: 0 });
      // a real request after it runs on later ticks
      await bus.request(makeSubjects("t").intake(manifest.name), submit("r1") as unknown as Json);
      for (let i = 0; i < 100 && s.stats().completed === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(s.stats()).toMatchObject({ completed: 1, warmUpTicks: 2 });
      expect(pool.calls.slice(4).every((c) => c.req.tick > 2 && c.req.items.every((it) => it.requestId === "r1"))).toBe(true);
    } finally {
      await s.stop();
    }
  });

  it("give way to a request that arrives meanwhile, and are skipped when requests wait", async () => {
    const pool = fakePool(["w0"], 40);
    const logs: string[] = [];
    const bus = createMemoryBus();
    const subjects = makeSubjects("u");
    const s = createSchedulerService({ bus, subjects, manifest, pool, limits: { maxTickRows: 8 }, warmUpTicks: 50, log: (m) => logs.push(m) });
    s.start();
    try {
      while (pool.calls.length === 0) await new Promise((r) => setTimeout(r, 5));
      await bus.request(subjects.intake(manifest.name), submit("r1") as unknown as Json);
      for (let i = 0; i < 200 && s.stats().completed === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(s.stats().completed).toBe(1);
      expect(s.stats().warmUpTicks).toBeLessThanOrEqual(2); // the tick in flight finishes, no more start
      expect(logs.find((l) => l.startsWith("ready"))).toMatch(/^ready: plan v7 over 1 workers, warmed up: [12] ticks of 4 images/);
    } finally {
      await s.stop();
    }
  });
});

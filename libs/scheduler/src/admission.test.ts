import { describe, expect, it } from "vitest";
import { createMemoryBus } from "@switchyard/bus";
import { type SubmitMessage, type WorkerPool, channels, request, subjects as makeSubjects } from "@switchyard/contract";
import { Code } from "@switchyard/errors";
import { rejection } from "@switchyard/errors/testing";
import { BUNDLED_MODEL_DIR, loadManifest } from "@switchyard/manifest";
import { createSchedulerService } from "./service";

const manifest = loadManifest(BUNDLED_MODEL_DIR);

/** No workers: whatever is admitted stays held. */
const idlePool: WorkerPool = {
  members: () => [], owners: () => [], planVersion: () => 0,
  runTick: () => Promise.reject(new Error("no workers")), markFailed: async () => undefined, changed: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 20))),
};

const submit = (id: string, count: number, steps: number): SubmitMessage => ({
  requestId: id, model: manifest.name, params: { label: 3, conditional: true, count, steps, sampler: "euler", guidance: 2, shift: 1, seed: 1 }, priority: 0, deadlineMs: null, previewInterval: 0,
});

/** A scheduler holding at most `maxQueuedWork` image-steps, and its intake. */
async function withScheduler(maxQueuedWork: number, f: (submitOne: (m: SubmitMessage) => Promise<unknown>) => Promise<void>): Promise<void> {
  const bus = createMemoryBus();
  const subjects = makeSubjects(`adm${maxQueuedWork}${Math.random().toString(36).slice(2, 6)}`);
  const s = createSchedulerService({ bus, subjects, manifest, pool: idlePool, limits: { maxQueuedWork } });
  s.start();
  const intake = channels(subjects).intake(manifest.name);
  try {
    await f((m) => request(bus, intake, m));
  } finally {
    await s.stop();
    await bus.close();
  }
}

describe("admission counts work, not only requests (#12 defect 6)", () => {
  it("refuses a request that would take the held image-steps past the limit, and admits anything into an empty queue", () =>
    withScheduler(100, async (submitOne) => {
      // empty queue: even a request over the limit is admitted (nothing else waits behind the limit)
      expect(await submitOne(submit("big", 10, 12))).toEqual({ accepted: true, queuePosition: 0 });
      const e = await rejection(submitOne(submit("small", 1, 5)));
      expect(e.code).toBe(Code.ResourceExhausted);
      expect(e.message).toMatch(/queue holds 120 of 100 image-steps of work; this request adds 5/);
      // before: only the number of requests counted, and both were taken
    }));

  it("admits requests while the work held stays within the limit", () =>
    withScheduler(100, async (submitOne) => {
      await submitOne(submit("a", 8, 10));
      expect(await submitOne(submit("b", 1, 20))).toEqual({ accepted: true, queuePosition: 1 });
      expect((await rejection(submitOne(submit("c", 1, 1)))).code).toBe(Code.ResourceExhausted);
    }));
});

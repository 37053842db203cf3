import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GenerateEvent, type GenerateParams, createClient } from "@switchyard/client";
import { natsServerAvailable } from "@switchyard/bus/testing";
import { createEngine, generate } from "@switchyard/engine";
import { resolveGenerateParams } from "@switchyard/manifest";
import { BUNDLED_MODEL_DIR, type ModelParts, createOnnxModel } from "@switchyard/model";
import { startEmbeddedCluster } from "./embedded";
import { type ProcessCluster, startProcessCluster } from "./processes";

const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** A mixed load: reuse at different thresholds beside plain requests, with guidance intervals, heun and pc, and an unconditional one. */
const LOAD: GenerateParams[] = [
  { label: 2, count: 2, steps: 10, sampler: "euler", guidance: 2, seed: 1, reuseThreshold: 0.2 },
  { label: 2, count: 2, steps: 10, sampler: "euler", guidance: 2, seed: 1 },
  { label: 5, count: 1, steps: 6, sampler: "heun", guidance: 3, seed: 5, reuseThreshold: 0.1, guidanceTMin: 0.3 },
  { label: 8, count: 1, steps: 8, sampler: "pc", guidance: 2, seed: 9, reuseThreshold: 0.3 },
  { count: 2, steps: 10, sampler: "euler", seed: 13, reuseThreshold: 0.25 },
];

let reference: ModelParts;
beforeAll(async () => {
  reference = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
});
afterAll(async () => reference?.close());

/** A counter of the scheduler's own /metrics (summed over its series), once its reused evaluations show. */
async function schedulerCounter(c: ProcessCluster, name: string, label = ""): Promise<number> {
  const at = (await c.scheduler.waitFor(/metrics on (\S+)\/metrics/))[1];
  const sum = (text: string, n: string, l: string) =>
    text.split("\n").filter((line) => (line.startsWith(`${n}{`) || line.startsWith(`${n} `)) && line.includes(l)).reduce((s, line) => s + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
  let text = "";
  for (let i = 0; i < 50 && !(sum(text, "switchyard_scheduler_reuse_evaluations_total", 'outcome="reused"') > 0); i++) {
    await new Promise((r) => setTimeout(r, 100));
    text = await (await fetch(`http://${at}/metrics`)).text();
  }
  return sum(text, name, label);
}

/** The in-process engine's images and reuse count for the same parameters (the oracle). */
async function oracle(p: GenerateParams) {
  const params = resolveGenerateParams(
    { label: p.label, count: p.count, steps: p.steps, sampler: p.sampler, guidance: p.guidance, seed: p.seed, guidance_t_min: p.guidanceTMin, reuse_threshold: p.reuseThreshold },
    reference.manifest,
  );
  return generate(createEngine({ parts: reference }), params);
}

async function expectOracle(load: readonly GenerateParams[], results: readonly Extract<GenerateEvent, { type: "result" }>[]) {
  let reused = 0;
  for (const [i, p] of load.entries()) {
    const want = await oracle(p);
    results[i]!.images.forEach((img, k) => expect(same(img.data, want.images[k]!), `request ${i} image ${k}`).toBe(true));
    const t = results[i]!.timings;
    const all = t.modelEvals * (p.count ?? 1);
    expect([t.reusedEvals, t.fullEvals], `request ${i}`).toEqual(p.reuseThreshold ? [want.reusedEvals, all - want.reusedEvals] : [0, 0]);
    reused += t.reusedEvals;
  }
  expect(reused).toBeGreaterThan(0);
}

/** #18: residual reuse per request inside step batching, across workers. */
describe("residual reuse on a cluster", () => {
  it("gives every request of a mixed load (2 embedded workers) bitwise the in-process engine's images and reuse counts", async () => {
    const cluster = await startEmbeddedCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, port: 0 });
    const client = createClient({ address: cluster.address });
    try {
      const results = await Promise.all(LOAD.map((p) => client.generateImages(p)));
      await expectOracle(LOAD, results);
      // the same request without reuse gives other images: the parameter is not dropped on the way
      expect(same(results[0]!.images[0]!.data, results[1]!.images[0]!.data)).toBe(false);
      await expect(client.generateImages({ label: 1, steps: 2, reuseThreshold: 1.5 })).rejects.toThrow(/reuse_threshold.*1\.5.*<= 1/);
    } finally {
      client.close();
      await cluster.stop();
    }
  }, 120_000);

  it("keeps every image's state with the request: a worker lost mid-run, its images re-homed, the results are unchanged", async () => {
    const cluster = await startEmbeddedCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, port: 0 });
    const client = createClient({ address: cluster.address });
    try {
      const load = LOAD.map((p) => ({ ...p, steps: (p.steps ?? 10) + 6 }));
      let killedAt = -1;
      const runs = load.map(async (p, i) => {
        let result: Extract<GenerateEvent, { type: "result" }> | undefined;
        for await (const e of client.generate(p)) {
          if (e.type === "progress" && i === 0 && e.step === 5 && killedAt < 0) {
            killedAt = e.step;
            cluster.pool.kill("worker-1");
          }
          if (e.type === "result") result = e;
        }
        return result!;
      });
      const results = await Promise.all(runs);
      expect(killedAt).toBe(5);
      expect(cluster.pool.members()).toEqual(["worker-0"]);
      await expectOracle(load, results);
    } finally {
      client.close();
      await cluster.stop();
    }
  }, 120_000);

  // A worker that keeps no states (SWITCHYARD_REUSE_KEEP_BYTES=0) defers every item the
  // scheduler names by tick, and the scheduler sends it again with the state: results
  // must not depend on what workers keep.
  it.skipIf(!natsServerAvailable())("gives bitwise the engine's images when workers keep no states (every named state deferred, then sent)", async () => {
    const logs: string[] = [];
    const c = await startProcessCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, subjectPrefix: `k${Math.random().toString(36).slice(2, 7)}`, env: { SWITCHYARD_DENSE_THREADS: "1", SWITCHYARD_REUSE_KEEP_BYTES: "0" }, log: (l) => logs.push(l) });
    const client = createClient({ address: c.address });
    try {
      const results = await Promise.all(LOAD.map((p) => client.generateImages(p)));
      await expectOracle(LOAD, results);
      expect(await schedulerCounter(c, "switchyard_scheduler_reuse_deferred_total")).toBeGreaterThan(0); // the path was taken
    } finally {
      client.close();
      await c.stop();
    }
  }, 180_000);

  // Both row transports between workers: the TCP exchange (the default) and gRPC's Exchange.
  it.skipIf(!natsServerAvailable()).each(["tcp", "grpc"])("carries the state over gRPC and NATS (2 worker processes, rows over %s): bitwise the engine's images", async (transport) => {
    const logs: string[] = [];
    const c = await startProcessCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, subjectPrefix: `r${Math.random().toString(36).slice(2, 7)}`, env: { SWITCHYARD_DENSE_THREADS: "1", SWITCHYARD_EXCHANGE_TRANSPORT: transport }, log: (l) => logs.push(l) });
    const client = createClient({ address: c.address });
    try {
      const results = await Promise.all(LOAD.map((p) => client.generateImages(p)));
      await expectOracle(LOAD, results);
      // the workers kept what they made: states named by tick were all there
      expect(await schedulerCounter(c, "switchyard_scheduler_reuse_evaluations_total", 'outcome="reused"')).toBeGreaterThan(0);
      expect(await schedulerCounter(c, "switchyard_scheduler_reuse_deferred_total")).toBe(0);
      expect(logs.filter((l) => l.includes("serving data plane on") && l.includes(", row exchange on 127.0.0.1:")).length).toBe(transport === "tcp" ? 2 : 0);
    } finally {
      client.close();
      await c.stop();
    }
  }, 180_000);
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GenerateParams, createClient } from "@switchyard/client";
import { createBatchedExecutor, createEngine, expertChunks, generate } from "@switchyard/engine";
import { createResidency } from "@switchyard/expert-cache";
import { resolveGenerateParams } from "@switchyard/manifest";
import { BUNDLED_MODEL_DIR, type ModelParts, createOnnxModel, createThreadExpertDevice } from "@switchyard/model";
import { natsServerAvailable } from "@switchyard/bus/testing";
import { maxAbsDiff } from "@switchyard/tensor";
import { startEmbeddedCluster } from "./embedded";
import { startProcessCluster } from "./processes";

/**
 * The expert cache on the real model: experts on an expert device (a thread holding
 * ONNX Runtime sessions) under budgets and policies. A cache never changes results.
 */
let reference: ModelParts;
let denseOnly: ModelParts;
beforeAll(async () => {
  reference = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
  denseOnly = await createOnnxModel({ dir: BUNDLED_MODEL_DIR, experts: () => false });
});
afterAll(async () => {
  await reference?.close();
  await denseOnly?.close();
});

async function oracle(p: GenerateParams): Promise<Float32Array[]> {
  const params = resolveGenerateParams({ label: p.label, count: p.count, steps: p.steps, sampler: p.sampler, guidance: p.guidance, seed: p.seed }, reference.manifest);
  return (await generate(createEngine({ parts: reference }), params)).images;
}

describe("expert cache on the real model", () => {
  it("gives bitwise the engine's images under every policy and budget, within the budget", async () => {
    const m = reference.manifest;
    const L = m.architecture.numLayers;
    const E = m.moe.numExperts;
    const size = m.parts.find((p) => p.kind === "expert")!.bytes;
    const p: GenerateParams = { label: 7, count: 3, steps: 3, sampler: "euler", guidance: 2, seed: 5 };
    const params = resolveGenerateParams({ ...p }, m);
    const want = (await generate(createEngine({ parts: reference }), params)).images;
    for (const [policy, streams] of [["lru", 1], ["lfu", 1], ["predictive", 1], ["predictive", 2]] as const)
      for (const fraction of [0.1, 0.5]) {
        const device = createThreadExpertDevice({ dir: BUNDLED_MODEL_DIR, manifest: m, streams });
        const budgetBytes = Math.floor(fraction * L * E) * size;
        let maxResident = 0;
        const watched = { ...device, run: async (...a: Parameters<typeof device.run>) => {
          const r = await device.run(...a);
          maxResident = Math.max(maxResident, (await device.residentIds()).length * size);
          return r;
        } };
        const r = createResidency({ device: watched, layers: L, experts: E, sizeOf: () => size, budgetBytes, policy });
        await r.setHeld(Array.from({ length: L * E }, (_, i) => i));
        const engine = createEngine({ parts: denseOnly, executor: createBatchedExecutor(m.architecture.hiddenSize, (l, ex, off, x) => r.runLayer(l, ex, off, x).then((y) => expertChunks(y, off, m.architecture.hiddenSize))) });
        const got = (await generate(engine, params)).images;
        got.forEach((img, i) => expect(maxAbsDiff(img, want[i]!), `${policy} @ ${fraction}, ${streams} streams`).toBe(0));
        const s = r.stats();
        expect(maxResident).toBeLessThanOrEqual(budgetBytes);
        expect(s.misses + s.hits).toBe(s.needed);
        expect(s.loads).toBeGreaterThan(0);
        await r.close();
      }
  }, 120_000);

  it("an embedded cluster under a 50% predictive budget equals the engine and reports the cache on /metrics", async () => {
    const c = await startEmbeddedCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, port: 0, metricsPort: 0, cache: { budget: { fraction: 0.5 }, policy: "predictive" } });
    const client = createClient({ address: c.address });
    try {
      const ps: GenerateParams[] = [
        { label: 1, count: 2, steps: 4, sampler: "euler", guidance: 2, seed: 3 },
        { label: 8, count: 1, steps: 3, sampler: "heun", guidance: 1, seed: 4 },
      ];
      const results = await Promise.all(ps.map((p) => client.generateImages(p)));
      for (const [i, p] of ps.entries()) {
        const want = await oracle(p);
        results[i]!.images.forEach((img, j) => expect(maxAbsDiff(img.data, want[j]!)).toBeLessThanOrEqual(1e-5));
      }
      const text = await (await fetch(`http://127.0.0.1:${c.gateway.metricsPort}/metrics`)).text();
      for (const w of ["worker-0", "worker-1"]) expect(text).toMatch(new RegExp(`switchyard_expert_cache_hits_total\\{worker="${w}",group="default",policy="predictive"\\} [1-9]`));
      expect(text).toContain("switchyard_expert_cache_stall_seconds_total");
      const s = c.runtimes[0]!.stats().cache!;
      expect(s.predicted).toBeGreaterThan(0); // the scheduler's predictions reached the worker
      expect(s.residentBytes).toBeLessThanOrEqual(s.budgetBytes!);
    } finally {
      client.close();
      await c.stop();
    }
  }, 120_000);

  (natsServerAvailable() ? it : it.skip)("worker processes take SWITCHYARD_EXPERT_BUDGET and SWITCHYARD_CACHE_POLICY, and heartbeats carry the cache figures", async () => {
    const c = await startProcessCluster({
      modelDir: BUNDLED_MODEL_DIR, workers: 2, subjectPrefix: `c${Math.random().toString(36).slice(2, 8)}`,
      env: { SWITCHYARD_EXPERT_BUDGET: "25%", SWITCHYARD_CACHE_POLICY: "lfu", SWITCHYARD_DENSE_THREADS: "1", SWITCHYARD_HEARTBEAT_MS: "200" },
    });
    const client = createClient({ address: c.address });
    try {
      const p: GenerateParams = { label: 2, count: 2, steps: 3, sampler: "euler", guidance: 2, seed: 9 };
      const got = await client.generateImages(p);
      const want = await oracle(p);
      got.images.forEach((img, j) => expect(maxAbsDiff(img.data, want[j]!)).toBeLessThanOrEqual(1e-5));
      let text = "";
      for (let i = 0; i < 50 && !/switchyard_expert_cache_misses_total\{worker="[^"]+",group="[^"]+",policy="lfu"\} [1-9]/.test(text); i++) {
        await new Promise((r) => setTimeout(r, 100));
        text = await (await fetch(`http://127.0.0.1:${c.metricsPort}/metrics`)).text();
      }
      expect(text).toMatch(/switchyard_expert_cache_misses_total\{worker="[^"]+",group="[^"]+",policy="lfu"\} [1-9]/);
    } finally {
      client.close();
      await c.stop();
    }
  }, 120_000);
});

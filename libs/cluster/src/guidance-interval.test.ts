import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GenerateParams, type SwitchyardClient, createClient } from "@switchyard/client";
import { createEngine, generate } from "@switchyard/engine";
import { resolveGenerateParams } from "@switchyard/manifest";
import { BUNDLED_MODEL_DIR, type ModelParts, createOnnxModel } from "@switchyard/model";
import { type EmbeddedCluster, startEmbeddedCluster } from "./embedded";

const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** #18: a request's guidance interval, through the native API, in step batching across 2 workers. */
describe("guidance intervals on a cluster", () => {
  let cluster: EmbeddedCluster;
  let client: SwitchyardClient;
  let reference: ModelParts;
  beforeAll(async () => {
    reference = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
    cluster = await startEmbeddedCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, port: 0 });
    client = createClient({ address: cluster.address });
  }, 120_000);
  afterAll(async () => {
    client?.close();
    await cluster?.stop();
    await reference?.close();
  });

  it("gives every request of a mixed load (intervals and none, batched together) bitwise the in-process engine's images", async () => {
    const requests: GenerateParams[] = [
      { label: 2, count: 2, steps: 8, sampler: "euler", guidance: 2, seed: 1, guidanceTMin: 0.2, guidanceTMax: 0.8 },
      { label: 2, count: 2, steps: 8, sampler: "euler", guidance: 2, seed: 1 },
      { label: 7, count: 1, steps: 4, sampler: "heun", guidance: 3, seed: 5, guidanceTMin: 0.5 },
      { label: 9, count: 1, steps: 6, sampler: "pc", guidance: 2, seed: 9, guidanceTMax: 0.4 },
    ];
    const results = await Promise.all(requests.map((p) => client.generateImages(p)));
    const engine = createEngine({ parts: reference });
    for (const [i, p] of requests.entries()) {
      const params = resolveGenerateParams({ label: p.label, count: p.count, steps: p.steps, sampler: p.sampler, guidance: p.guidance, seed: p.seed, guidance_t_min: p.guidanceTMin, guidance_t_max: p.guidanceTMax }, reference.manifest);
      const want = (await generate(engine, params)).images;
      results[i]!.images.forEach((img, k) => expect(same(img.data, want[k]!), `request ${i} image ${k}`).toBe(true));
    }
    // each result says how many of its evaluations were guided (8 euler steps in [0.2, 0.8]: t = 0.75 … 0.25)
    expect(results.map((r) => [r.timings.modelEvals, r.timings.guidedEvals])).toEqual([[8, 5], [8, 8], [8, 5], [7, 3]]);
    // the interval changed the first request's images (it is not ignored on the way)
    expect(same(results[0]!.images[0]!.data, results[1]!.images[0]!.data)).toBe(false);
  });

  it("refuses an empty interval naming the field", async () => {
    await expect(client.generateImages({ label: 1, steps: 2, guidanceTMin: 0.9, guidanceTMax: 0.1 })).rejects.toThrow(/guidance_t_min 0.9 must be <= guidance_t_max 0.1/);
  });
});

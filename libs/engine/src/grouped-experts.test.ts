import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUNDLED_MODEL_DIR, type ModelParts, createOnnxModel } from "@switchyard/model";
import { gaussianNoise } from "@switchyard/sampler";
import { createEngine } from "./engine";

/** #17: one grouped expert call per layer instead of one per expert changes no bit of any result. */
describe("the engine with grouped experts", () => {
  let grouped: ModelParts;
  let single: ModelParts;
  beforeAll(async () => {
    grouped = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
    single = await createOnnxModel({ dir: BUNDLED_MODEL_DIR, groupExperts: false });
  });
  afterAll(async () => {
    await grouped?.close();
    await single?.close();
  });

  it("gives bitwise the velocities and routing of one call per expert at batch 1, 8 and 32", async () => {
    const a = createEngine({ parts: grouped });
    const b = createEngine({ parts: single });
    const m = grouped.manifest;
    const P = m.image.channels * m.image.height * m.image.width;
    for (const B of [1, 8, 32]) {
      const items = Array.from({ length: B }, (_, i) => ({ x: gaussianNoise(4, i, P), t: (i % 7) / 7, label: i % 10, guidance: i % 3 === 0 ? 1 : 2.5 }));
      const ra = await a.forward(items);
      const rb = await b.forward(items);
      ra.velocities.forEach((v, i) => expect(Buffer.from(v.buffer, v.byteOffset, v.byteLength).equals(Buffer.from(rb.velocities[i]!.buffer, rb.velocities[i]!.byteOffset, rb.velocities[i]!.byteLength)), `batch ${B} item ${i}`).toBe(true));
      ra.routing.forEach((r, l) => expect(r.experts).toEqual(rb.routing[l]!.experts));
    }
  });
});

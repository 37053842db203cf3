import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createClient } from "@switchyard/client";
import { createEngine } from "@switchyard/engine";
import { BUNDLED_MODEL_DIR, createOnnxModel } from "@switchyard/model";
import { gaussianNoise, initState, isDone } from "@switchyard/sampler";
import { readSafeTensors } from "@switchyard/tensor";
import { startEmbeddedCluster } from "./embedded";

const dir = mkdtempSync(join(tmpdir(), "sy-trace-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("routing traces recorded by the scheduler", () => {
  it("write the documented switchyard-trace layout with the routing the engine sees", async () => {
    const cluster = await startEmbeddedCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, port: 0, traceDir: dir });
    const client = createClient({ address: cluster.address });
    try {
      await Promise.all([
        client.generateImages({ label: 2, count: 2, steps: 3, sampler: "euler", guidance: 2, seed: 4 }),
        client.generateImages({ label: 6, count: 1, steps: 2, sampler: "heun", guidance: 1, seed: 5 }),
      ]);
    } finally {
      client.close();
      await cluster.stop();
    }
    const file = cluster.traces!.files.at(-1)!;
    const st = readSafeTensors(file);
    expect(st.metadata).toMatchObject({ format: "switchyard-trace", version: "1", layers: "6", experts: "32", top_k: "2", tokens: "49" });
    const n = st.get("request").shape[0]!;
    expect(n).toBe(2 * 3 + 1 * 4); // euler: 3 evals × 2 images; heun: 2 steps × 2 evals
    expect(st.get("experts").shape).toEqual([n, 6, 49, 2]);
    expect(st.get("weights").dtype).toBe("float16");
    // The first record of the guided request equals the engine's routing of its first eval.
    const steps = st.get("step").data as Int32Array;
    const labels = st.get("label").data as Int32Array;
    const i = [...labels].findIndex((l, j) => l === 2 && steps[j] === 0);
    const parts = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
    try {
      const state = initState({ sampler: "euler", steps: 3, shift: 1 }, gaussianNoise(4, 0, 784));
      expect(isDone(state)).toBe(false);
      const [r] = await createEngine({ parts }).step([{ state, label: 2, guidance: 2 }]);
      const rec = (st.get("experts").data as Uint8Array).subarray(i * 588, (i + 1) * 588);
      const want = r!.routing.flatMap((l) => Array.from(l));
      expect(Array.from(rec)).toEqual(want);
    } finally {
      await parts.close();
    }
  });
});

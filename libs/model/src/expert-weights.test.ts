import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { BUNDLED_MODEL_DIR, indexParts, loadManifest } from "@switchyard/manifest";
import { createResidency } from "@switchyard/expert-cache";
import { createThreadExpertDevice } from "./expert-device";
import { splitExpertWeights } from "./expert-weights";
import { createOnnxModel } from "./onnx-model";
import { messageField, parseMessage, writeMessage } from "./onnx-wire";

const manifest = loadManifest(BUNDLED_MODEL_DIR);
const index = indexParts(manifest);
const D = manifest.architecture.hiddenSize;
const E = manifest.moe.numExperts;
const L = manifest.architecture.numLayers;
const partBytes = (l: number, e: number) => readFileSync(join(BUNDLED_MODEL_DIR, index.experts[l]![e]!.file));
const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "disabled" };

function bitwise(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

describe("expert parts split into skeleton and weights", () => {
  it("every bundled expert has one skeleton, and the part's initializers as weights", async () => {
    const keys = new Set<string>();
    for (let l = 0; l < L; l++) for (let e = 0; e < E; e++) keys.add(splitExpertWeights(partBytes(l, e), `${l}/${e}`).key);
    expect(keys.size).toBe(1);
    const w = splitExpertWeights(partBytes(2, 5), "2/5");
    expect(w.tensors.map((t) => `${t.name}:${t.dims.join("x")}`)).toEqual(["fc1.weight:64x128", "fc1.bias:64", "fc2.weight:128x64", "fc2.bias:128"]);
    const s = await ort.InferenceSession.create(w.skeleton, options);
    expect(s.inputNames).toEqual(["u", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
    await s.release();
  });

  it("the skeleton fed an expert's weights gives its part's outputs bitwise from two rows; one row runs as two", async () => {
    const w = splitExpertWeights(partBytes(4, 17), "4/17");
    const skel = await ort.InferenceSession.create(w.skeleton, options);
    const part = await ort.InferenceSession.create(partBytes(4, 17), options);
    const weights = Object.fromEntries(w.tensors.map((t) => [t.name, new ort.Tensor("float32", t.data, [...t.dims])]));
    try {
      for (const n of [2, 3, 9, 98, 300]) {
        const x = Float32Array.from({ length: n * D }, (_, i) => Math.cos(0.11 * i + n));
        const want = (await part.run({ u: new ort.Tensor("float32", x, [n, D]) })).y!.data as Float32Array;
        const got = (await skel.run({ u: new ort.Tensor("float32", x, [n, D]), ...weights })).y!.data as Float32Array;
        expect(bitwise(got, want), `${n} rows`).toBe(true);
      }
      const x = Float32Array.from({ length: D }, (_, i) => Math.sin(i));
      const want = (await part.run({ u: new ort.Tensor("float32", x, [1, D]) })).y!.data as Float32Array;
      const two = new Float32Array(2 * D);
      two.set(x);
      two.set(x, D);
      const got = ((await skel.run({ u: new ort.Tensor("float32", two, [2, D]), ...weights })).y!.data as Float32Array).subarray(0, D);
      expect(bitwise(got, want)).toBe(true);
    } finally {
      await skel.release();
      await part.release();
    }
  });

  it("refuses weights it cannot feed (not float32), naming the initializer", () => {
    const model = parseMessage(partBytes(0, 0));
    const graph = parseMessage(model.find((f) => f.no === 7)!.value);
    // Initializer data_type (field 2) 1 (FLOAT) -> 11 (DOUBLE)
    const changed = graph.map((f) => (f.no === 5 ? messageField(5, parseMessage(f.value).map((x) => (x.no === 2 ? { ...x, value: Uint8Array.of(11) } : x))) : f));
    const bytes = writeMessage(model.map((f) => (f.no === 7 ? messageField(7, changed) : f)));
    expect(() => splitExpertWeights(bytes, "block0.expert0")).toThrow(/part block0.expert0: initializer fc1.weight is not float32/);
  });
});

describe("the thread expert device", () => {
  it("runs each expert bitwise as its part with the weights fed as inputs, one-row experts included, and after evictions", async () => {
    const parts = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
    const device = createThreadExpertDevice({ dir: BUNDLED_MODEL_DIR, manifest });
    try {
      const ids = Array.from({ length: E }, (_, e) => 3 * E + e);
      await device.stage(ids);
      await device.load(ids);
      // Rows per expert 0..4, then a larger one: one-row experts take the padded path.
      const counts = ids.map((_, i) => (i === E - 1 ? 70 : i % 5));
      const offsets = new Int32Array(E + 1);
      counts.forEach((c, i) => (offsets[i + 1] = offsets[i]! + c));
      const x = Float32Array.from({ length: offsets[E]! * D }, (_, i) => Math.sin(0.013 * i));
      const run = await device.run(Int32Array.from(ids), offsets, x.slice());
      for (let e = 0; e < E; e++) {
        if (counts[e] === 0) continue;
        const want = await parts.expert(3, e, x.subarray(offsets[e]! * D, offsets[e + 1]! * D), counts[e]!);
        expect(bitwise(run.y.subarray(offsets[e]! * D, offsets[e + 1]! * D), want), `expert ${e}, ${counts[e]} rows`).toBe(true);
      }
      expect((await device.residentIds()).sort((a, b) => a - b)).toEqual(ids);
      await device.evict(ids.slice(0, 8));
      expect((await device.residentIds()).length).toBe(E - 8);
      // Evicted experts run again after a load on demand, with the same results.
      const again = await device.run(Int32Array.from(ids), offsets, x.slice());
      expect(bitwise(again.y, run.y)).toBe(true);
      expect(again.loaded.length).toBe(ids.slice(0, 8).filter((_, i) => counts[i]! > 0).length);
    } finally {
      await device.close();
      await parts.close();
    }
  });

  it("under a residency at a 50 % budget stays within it while every tick loads the experts it misses", async () => {
    const device = createThreadExpertDevice({ dir: BUNDLED_MODEL_DIR, manifest });
    const size = manifest.parts.find((p) => p.kind === "expert")!.bytes;
    const r = createResidency({ device, layers: L, experts: E, sizeOf: () => size, budgetBytes: (E / 2) * size, policy: "lru" });
    try {
      await r.setHeld(Array.from({ length: E }, (_, e) => e)); // layer 0's experts
      const all = Int32Array.from({ length: E }, (_, e) => e);
      const offsets = Int32Array.from({ length: E + 1 }, (_, i) => 2 * i);
      for (let t = 0; t < 3; t++) {
        r.beginTick();
        await r.runLayer(0, all.subarray(0, E / 2), offsets.subarray(0, E / 2 + 1), new Float32Array(E * D).fill(0.5));
        await r.runLayer(0, Int32Array.from(all.subarray(E / 2)), Int32Array.from(offsets.subarray(0, E / 2 + 1)), new Float32Array(E * D).fill(0.25));
        r.endTick();
      }
      const s = r.stats();
      expect(s.loads).toBeGreaterThanOrEqual(2 * E);
      expect(s.residentExperts).toBeLessThanOrEqual(E / 2);
    } finally {
      await r.close();
    }
  });
});

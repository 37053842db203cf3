import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { BUNDLED_MODEL_DIR, indexParts, loadManifest } from "@switchyard/manifest";
import { groupExpertModels, groupedName } from "./expert-group";
import { type ModelParts, createOnnxModel } from "./onnx-model";
import { parseMessage, writeMessage } from "./onnx-wire";

const manifest = loadManifest(BUNDLED_MODEL_DIR);
const index = indexParts(manifest);
const D = manifest.architecture.hiddenSize;
const E = manifest.moe.numExperts;
const partBytes = (l: number, e: number) => readFileSync(join(BUNDLED_MODEL_DIR, index.experts[l]![e]!.file));
const member = (l: number, e: number) => ({ key: e, name: index.experts[l]![e]!.name, bytes: partBytes(l, e) });

function bitwise(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

/** Rows for `experts` of unequal counts (some none), deterministic. */
function rowsFor(experts: number[], seed: number) {
  const offsets = new Int32Array(experts.length + 1);
  experts.forEach((e, i) => (offsets[i + 1] = offsets[i]! + ((e * 7 + seed) % 5 === 0 ? 0 : 1 + ((e * 13 + seed) % 23))));
  const x = Float32Array.from({ length: offsets[experts.length]! * D }, (_, i) => Math.sin(0.01 * i + seed));
  return { experts: Int32Array.from(experts), offsets, x };
}

describe("the protobuf wire layer", () => {
  it("writes a part back byte for byte", () => {
    const bytes = partBytes(0, 0);
    const model = parseMessage(bytes);
    expect(Buffer.from(writeMessage(model)).equals(bytes)).toBe(true);
    const graph = model.find((f) => f.no === 7)!.value;
    expect(Buffer.from(writeMessage(parseMessage(graph))).equals(graph)).toBe(true);
  });

  it("refuses a truncated message", () => {
    const bytes = partBytes(0, 0);
    expect(() => parseMessage(bytes.subarray(0, bytes.length - 3))).toThrow(/runs past the end/);
  });
});

describe("grouped expert models (#17: 192 expert calls per step)", () => {
  it("refuse no members, repeated keys and parts of another export", () => {
    expect(() => groupExpertModels([], "g")).toThrow(/at least one member/);
    expect(() => groupExpertModels([member(0, 1), member(0, 1)], "g")).toThrow(/distinct/);
    const other = parseMessage(partBytes(0, 2)).map((f) => (f.no === 2 ? { ...f, value: new TextEncoder().encode("someone else") } : f));
    expect(() => groupExpertModels([member(0, 1), { key: 2, name: "foreign", bytes: writeMessage(other) }], "g")).toThrow(/foreign has another model header/);
  });

  it("run every member over its own row count in one session, bitwise what each part gives", async () => {
    const experts = [0, 3, 4, 9, 17, 31];
    const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, graphOptimizationLevel: "all" };
    const grouped = await ort.InferenceSession.create(groupExpertModels(experts.map((e) => member(2, e)), "block2.experts"), opts);
    const { offsets, x } = rowsFor(experts, 1);
    const feeds: Record<string, ort.Tensor> = {};
    experts.forEach((e, i) => (feeds[groupedName(e, "u")] = new ort.Tensor("float32", x.subarray(offsets[i]! * D, offsets[i + 1]! * D), [offsets[i + 1]! - offsets[i]!, D])));
    const out = await grouped.run(feeds);
    expect(experts.some((_, i) => offsets[i + 1] === offsets[i])).toBe(true); // an expert with no rows is among them
    for (const [i, e] of experts.entries()) {
      const single = await ort.InferenceSession.create(partBytes(2, e), opts);
      const n = offsets[i + 1]! - offsets[i]!;
      const want = (await single.run({ u: new ort.Tensor("float32", x.subarray(offsets[i]! * D, offsets[i + 1]! * D), [n, D]) })).y!.data as Float32Array;
      expect(bitwise(out[groupedName(e, "y")]!.data as Float32Array, want), `expert ${e} (${n} rows)`).toBe(true);
      await single.release();
    }
    await grouped.release();
  });
});

describe("ModelParts.runExperts on the bundled model", () => {
  let parts: ModelParts;
  beforeAll(async () => {
    parts = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
  });
  afterAll(async () => {
    await parts?.close();
  });

  it("gives bitwise expert()'s outputs in every layer, for any subset and order of experts", async () => {
    for (let l = 0; l < manifest.architecture.numLayers; l++) {
      for (const experts of [Array.from({ length: E }, (_, e) => e), [5, 1, 30], [12]]) {
        const { offsets, x } = rowsFor(experts, l);
        const got = await parts.runExperts!(l, Int32Array.from(experts), offsets, x);
        expect(got).toHaveLength(experts.length);
        for (const [i, e] of experts.entries()) {
          const n = offsets[i + 1]! - offsets[i]!;
          const want = n === 0 ? new Float32Array(0) : await parts.expert(l, e, x.subarray(offsets[i]! * D, offsets[i + 1]! * D), n);
          expect(bitwise(got[i]!, want), `layer ${l} expert ${e}`).toBe(true);
        }
      }
    }
  });

  it("rebuilds a layer's group when an expert is released or loaded, and names a missing one", async () => {
    const all = Array.from({ length: E }, (_, e) => e);
    const { offsets, x } = rowsFor(all, 4);
    expect(offsets[7]! - offsets[6]!).toBeGreaterThan(0); // expert 6 has rows
    const before = await parts.runExperts!(1, Int32Array.from(all), offsets, x);
    await parts.unloadExpert(1, 6);
    const without = all.filter((e) => e !== 6);
    const r = rowsFor(without, 4);
    const mid = await parts.runExperts!(1, Int32Array.from(without), r.offsets, r.x);
    for (const [i, e] of without.entries()) {
      const n = r.offsets[i + 1]! - r.offsets[i]!;
      if (n > 0) expect(bitwise(mid[i]!, await parts.expert(1, e, r.x.subarray(r.offsets[i]! * D, r.offsets[i + 1]! * D), n))).toBe(true);
    }
    await expect(parts.runExperts!(1, Int32Array.from(all), offsets, x)).rejects.toThrow(/expert 6 of layer 1 is not loaded/);
    await parts.loadExpert(1, 6);
    const after = await parts.runExperts!(1, Int32Array.from(all), offsets, x);
    after.forEach((y, i) => expect(bitwise(y, before[i]!)).toBe(true));
  });
});

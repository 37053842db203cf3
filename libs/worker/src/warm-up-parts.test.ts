import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUNDLED_MODEL_DIR, type ModelParts, createOnnxModel } from "@switchyard/model";
import { createLocalPeers, createWorkerRuntime } from "./runtime";
import { expertWarmRows, warmUpDense, warmUpExperts } from "./warm-up-parts";

let parts: ModelParts;
beforeAll(async () => {
  parts = await createOnnxModel({ dir: BUNDLED_MODEL_DIR, experts: () => false });
});
afterAll(async () => {
  await parts?.close();
});

/** The real parts, recording every call as "method:rows". */
function recording(p: ModelParts, o: { grouped?: boolean } = {}): { parts: ModelParts; calls: string[] } {
  const calls: string[] = [];
  const D = p.manifest.architecture.hiddenSize;
  const wrapped: ModelParts = {
    manifest: p.manifest,
    embed: (x, t, y) => (calls.push(`embed:${t.length}`), p.embed(x, t, y)),
    dense: (l, h, c, b) => (calls.push(`dense${l}:${b}`), p.dense(l, h, c, b)),
    expert: (l, e, u, rows) => (calls.push(`expert${l}.${e}:${rows}`), expect(u.length).toBe(rows * D), p.expert(l, e, u, rows)),
    shared: (l, u, rows) => (calls.push(`shared${l}:${rows}`), expect(u.length).toBe(rows * D), p.shared(l, u, rows)),
    final: (h, c, b) => (calls.push(`final:${b}`), p.final(h, c, b)),
    hasExpert: (l, e) => p.hasExpert(l, e),
    loadExpert: (l, e) => p.loadExpert(l, e),
    unloadExpert: (l, e) => p.unloadExpert(l, e),
    close: () => p.close(),
    ...(o.grouped
      ? {
          runExperts: (l: number, es: Int32Array, off: Int32Array, x: Float32Array) => (
            calls.push(`experts${l}:${[...es].join(",")}:${[...off.subarray(1)].map((v, i) => v - off[i]!).join(",")}`), p.runExperts!(l, es, off, x)
          ),
        }
      : {}),
  };
  return { parts: wrapped, calls };
}

describe("warm-up", () => {
  it("runs every dense part and shared expert at the given rows, once per round", async () => {
    const { parts: p, calls } = recording(parts);
    const L = parts.manifest.architecture.numLayers;
    const T = parts.manifest.architecture.tokens;
    await warmUpDense(p, { rows: 6, rounds: 2 });
    const round = ["embed:6", ...Array.from({ length: L }, (_, l) => [`dense${l}:6`, `shared${l}:${6 * T}`]).flat(), "final:6"];
    expect(calls).toEqual([...round, ...round]);
  });

  it("does nothing at 0 rows or 0 rounds, and names the bad field", async () => {
    const { parts: p, calls } = recording(parts);
    expect(await warmUpDense(p, { rows: 0, rounds: 2 })).toBe(0);
    await warmUpDense(p, { rows: 4, rounds: 0 });
    await warmUpExperts(p, [[0, 1]], { rows: 0, rounds: 1 });
    expect(calls).toEqual([]);
    await expect(warmUpDense(p, { rows: -1, rounds: 1 })).rejects.toThrow(/warm-up rows -1 must be an integer >= 0/);
    await expect(warmUpExperts(p, [], { rows: 8, rounds: 1.5 })).rejects.toMatchObject({ field: "rounds" });
  });

  it("sizes expert runs as an even share of a tick's token rows", () => {
    // bundled model: 49 tokens, top-2 of 32 experts → 256 rows × 49 × 2 / 32
    expect(expertWarmRows(parts, 256)).toBe(784);
    expect(expertWarmRows(parts, 1)).toBe(Math.ceil(98 / 32));
  });

  it("a runtime warms the experts SetExperts loads, and only those (one by one where the parts do not group experts)", async () => {
    const { parts: p, calls } = recording(parts);
    const E = parts.manifest.moe.numExperts;
    const rt = createWorkerRuntime({ id: "w", parts: p, peers: createLocalPeers(), gate: false, warmUp: { rows: 8, rounds: 1 } });
    const rows = expertWarmRows(parts, 8);
    expect(await rt.setExperts([0, 1, E + 2])).toEqual({ loaded: 3, dropped: 0 });
    expect(calls.sort()).toEqual([`expert0.0:${rows}`, `expert0.1:${rows}`, `expert1.2:${rows}`]);
    calls.length = 0;
    expect(await rt.setExperts([1, E + 2, 5])).toEqual({ loaded: 1, dropped: 1 });
    expect(calls).toEqual([`expert0.5:${rows}`]);
    await rt.close();
  });

  it("warms grouped experts per layer in one call, as ticks run them", async () => {
    const { parts: p, calls } = recording(parts, { grouped: true });
    const E = parts.manifest.moe.numExperts;
    const rt = createWorkerRuntime({ id: "w", parts: p, peers: createLocalPeers(), gate: false, warmUp: { rows: 8, rounds: 2 } });
    const rows = expertWarmRows(parts, 8);
    await rt.setExperts([3, 4, 9, 2 * E + 1]);
    expect(calls).toEqual([`experts0:3,4,9:${rows},${rows},${rows}`, `experts2:1:${rows}`, `experts0:3,4,9:${rows},${rows},${rows}`, `experts2:1:${rows}`]);
    await rt.close();
  });
});

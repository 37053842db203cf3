import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "@switchyard/engine";
import { BUNDLED_MODEL_DIR, type ModelParts, createOnnxModel } from "@switchyard/model";
import { gaussianNoise } from "@switchyard/sampler";
import { maxAbsDiff } from "@switchyard/tensor";
import { contiguousPlan, expertsOf, reassign } from "@switchyard/contract";
import type { TickItemMsg } from "@switchyard/proto";
import { createLocalPeers, createWorkerRuntime } from "./runtime";

const models: ModelParts[] = [];
let reference: ModelParts;

beforeAll(async () => {
  reference = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
});
afterAll(async () => {
  await Promise.all([reference, ...models].map((m) => m?.close()));
});

async function cluster(n: number) {
  const ids = Array.from({ length: n }, (_, i) => `w${i}`);
  const m = reference.manifest;
  const plan = contiguousPlan(ids, m.architecture.numLayers, m.moe.numExperts);
  const peers = createLocalPeers();
  const rts = [];
  for (const id of ids) {
    const mine = new Set(expertsOf(plan, id));
    const parts = await createOnnxModel({ dir: BUNDLED_MODEL_DIR, experts: (l, e) => mine.has(l * m.moe.numExperts + e) });
    models.push(parts);
    const rt = createWorkerRuntime({ id, parts, peers, exchangeTimeoutMs: 5000 });
    peers.add(rt);
    rts.push(rt);
  }
  return { ids, plan, rts, peers };
}

function items(n: number): TickItemMsg[] {
  return Array.from({ length: n }, (_, i) => ({
    requestId: `r${i}`, imageIndex: 0, x: gaussianNoise(7, i, 784), t: 0.2 + 0.1 * (i % 7), label: i % 10, guidance: i % 3 === 0 ? 1 : 2.5,
  }));
}

describe("distributed tick", () => {
  it.each([1, 2, 4])("with %i workers equals the in-process engine within 1e-5", async (n) => {
    const { ids, plan, rts } = await cluster(n);
    const all = items(6);
    // split images over homes round-robin; all homes run the tick concurrently
    const homes = ids.slice(0, Math.min(n, all.length));
    const mine = homes.map((_, h) => all.filter((_, i) => i % homes.length === h));
    const res = await Promise.all(homes.map((h, k) => rts[k]!.runTick({ tick: 1, items: mine[k]!, homes, planVersion: plan.version, owners: plan.owners })));
    const ref = await createEngine({ parts: reference }).forward(all.map((it) => ({ x: it.x, t: it.t, label: it.label, guidance: it.guidance })));
    homes.forEach((_, k) => {
      mine[k]!.forEach((it, j) => {
        const i = all.indexOf(it);
        expect(maxAbsDiff(res[k]!.velocities.subarray(j * 784, (j + 1) * 784), ref.velocities[i]!)).toBeLessThanOrEqual(1e-5);
      });
    });
    if (n > 1) {
      const s = rts[0]!.stats();
      expect(s.layers[0]!.rowsSent).toBeGreaterThan(0);
      expect(s.layers[0]!.rowsReceived).toBeGreaterThan(0);
    }
  });

  it("splits homes' images into micro-batches (an empty one included) with unchanged results", async () => {
    const { ids, plan, rts } = await cluster(2);
    const all = items(5);
    const mine = [all.slice(0, 3), all.slice(3)]; // with 3 micro-batches, w1's third is empty
    const res = await Promise.all(ids.map((h, k) => rts[k]!.runTick({ tick: 1, items: mine[k]!, homes: ids, planVersion: plan.version, owners: plan.owners, microBatches: 3 })));
    const ref = await createEngine({ parts: reference }).forward(all.map((it) => ({ x: it.x, t: it.t, label: it.label, guidance: it.guidance })));
    ids.forEach((_, k) =>
      mine[k]!.forEach((it, j) => expect(maxAbsDiff(res[k]!.velocities.subarray(j * 784, (j + 1) * 784), ref.velocities[all.indexOf(it)]!)).toBeLessThanOrEqual(1e-5)),
    );
  });

  it("takes over a dead peer's experts (loaded on demand) with unchanged results", async () => {
    const { plan, rts } = await cluster(2);
    const all = items(3);
    const before = await rts[0]!.runTick({ tick: 1, items: all, homes: ["w0"], planVersion: plan.version, owners: plan.owners });
    const next = reassign(plan, new Set(["w1"]));
    const after = await rts[0]!.runTick({ tick: 2, items: all, homes: ["w0"], planVersion: next.version, owners: next.owners });
    const ref = await createEngine({ parts: reference }).forward(all.map((it) => ({ x: it.x, t: it.t, label: it.label, guidance: it.guidance })));
    ref.velocities.forEach((v, i) => {
      expect(maxAbsDiff(before.velocities.subarray(i * 784, (i + 1) * 784), v)).toBeLessThanOrEqual(1e-5);
      expect(maxAbsDiff(after.velocities.subarray(i * 784, (i + 1) * 784), v)).toBeLessThanOrEqual(1e-5);
    });
  });

  it("a worker with no images of its own still serves its experts", async () => {
    const { plan, rts } = await cluster(2);
    const r = await rts[0]!.runTick({ tick: 5, items: items(2), homes: ["w0"], planVersion: plan.version, owners: plan.owners });
    expect(r.velocities.length).toBe(2 * 784);
    expect(rts[1]!.stats().layers.every((l) => l.rowsReceived > 0)).toBe(true);
  });

  it("fails the tick when a home never sends (dead peer)", async () => {
    const { plan, rts } = await cluster(2);
    const rt = createWorkerRuntime({ id: "w0", parts: models.at(-2)!, peers: createLocalPeers(), exchangeTimeoutMs: 200 });
    await expect(rt.runTick({ tick: 9, items: items(1), homes: ["w0", "w1"], planVersion: plan.version, owners: plan.owners })).rejects.toThrow();
    expect(rts).toHaveLength(2);
  });

  it("serves redundant copies: homes holding one use it, others spread rows over the copies; results unchanged", async () => {
    const { ids, plan, rts } = await cluster(3);
    // every expert of w0 also on w1 and w2 (each loads what it now holds on demand)
    const replicas = plan.owners.map((w) => (w === "w0" ? ["w1", "w2"] : []));
    const all = items(6);
    const mine = ids.map((_, h) => all.filter((_, i) => i % 3 === h));
    const res = await Promise.all(ids.map((h, k) => rts[k]!.runTick({ tick: 1, items: mine[k]!, homes: ids, planVersion: plan.version, owners: plan.owners, replicas })));
    const ref = await createEngine({ parts: reference }).forward(all.map((it) => ({ x: it.x, t: it.t, label: it.label, guidance: it.guidance })));
    ids.forEach((_, k) =>
      mine[k]!.forEach((it, j) => expect(maxAbsDiff(res[k]!.velocities.subarray(j * 784, (j + 1) * 784), ref.velocities[all.indexOf(it)]!)).toBeLessThanOrEqual(1e-5)),
    );
    // w1 and w2 computed rows of w0's experts (their own homes' rows at least); w0 still served some
    const rowsOnW0Experts = (k: number) => rts[k]!.stats().expertRows.reduce((a, r, g) => a + (plan.owners[g] === "w0" ? r : 0), 0);
    expect(rowsOnW0Experts(1)).toBeGreaterThan(0);
    expect(rowsOnW0Experts(2)).toBeGreaterThan(0);
    expect(rowsOnW0Experts(0)).toBeGreaterThan(0);
    expect(expertsOf({ ...plan, replicas }, "w1").length).toBe(plan.owners.filter((w) => w === "w0" || w === "w1").length);
  });

  it("promotes a surviving replica when an owner dies", () => {
    const plan = { ...contiguousPlan(["a", "b"], 1, 4), replicas: [["b"], [], [], ["a"]] };
    const next = reassign(plan, new Set(["a"]));
    expect(next.owners).toEqual(["b", "b", "b", "b"]);
    expect(next.replicas).toEqual([[], [], [], []]);
  });

  it("reassigns a dead worker's experts to the survivors, balanced per layer", () => {
    const plan = contiguousPlan(["a", "b", "c"], 2, 6);
    const next = reassign(plan, new Set(["b"]));
    expect(next.version).toBe(2);
    expect(next.owners.includes("b")).toBe(false);
    for (let l = 0; l < 2; l++) {
      const layer = next.owners.slice(l * 6, l * 6 + 6);
      expect(layer.filter((w) => w === "a")).toHaveLength(3);
      expect(layer.filter((w) => w === "c")).toHaveLength(3);
    }
  });
});

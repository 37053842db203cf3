/**
 * The expert cache on the real model: a worker runtime (the one services/worker runs)
 * holding one worker's experts on an expert device (a thread running ONNX Runtime;
 * loading = copying an expert's weights from the host store), its dense parts on the
 * main thread. Each configuration serves a warm-up set of requests, then a measured set
 * (different labels and seeds), `steps` sampler steps each with CFG; a tick is one step
 * of every request of the set, sent as the scheduler sends it (micro-batches, prediction).
 */
import { join } from "node:path";
import { type CacheStats, type ClassPriors, type ExpertDevice, addExperts, classPriorsFromTrace, createResidency, emptyPrediction } from "@switchyard/expert-cache";
import { DEFAULT_DENSE_THREADS, type ExecutionProvider, type ModelParts, createOnnxModel, createThreadExpertDevice } from "@switchyard/model";
import type { Manifest } from "@switchyard/manifest";
import { readTrace } from "@switchyard/trace";
import { advance, gaussianNoise, initState, nextEval, type SamplerState } from "@switchyard/sampler";
import { microBatchesFor } from "@switchyard/scheduler/internal";
import { encodePrediction, unpackExperts } from "@switchyard/contract";
import { type WorkerRuntime, createLocalPeers, createWorkerRuntime } from "@switchyard/worker";

export interface LiveConfig {
  /** undefined: all resident (on the expert device, or with `mainThread` on the engine's own sessions). */
  readonly policy: string | undefined;
  readonly budgetFraction: number;
  readonly batch: number;
  /** All resident the way a worker without a budget runs: experts on the main thread, default dense threads. */
  readonly mainThread?: boolean;
}

export interface LiveResult {
  readonly config: LiveConfig;
  readonly ticks: number;
  readonly stepMs: number[];
  readonly stats: CacheStats; // measured part only (counters minus warm-up)
}

export interface LiveBench {
  readonly manifest: Manifest;
  readonly expertBytes: number;
  run(config: LiveConfig, steps: number, seed: number): Promise<LiveResult>;
  /** Device time to make one expert resident (median over `n` loads of experts staged in host memory). */
  loadMs(n?: number): Promise<number>;
  close(): Promise<void>;
}

const GUIDANCE = 2;

/** Stands in where the engine runs experts itself (the residency only counts ticks). */
const nullDevice: ExpertDevice = {
  stage: async () => ({ ms: 0, bytes: 0 }),
  load: async () => ({ ms: 0 }),
  evict: async () => undefined,
  run: async () => {
    throw new Error("not used");
  },
  residentIds: async () => [],
  close: async () => undefined,
};

export async function createLiveBench(dir: string, executionProvider: ExecutionProvider = "cpu"): Promise<LiveBench> {
  // Dense threads as a worker uses them beside an expert device (threadDefaults).
  const parts: ModelParts = await createOnnxModel({ dir, experts: () => false, denseThreads: DEFAULT_DENSE_THREADS, executionProvider });
  const whole: ModelParts = await createOnnxModel({ dir, executionProvider });
  const m = parts.manifest;
  const L = m.architecture.numLayers;
  const E = m.moe.numExperts;
  const P = m.image.channels * m.image.height * m.image.width;
  const sizes = m.parts.filter((p) => p.kind === "expert");
  const sizeOf = (id: number) => sizes[id]!.bytes;
  const priors: ClassPriors = classPriorsFromTrace(readTrace(join(dir, "traces/solve.safetensors")), { nullLabel: m.conditioning.nullLabel });
  const all = Array.from({ length: L * E }, (_, i) => i);

  const ID = "w0";
  const owners = all.map(() => ID);
  const stride = Math.ceil((L * E) / 8);
  const priorSet = (label: number): Set<number> => {
    const p = emptyPrediction(L);
    addExperts(p, priors.prior(label), E);
    addExperts(p, priors.prior(m.conditioning.nullLabel), E);
    return new Set(p.flatMap((layer) => [...layer.keys()]));
  };
  let tickNo = 0;

  /**
   * Ticks as the scheduler sends them to a worker with every expert: one step of every
   * request, micro-batches as the scheduler picks them, and (predictive) each request's
   * experts of its previous step — class priors on its first — as the prediction.
   */
  async function serve(rt: WorkerRuntime, batch: number, steps: number, seed: number, predictive: boolean, stepMs: number[]) {
    let states: SamplerState[] = Array.from({ length: batch }, (_, i) => initState({ sampler: "euler", steps, shift: 1 }, gaussianNoise(seed, i, P)));
    const labels = Array.from({ length: batch }, (_, i) => (seed + i) % 10);
    let used: Set<number>[] | undefined;
    for (let s = 0; s < steps; s++) {
      const predicted = predictive ? encodePrediction(used ?? labels.map(priorSet), L * E) : undefined;
      const evals = states.map(nextEval);
      const items = evals.map((e, i) => ({ requestId: `r${i}`, imageIndex: 0, x: e.x, t: e.t, label: labels[i]!, guidance: GUIDANCE }));
      const t0 = performance.now();
      const res = await rt.runTick({ tick: ++tickNo, items, homes: [ID], planVersion: 1, owners, microBatches: microBatchesFor([batch], 1), ...(predicted ? { predicted } : {}) });
      stepMs.push(performance.now() - t0);
      used = items.map((_, i) => unpackExperts(res.expertsUsed!.subarray(i * stride, (i + 1) * stride), L * E));
      states = states.map((st, i) => advance(st, res.velocities.subarray(i * P, (i + 1) * P)).state);
    }
  }

  return {
    manifest: m,
    expertBytes: sizeOf(0),
    async run(config, steps, seed) {
      if (config.mainThread) {
        const stepMs: number[] = [];
        const rt = createWorkerRuntime({ id: ID, parts: whole, peers: createLocalPeers() });
        await serve(rt, config.batch, steps, seed + 1000, false, []);
        await serve(rt, config.batch, steps, seed, false, stepMs);
        await rt.close();
        return { config, ticks: steps, stepMs, stats: createResidency({ device: nullDevice, layers: L, experts: E, sizeOf }).stats() };
      }
      const device = createThreadExpertDevice({ dir, manifest: m, executionProvider });
      const budgetBytes = config.policy ? Math.floor(config.budgetFraction * L * E) * sizeOf(0) : undefined;
      const residency = createResidency({ device, layers: L, experts: E, sizeOf, budgetBytes, policy: config.policy ?? "lru" });
      const rt = createWorkerRuntime({ id: ID, parts, peers: createLocalPeers(), residency });
      try {
        await rt.setExperts(all);
        const predictive = config.policy === "predictive";
        await serve(rt, config.batch, steps, seed + 1000, predictive, []); // warm-up set
        const before = residency.stats();
        const stepMs: number[] = [];
        await serve(rt, config.batch, steps, seed, predictive, stepMs);
        const after = residency.stats();
        const stats = Object.fromEntries(
          Object.entries(after).map(([k, v]) => [k, typeof v === "number" && !["budgetBytes", "residentBytes", "residentExperts", "heldExperts"].includes(k) ? v - (before[k as keyof CacheStats] as number) : v]),
        ) as unknown as CacheStats;
        return { config, ticks: steps, stepMs, stats };
      } finally {
        await rt.close();
      }
    },
    async loadMs(n = 64) {
      const device = createThreadExpertDevice({ dir, manifest: m, executionProvider });
      try {
        const ids = all.slice(0, n);
        await device.stage(ids);
        const ms: number[] = [];
        for (const id of ids) {
          ms.push((await device.load([id])).ms);
          await device.evict([id]);
        }
        return ms.sort((a, b) => a - b)[ms.length >> 1]!;
      } finally {
        await device.close();
      }
    },
    close: async () => {
      await parts.close();
      await whole.close();
    },
  };
}

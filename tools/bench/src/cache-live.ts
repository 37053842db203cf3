/**
 * The expert cache on the real model: one worker's experts on an expert device (a
 * thread holding ONNX Runtime sessions; loading = creating a session from the host
 * store), the engine's dense parts on the main thread. Each configuration serves a
 * warm-up set of requests, then a measured set (different labels and seeds), `steps`
 * sampler steps each with CFG; a tick is one step of every request of the set.
 */
import { join } from "node:path";
import { type CacheStats, type ClassPriors, type ExpertDevice, addRouting, classPriorsFromTrace, createResidency, emptyPrediction } from "@switchyard/expert-cache";
import { type Engine, createBatchedExecutor, createEngine, expertChunks } from "@switchyard/engine";
import { DEFAULT_DENSE_THREADS_WITH_DEVICE, type ModelParts, createOnnxModel, createThreadExpertDevice } from "@switchyard/model";
import type { Manifest } from "@switchyard/manifest";
import { readTrace } from "@switchyard/placement";
import { advance, gaussianNoise, initState, nextEval, type SamplerState } from "@switchyard/sampler";

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

export async function createLiveBench(dir: string): Promise<LiveBench> {
  // Dense threads as a worker uses them: one fewer beside an expert device.
  const parts: ModelParts = await createOnnxModel({ dir, experts: () => false, denseThreads: DEFAULT_DENSE_THREADS_WITH_DEVICE });
  const whole: ModelParts = await createOnnxModel({ dir });
  const m = parts.manifest;
  const L = m.architecture.numLayers;
  const E = m.moe.numExperts;
  const D = m.architecture.hiddenSize;
  const P = m.image.channels * m.image.height * m.image.width;
  const sizes = m.parts.filter((p) => p.kind === "expert");
  const sizeOf = (id: number) => sizes[id]!.bytes;
  const priors: ClassPriors = classPriorsFromTrace(readTrace(join(dir, "traces/solve.safetensors")), { nullLabel: m.conditioning.nullLabel });
  const all = Array.from({ length: L * E }, (_, i) => i);

  async function serve(engine: Engine, residency: ReturnType<typeof createResidency>, batch: number, steps: number, seed: number, predictive: boolean, stepMs: number[]) {
    let states: SamplerState[] = Array.from({ length: batch }, (_, i) => initState({ sampler: "euler", steps, shift: 1 }, gaussianNoise(seed, i, P)));
    const labels = Array.from({ length: batch }, (_, i) => (seed + i) % 10);
    let prev: Int16Array[] | undefined;
    for (let s = 0; s < steps; s++) {
      let prediction: Map<number, number>[] | undefined;
      if (predictive) {
        prediction = emptyPrediction(L);
        if (prev) addRouting(prediction, prev, E);
        else
          for (const lab of labels) {
            priors.add(prediction, lab);
            priors.add(prediction, m.conditioning.nullLabel);
          }
      }
      const evals = states.map(nextEval);
      const t0 = performance.now();
      residency.beginTick(prediction);
      const res = await engine.forward(evals.map((e, i) => ({ x: e.x, t: e.t, label: labels[i]!, guidance: GUIDANCE })));
      residency.endTick();
      stepMs.push(performance.now() - t0);
      prev = res.routing.map((r) => r.experts);
      states = states.map((st, i) => advance(st, res.velocities[i]!).state);
    }
  }

  return {
    manifest: m,
    expertBytes: sizeOf(0),
    async run(config, steps, seed) {
      if (config.mainThread) {
        const stepMs: number[] = [];
        const none = createResidency({ device: nullDevice, layers: L, experts: E, sizeOf });
        await serve(createEngine({ parts: whole, maxBatchRows: Number.MAX_SAFE_INTEGER }), none, config.batch, steps, seed + 1000, false, []);
        await serve(createEngine({ parts: whole, maxBatchRows: Number.MAX_SAFE_INTEGER }), none, config.batch, steps, seed, false, stepMs);
        return { config, ticks: steps, stepMs, stats: none.stats() };
      }
      const device = createThreadExpertDevice({ dir, manifest: m });
      const budgetBytes = config.policy ? Math.floor(config.budgetFraction * L * E) * sizeOf(0) : undefined;
      const residency = createResidency({ device, layers: L, experts: E, sizeOf, budgetBytes, policy: config.policy ?? "lru" });
      try {
        await residency.setHeld(all);
        const engine = createEngine({ parts, executor: createBatchedExecutor(D, (l, ex, off, x) => residency.runLayer(l, ex, off, x).then((y) => expertChunks(y, off, D))), maxBatchRows: Number.MAX_SAFE_INTEGER });
        const predictive = config.policy === "predictive";
        await serve(engine, residency, config.batch, steps, seed + 1000, predictive, []); // warm-up set
        const before = residency.stats();
        const stepMs: number[] = [];
        await serve(engine, residency, config.batch, steps, seed, predictive, stepMs);
        const after = residency.stats();
        const stats = Object.fromEntries(
          Object.entries(after).map(([k, v]) => [k, typeof v === "number" && !["budgetBytes", "residentBytes", "residentExperts", "heldExperts"].includes(k) ? v - (before[k as keyof CacheStats] as number) : v]),
        ) as unknown as CacheStats;
        return { config, ticks: steps, stepMs, stats };
      } finally {
        await residency.close();
      }
    },
    close: async () => {
      await parts.close();
      await whole.close();
    },
  };
}

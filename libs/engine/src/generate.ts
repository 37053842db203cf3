import type { ReuseState } from "./residual-reuse";
import { type SamplerState, gaussianNoise, initState, isDone } from "@switchyard/sampler";
import type { Engine } from "./engine";
import type { GenerateParams } from "@switchyard/manifest";

export interface GenerateProgress {
  /** Completed sampler steps (0..steps). */
  readonly step: number;
  readonly steps: number;
  readonly evals: number;
}

export interface GenerateResult {
  /** One [C*H*W] float32 image per requested image, values nominally in the model's valueRange. */
  readonly images: Float32Array[];
  readonly evals: number;
  /** With residual reuse: evaluations, over all images, that reused the cached residual. */
  readonly reusedEvals: number;
  readonly ms: number;
}

/** The initial noise of image `index` of a request: the same on every process. */
export function initialNoise(params: GenerateParams, index: number, size: number): Float32Array {
  return gaussianNoise(params.seed, index, size);
}

/** Runs one request to completion in-process (all its images share every forward). */
export async function generate(
  engine: Engine,
  params: GenerateParams,
  options: { onProgress?: (p: GenerateProgress) => void; noise?: Float32Array[] } = {},
): Promise<GenerateResult> {
  const m = engine.parts.manifest;
  const size = m.image.channels * m.image.height * m.image.width;
  const label = params.label ?? m.conditioning.nullLabel;
  const guidance = params.label === undefined ? 1 : params.guidance;
  let states: SamplerState[] = Array.from({ length: params.count }, (_, i) =>
    initState({ sampler: params.sampler, steps: params.steps, shift: params.shift }, options.noise?.[i] ?? initialNoise(params, i, size)),
  );
  const t0 = performance.now();
  const reuse: (ReuseState | undefined)[] = states.map(() => undefined);
  let reusedEvals = 0;
  while (!states.every(isDone)) {
    const interval = params.label === undefined ? undefined : params.guidanceInterval;
    const th = params.reuseThreshold;
    const res = await engine.step(states.map((state, i) => ({ state, label, guidance, ...(interval ? { guidanceInterval: interval } : {}), ...(th ? { reuse: { threshold: th, ...(reuse[i] ? { state: reuse[i] } : {}) } } : {}) })));
    states = res.map((r) => r.state);
    res.forEach((r, i) => {
      if (!r.reuse) return;
      if (r.reuse.reused) reusedEvals++;
      reuse[i] = r.reuse.state;
    });
    if (res[0]?.stepCompleted) options.onProgress?.({ step: states[0]!.step, steps: params.steps, evals: states[0]!.evals });
  }
  return { images: states.map((s) => s.x), evals: states[0]?.evals ?? 0, reusedEvals, ms: performance.now() - t0 };
}

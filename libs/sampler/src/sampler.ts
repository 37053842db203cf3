import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * Rectified-flow samplers as pure functions over per-image state.
 *
 * Glossary: a *step* is one sampler step from schedule[i] to schedule[i+1]; an *eval*
 * is one model call (velocity at (x, t)). The flow runs from t = 1 (noise) to t = 0.
 *
 *   euler  x <- x + dt*v(x, t)                                    1 eval / step
 *   heun   v1 = v(x, t); v2 = v(x + dt*v1, t'); x <- x + dt/2*(v1+v2)  2 evals / step
 *   pc     FlowTurbo-style pseudo corrector: heun, but v2 is reused as the next step's
 *          v1, so after the first step each step costs one eval (steps + 1 in all).
 *
 * Schedule: s_i = 1 - i/steps, shifted s' = shift*s / (1 + (shift-1)*s) (SD3).
 * Arithmetic mirrors the PyTorch reference in float32 (tools/model-zoo/switchyard_zoo/sampling.py).
 */
export const SAMPLERS = ["euler", "heun", "pc"] as const;
export type SamplerName = (typeof SAMPLERS)[number];

export interface SamplingParams {
  readonly sampler: SamplerName;
  /** Sampler steps, >= 1. */
  readonly steps: number;
  /** Timestep shift, > 0; 1 means the plain linear schedule. */
  readonly shift: number;
}

export interface SamplerState {
  readonly params: SamplingParams;
  /** Completed sampler steps, 0..steps. */
  readonly step: number;
  /** heun/pc: 1 when the corrector eval of this step is pending. */
  readonly stage: 0 | 1;
  /** Current sample, at time schedule[step]; flat [C*H*W]. */
  readonly x: Float32Array;
  /** heun/pc: predictor velocity at (x, schedule[step]) once known. */
  readonly v1: Float32Array | undefined;
  /** Model evaluations spent so far. */
  readonly evals: number;
}

/** Where the model must be evaluated next for this image. */
export interface EvalPoint {
  readonly x: Float32Array;
  readonly t: number;
}

export function sigmaAt(params: SamplingParams, i: number): number {
  const s = 1 - i / params.steps;
  return (params.shift * s) / (1 + (params.shift - 1) * s);
}

/** The whole shifted schedule (the timesteps of a run), steps + 1 values from 1 down to 0. */
export function timesteps(steps: number, shift = 1): number[] {
  const p: SamplingParams = { sampler: "euler", steps, shift };
  return Array.from({ length: steps + 1 }, (_, i) => sigmaAt(p, i));
}

/** Model evaluations a full run costs. */
export function evalsPerRun(params: SamplingParams): number {
  switch (params.sampler) {
    case "euler":
      return params.steps;
    case "heun":
      return 2 * params.steps;
    case "pc":
      return params.steps + 1;
  }
}

export function initState(params: SamplingParams, noise: Float32Array): SamplerState {
  if (!SAMPLERS.includes(params.sampler)) {
    throw new SwitchyardError(`sampler ${JSON.stringify(params.sampler)} must be one of ${SAMPLERS.join(", ")}`, Code.InvalidArgument, { field: "sampler" });
  }
  if (!Number.isInteger(params.steps) || params.steps < 1) {
    throw new SwitchyardError(`steps ${params.steps} must be an integer >= 1`, Code.InvalidArgument, { field: "steps" });
  }
  if (!(params.shift > 0)) {
    throw new SwitchyardError(`shift ${params.shift} must be > 0`, Code.InvalidArgument, { field: "shift" });
  }
  return { params, step: 0, stage: 0, x: Float32Array.from(noise), v1: undefined, evals: 0 };
}

export function isDone(s: SamplerState): boolean {
  return s.step >= s.params.steps;
}

/** Current time of the sample (schedule[step]). */
export function currentT(s: SamplerState): number {
  return sigmaAt(s.params, s.step);
}

/** x + dt*v in float32, as torch computes `x + dt * v` for a Python-float dt. */
function axpy(x: Float32Array, dt: number, v: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  const a = Math.fround(dt);
  for (let i = 0; i < x.length; i++) out[i] = (x[i] as number) + Math.fround(a * (v[i] as number));
  return out;
}

export function nextEval(s: SamplerState): EvalPoint {
  if (isDone(s)) throw new SwitchyardError("sampler: no eval left, the run is done", Code.FailedPrecondition);
  const t = sigmaAt(s.params, s.step);
  if (s.stage === 0) return { x: s.x, t };
  const tn = sigmaAt(s.params, s.step + 1);
  return { x: axpy(s.x, tn - t, s.v1 as Float32Array), t: tn };
}

export interface Advance {
  readonly state: SamplerState;
  /** True when this eval completed a sampler step (progress moves). */
  readonly stepCompleted: boolean;
}

/** Folds the velocity of the eval returned by nextEval() into the state. Pure. */
export function advance(s: SamplerState, v: Float32Array): Advance {
  if (v.length !== s.x.length) {
    throw new SwitchyardError(`sampler: velocity has ${v.length} values, sample has ${s.x.length}`, Code.InvalidArgument);
  }
  const t = sigmaAt(s.params, s.step);
  const tn = sigmaAt(s.params, s.step + 1);
  const dt = tn - t;
  const evals = s.evals + 1;
  if (s.params.sampler === "euler") {
    return { state: { ...s, x: axpy(s.x, dt, v), step: s.step + 1, evals }, stepCompleted: true };
  }
  if (s.stage === 0) {
    return { state: { ...s, stage: 1, v1: Float32Array.from(v), evals }, stepCompleted: false };
  }
  // Corrector: x + (dt*0.5) * (v1 + v2), float32 like the reference.
  const v1 = s.v1 as Float32Array;
  const h = Math.fround(dt * 0.5);
  const x = new Float32Array(s.x.length);
  for (let i = 0; i < x.length; i++) {
    const sum = Math.fround((v1[i] as number) + (v[i] as number));
    x[i] = (s.x[i] as number) + Math.fround(h * sum);
  }
  if (s.params.sampler === "heun") {
    return { state: { ...s, x, stage: 0, v1: undefined, step: s.step + 1, evals }, stepCompleted: true };
  }
  // pc: the corrector's velocity is reused as the next step's predictor velocity.
  return { state: { ...s, x, stage: 1, v1: Float32Array.from(v), step: s.step + 1, evals }, stepCompleted: true };
}

/** Classifier-free guidance: v_u + g*(v_c - v_u), float32, into `out`. */
export function combineGuidance(vc: Float32Array, vu: Float32Array, guidance: number, out = new Float32Array(vc.length)): Float32Array {
  const g = Math.fround(guidance);
  for (let i = 0; i < vc.length; i++) {
    const d = Math.fround((vc[i] as number) - (vu[i] as number));
    out[i] = (vu[i] as number) + Math.fround(g * d);
  }
  return out;
}

/**
 * The part of the trajectory where classifier-free guidance applies (Kynkäänniemi et al.,
 * arXiv 2404.07724): evaluations at t in [tMin, tMax] get the request's guidance, the
 * others one conditional row (guidance 1). Absent: the whole trajectory.
 */
export interface GuidanceInterval {
  readonly tMin: number;
  readonly tMax: number;
}

/** The guidance scale of an evaluation at t. Pure. */
export function guidanceAt(guidance: number, t: number, interval?: GuidanceInterval): number {
  return interval === undefined || (t >= interval.tMin && t <= interval.tMax) ? guidance : 1;
}

/** Evaluations of a whole run that are guided (take the unconditional row too). Pure. */
export function guidedEvals(params: SamplingParams, guidance: number, interval?: GuidanceInterval): number {
  if (!needsUnconditional(guidance)) return 0;
  let n = 0;
  let s = initState(params, new Float32Array(1));
  while (!isDone(s)) {
    if (needsUnconditional(guidanceAt(guidance, nextEvalT(s), interval))) n++;
    s = advance(s, new Float32Array(1)).state;
  }
  return n;
}

/** t of the evaluation nextEval() would return, without computing it. */
export function nextEvalT(s: SamplerState): number {
  return sigmaAt(s.params, s.stage === 0 ? s.step : s.step + 1);
}

/** Whether guidance needs the doubled (conditional + unconditional) batch. */
export function needsUnconditional(guidance: number): boolean {
  return guidance !== 1;
}

/** x̂0 preview: x_t - t*v (what the model currently thinks the clean image is). */
export function previewX0(x: Float32Array, t: number, v: Float32Array): Float32Array {
  return axpy(x, -t, v);
}

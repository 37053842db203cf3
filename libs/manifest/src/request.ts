import { z } from "zod";
import { intInRange, numberInRange, parseOrThrow } from "@switchyard/config";
import { Code, SwitchyardError } from "@switchyard/errors";
import type { Manifest } from "./manifest";
import { type GuidanceInterval, SAMPLERS, type SamplerName } from "@switchyard/sampler";

import { MAX_IMAGES_PER_REQUEST } from "@switchyard/contract";

export { MAX_IMAGES_PER_REQUEST };
/** Largest accepted guidance scale; beyond it samples saturate. */
export const MAX_GUIDANCE = 30;

/** What a generation asks for, after defaults (from the model manifest) are applied. */
export interface GenerateParams {
  /** Class label, or undefined for unconditional. */
  readonly label: number | undefined;
  readonly count: number;
  readonly steps: number;
  readonly sampler: SamplerName;
  readonly guidance: number;
  readonly shift: number;
  readonly seed: number;
  /** Guidance only for t in [tMin, tMax] (guidance_t_min / guidance_t_max); undefined: every evaluation. */
  readonly guidanceInterval?: GuidanceInterval;
  /**
   * Residual reuse (reuse_threshold, > 0): an evaluation whose first block's residual is
   * within this (relative L1) of its forecast from the image's last two full evaluations
   * skips the later blocks and adds their residual, forecast the same way. undefined (or
   * 0): every evaluation is full.
   */
  readonly reuseThreshold?: number;
}

/** Largest accepted reuse_threshold: past it the first block may have changed completely. */
export const MAX_REUSE_THRESHOLD = 1;

/** The zod schema of generation parameters for a model (label range, step limits, defaults). */
export function generateParamsSchema(m: Manifest) {
  const s = m.sampling;
  return z.strictObject({
    label: intInRange(0, m.conditioning.numClasses - 1).optional(),
    count: intInRange(1, MAX_IMAGES_PER_REQUEST).default(1),
    steps: intInRange(1, s.maxSteps).default(s.defaultSteps),
    sampler: z.enum(SAMPLERS).default(s.defaultSampler),
    guidance: numberInRange(0, MAX_GUIDANCE).default(s.defaultGuidance),
    shift: numberInRange(0.01, 100).default(s.defaultShift),
    seed: intInRange(0, Number.MAX_SAFE_INTEGER).default(0),
    guidance_t_min: numberInRange(0, 1).optional(),
    guidance_t_max: numberInRange(0, 1).optional(),
    reuse_threshold: numberInRange(0, MAX_REUSE_THRESHOLD).optional(),
  });
}

/** guidance_t_min / guidance_t_max → the interval (either alone: the other end of [0, 1]); INVALID_ARGUMENT when empty. */
function intervalOf(tMin: number | undefined, tMax: number | undefined, prefix: readonly (string | number)[]): GuidanceInterval | undefined {
  if (tMin === undefined && tMax === undefined) return undefined;
  const lo = tMin ?? 0;
  const hi = tMax ?? 1;
  if (lo > hi) {
    const field = [...prefix, "guidance_t_min"].join(".");
    throw new SwitchyardError(`${field} ${lo} must be <= guidance_t_max ${hi} (guidance applies for t in [guidance_t_min, guidance_t_max])`, Code.InvalidArgument, { field });
  }
  return { tMin: lo, tMax: hi };
}

/** Raw → resolved generation parameters; INVALID_ARGUMENT naming the field (under `fieldPrefix`, e.g. ["parameters"]). */
export function resolveGenerateParams(raw: unknown, m: Manifest, fieldPrefix: readonly (string | number)[] = []): GenerateParams {
  const { guidance_t_min, guidance_t_max, reuse_threshold, ...p } = parseOrThrow(generateParamsSchema(m), raw ?? {}, { prefix: fieldPrefix });
  const interval = intervalOf(guidance_t_min, guidance_t_max, fieldPrefix);
  return { ...p, label: p.label, ...(interval ? { guidanceInterval: interval } : {}), ...(reuse_threshold ? { reuseThreshold: reuse_threshold } : {}) };
}

/**
 * Generation parameters in the form a request carries after the gateway resolved them:
 * `label` is what the model is conditioned on (its null label for an unconditional
 * request) and `guidance` the scale applied (1 for an unconditional request).
 */
export interface ResolvedGenerateParams {
  readonly label: number;
  readonly conditional: boolean;
  readonly count: number;
  readonly steps: number;
  readonly sampler: string;
  readonly guidance: number;
  readonly shift: number;
  readonly seed: number;
  readonly guidanceInterval?: GuidanceInterval;
  /** Residual reuse threshold, in (0, MAX_REUSE_THRESHOLD]; absent: off. */
  readonly reuseThreshold?: number;
}

/** Resolved parameters → the form a request carries (done once, at the gateway). */
export function toResolvedParams(p: GenerateParams, m: Manifest): ResolvedGenerateParams & { readonly sampler: SamplerName } {
  const conditional = p.label !== undefined;
  // An interval only matters where there is guidance; without it the message is as before.
  const interval = conditional && p.guidance !== 1 ? p.guidanceInterval : undefined;
  return {
    label: p.label ?? m.conditioning.nullLabel, conditional, count: p.count, steps: p.steps, sampler: p.sampler, guidance: conditional ? p.guidance : 1, shift: p.shift, seed: p.seed,
    ...(interval ? { guidanceInterval: interval } : {}),
    ...(p.reuseThreshold ? { reuseThreshold: p.reuseThreshold } : {}),
  };
}

/**
 * Checks carried parameters against the model (what a scheduler does with a request it
 * did not resolve itself: the bus may carry a request from someone other than a
 * gateway); INVALID_ARGUMENT naming the field. Nothing is defaulted or rewritten.
 */
export function checkResolvedParams(p: ResolvedGenerateParams, m: Manifest): ResolvedGenerateParams & { readonly sampler: SamplerName } {
  const { label: _label, conditional: _conditional, guidanceInterval, reuseThreshold, ...rest } = p;
  const checked = parseOrThrow(generateParamsSchema(m).omit({ label: true, guidance_t_min: true, guidance_t_max: true, reuse_threshold: true }), rest, { prefix: ["params"] });
  if (reuseThreshold !== undefined && !(reuseThreshold > 0 && reuseThreshold <= MAX_REUSE_THRESHOLD)) {
    const field = "params.reuseThreshold";
    throw new SwitchyardError(`${field} ${reuseThreshold} must be > 0 and <= ${MAX_REUSE_THRESHOLD}`, Code.InvalidArgument, { field });
  }
  if (guidanceInterval && !(guidanceInterval.tMin >= 0 && guidanceInterval.tMin <= guidanceInterval.tMax && guidanceInterval.tMax <= 1)) {
    const field = "params.guidanceInterval";
    throw new SwitchyardError(`${field} [${guidanceInterval.tMin}, ${guidanceInterval.tMax}] must satisfy 0 <= tMin <= tMax <= 1`, Code.InvalidArgument, { field });
  }
  const nullLabel = m.conditioning.nullLabel;
  if (p.conditional ? !(p.label >= 0 && p.label < m.conditioning.numClasses) : p.label !== nullLabel) {
    const field = "params.label";
    throw new SwitchyardError(
      `${field} ${p.label} must be ${p.conditional ? `in [0, ${m.conditioning.numClasses - 1}] for a conditional request` : `the null label ${nullLabel} for an unconditional request`}`,
      Code.InvalidArgument,
      { field },
    );
  }
  if (!p.conditional && p.guidance !== 1) throw new SwitchyardError(`params.guidance ${p.guidance} must be 1 for an unconditional request`, Code.InvalidArgument, { field: "params.guidance" });
  return { ...checked, label: p.label, conditional: p.conditional, ...(guidanceInterval ? { guidanceInterval } : {}), ...(reuseThreshold !== undefined ? { reuseThreshold } : {}) };
}

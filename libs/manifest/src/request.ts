import { z } from "zod";
import { intInRange, numberInRange, parseOrThrow } from "@switchyard/config";
import { Code, SwitchyardError } from "@switchyard/errors";
import type { Manifest } from "./manifest";
import { SAMPLERS, type SamplerName } from "@switchyard/sampler";

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
}

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
  });
}

/** Raw → resolved generation parameters; INVALID_ARGUMENT naming the field (under `fieldPrefix`, e.g. ["parameters"]). */
export function resolveGenerateParams(raw: unknown, m: Manifest, fieldPrefix: readonly (string | number)[] = []): GenerateParams {
  const p = parseOrThrow(generateParamsSchema(m), raw ?? {}, { prefix: fieldPrefix });
  return { ...p, label: p.label };
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
}

/** Resolved parameters → the form a request carries (done once, at the gateway). */
export function toResolvedParams(p: GenerateParams, m: Manifest): ResolvedGenerateParams & { readonly sampler: SamplerName } {
  const conditional = p.label !== undefined;
  return { label: p.label ?? m.conditioning.nullLabel, conditional, count: p.count, steps: p.steps, sampler: p.sampler, guidance: conditional ? p.guidance : 1, shift: p.shift, seed: p.seed };
}

/**
 * Checks carried parameters against the model (what a scheduler does with a request it
 * did not resolve itself: the bus may carry a request from someone other than a
 * gateway); INVALID_ARGUMENT naming the field. Nothing is defaulted or rewritten.
 */
export function checkResolvedParams(p: ResolvedGenerateParams, m: Manifest): ResolvedGenerateParams & { readonly sampler: SamplerName } {
  const { label: _label, conditional: _conditional, ...rest } = p;
  const checked = parseOrThrow(generateParamsSchema(m).omit({ label: true }), rest, { prefix: ["params"] });
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
  return { ...checked, label: p.label, conditional: p.conditional };
}

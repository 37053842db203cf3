import { z } from "zod";
import { intInRange, numberInRange, parseOrThrow } from "@switchyard/config";
import type { Manifest } from "./manifest";
import { SAMPLERS, type SamplerName } from "@switchyard/sampler";

/** Most images one request may ask for. */
export const MAX_IMAGES_PER_REQUEST = 256;
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

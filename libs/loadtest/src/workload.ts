import { readFileSync } from "node:fs";
import { z } from "zod";
import { intInRange, numberInRange, parseOrThrow } from "@switchyard/config";
import { Code, SwitchyardError } from "@switchyard/errors";
import { createRng } from "./arrivals";

/**
 * What each request asks for: weighted request classes (a workload file), or a trace
 * to replay (JSONL, one request per line with its offset). Seeded, so two runs send the
 * same requests in the same order.
 */
export const SAMPLERS = ["euler", "heun", "pc"] as const;

const sloSchema = z.strictObject({
  /** End-to-end latency bound, ms. */
  totalMs: numberInRange(1, 3_600_000).optional(),
  /** Bound on time to the first progress event, ms. */
  firstProgressMs: numberInRange(1, 3_600_000).optional(),
  /** Or: k × the class's unloaded total latency, measured in warm-up. */
  factor: numberInRange(1, 1000).optional(),
});
export type Slo = z.output<typeof sloSchema>;

export const requestClassSchema = z.strictObject({
  name: z.string().min(1).max(64),
  weight: numberInRange(0, 1e6).default(1),
  steps: intInRange(1, 1000).default(20),
  count: intInRange(1, 64).default(1),
  /** Unset: the model's default (as a client that does not send it gets). */
  sampler: z.enum(SAMPLERS).optional(),
  guidance: numberInRange(0, 100).optional(),
  /** Guidance only for t in [guidanceTMin, guidanceTMax] (either alone: the other end of [0, 1]); unset: the whole trajectory. */
  guidanceTMin: numberInRange(0, 1).optional(),
  guidanceTMax: numberInRange(0, 1).optional(),
  /** Residual reuse threshold, (0, 1]; unset: off. */
  reuseThreshold: numberInRange(0, 1).optional(),
  /** A class label, or "random" (uniform over 0…9). */
  label: z.union([intInRange(0, 1_000_000), z.literal("random")]).default("random"),
  priority: intInRange(0, 9).default(0),
  previewInterval: intInRange(0, 1000).default(0),
  /** Per-request deadline sent with the request, ms; unset = none. */
  deadlineMs: intInRange(1, 3_600_000).optional(),
  slo: sloSchema.optional(),
});
export type RequestClass = z.output<typeof requestClassSchema>;

export const workloadSchema = z.strictObject({
  classes: z.array(requestClassSchema).min(1),
});
export type Workload = z.output<typeof workloadSchema>;

/** One request, ready to send. */
export interface RequestSpec {
  readonly className: string;
  readonly steps: number;
  readonly count: number;
  readonly sampler?: (typeof SAMPLERS)[number];
  readonly guidance?: number;
  readonly guidanceTMin?: number;
  readonly guidanceTMax?: number;
  readonly reuseThreshold?: number;
  readonly label: number;
  readonly priority: number;
  readonly previewInterval: number;
  readonly seed: number;
  readonly deadlineMs?: number;
}

export function parseWorkload(raw: unknown, what = "workload"): Workload {
  const w = parseOrThrow(workloadSchema, raw, { what });
  if (w.classes.every((c) => c.weight === 0)) throw new SwitchyardError(`${what}: every class has weight 0`, Code.InvalidArgument, { field: "classes" });
  const names = new Set<string>();
  for (const c of w.classes) {
    if (names.has(c.name)) throw new SwitchyardError(`${what}: class name ${JSON.stringify(c.name)} is used twice`, Code.InvalidArgument, { field: "classes.name" });
    names.add(c.name);
  }
  return w;
}

export function loadWorkload(path: string): Workload {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new SwitchyardError(`workload ${path}: ${(e as Error).message}`, Code.InvalidArgument, { field: "workload" });
  }
  return parseWorkload(raw, `workload ${path}`);
}

/** A request generator over weighted classes. */
export function requestStream(w: Workload, seed = 1): () => RequestSpec {
  const rng = createRng(seed ^ 0x5bd1e995);
  const total = w.classes.reduce((s, c) => s + c.weight, 0);
  let n = 0;
  return () => {
    let r = rng() * total;
    let c = w.classes[w.classes.length - 1]!;
    for (const k of w.classes) {
      if ((r -= k.weight) < 0) {
        c = k;
        break;
      }
    }
    n++;
    return specOf(c, c.label === "random" ? Math.floor(rng() * 10) : c.label, (seed * 1_000_003 + n) >>> 0);
  };
}

export function specOf(c: RequestClass, label: number, seed: number): RequestSpec {
  return {
    className: c.name, steps: c.steps, count: c.count, label,
    ...(c.sampler !== undefined ? { sampler: c.sampler } : {}), ...(c.guidance !== undefined ? { guidance: c.guidance } : {}),
    ...(c.guidanceTMin !== undefined ? { guidanceTMin: c.guidanceTMin } : {}), ...(c.guidanceTMax !== undefined ? { guidanceTMax: c.guidanceTMax } : {}),
    ...(c.reuseThreshold ? { reuseThreshold: c.reuseThreshold } : {}),
    priority: c.priority, previewInterval: c.previewInterval, seed, ...(c.deadlineMs !== undefined ? { deadlineMs: c.deadlineMs } : {}),
  };
}

const traceLineSchema = requestClassSchema.omit({ name: true, weight: true, slo: true, label: true }).extend({
  offsetMs: numberInRange(0, 86_400_000),
  class: z.string().min(1).max(64).default("trace"),
  label: intInRange(0, 1_000_000).default(0),
  seed: intInRange(0, 2 ** 32 - 1).optional(),
});

/** A trace: one JSON object per line, `{"offsetMs": 0, "steps": 20, "count": 2, "label": 3, …}`. */
export function parseTrace(text: string, what = "trace"): { offsetMs: number; spec: RequestSpec }[] {
  const out: { offsetMs: number; spec: RequestSpec }[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (e) {
      throw new SwitchyardError(`${what} line ${i + 1}: ${(e as Error).message}`, Code.InvalidArgument, { field: "trace" });
    }
    const t = parseOrThrow(traceLineSchema, raw, { what: `${what} line ${i + 1}` });
    out.push({ offsetMs: t.offsetMs, spec: specOf({ ...t, name: t.class, weight: 1 }, t.label, t.seed ?? i + 1) });
  });
  return out.sort((a, b) => a.offsetMs - b.offsetMs);
}

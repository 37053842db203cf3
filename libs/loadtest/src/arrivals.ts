import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * Open-loop arrival schedules, computed ahead of the run: offsets (ms) of every
 * request's **intended** send time. Latencies are measured from these, so a client or
 * server stall shows in the percentiles instead of silently thinning the load
 * (coordinated omission).
 */
export type ArrivalKind = "constant" | "poisson" | "gamma";
export const ARRIVAL_KINDS: readonly ArrivalKind[] = ["constant", "poisson", "gamma"];

export interface ArrivalOptions {
  readonly kind: ArrivalKind;
  /** Requests per second. */
  readonly rate: number;
  /** Schedule length, seconds. */
  readonly durationS: number;
  /**
   * Gamma only: the shape of the inter-arrival distribution (vLLM's "burstiness").
   * 1 = Poisson; < 1 burstier (coefficient of variation 1/√burstiness); > 1 more regular.
   */
  readonly burstiness?: number;
  readonly seed?: number;
  /** Cap on the number of arrivals. */
  readonly maxRequests?: number;
}

/** A small, fast, seeded PRNG (mulberry32): uniform in [0, 1). */
export function createRng(seed = 1): () => number {
  let a = seed >>> 0 || 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normal(rng: () => number): number {
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Gamma(shape, 1) by Marsaglia and Tsang (shape < 1 boosted by U^(1/shape)). */
export function gammaSample(rng: () => number, shape: number): number {
  if (shape < 1) return gammaSample(rng, shape + 1) * Math.pow(1 - rng(), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

export function arrivalSchedule(o: ArrivalOptions): number[] {
  if (!(o.rate > 0) || !Number.isFinite(o.rate)) throw new SwitchyardError(`rate ${o.rate} must be a number > 0 (requests per second)`, Code.InvalidArgument, { field: "rate" });
  if (!(o.durationS > 0)) throw new SwitchyardError(`duration ${o.durationS} must be > 0 seconds`, Code.InvalidArgument, { field: "duration" });
  const shape = o.kind === "poisson" ? 1 : (o.burstiness ?? 1);
  if (o.kind === "gamma" && !(shape > 0)) throw new SwitchyardError(`burstiness ${shape} must be > 0 (1 = Poisson, < 1 burstier)`, Code.InvalidArgument, { field: "burstiness" });
  if (!ARRIVAL_KINDS.includes(o.kind)) throw new SwitchyardError(`arrival ${JSON.stringify(o.kind)} is not one of ${ARRIVAL_KINDS.join(", ")}`, Code.InvalidArgument, { field: "arrival" });
  const rng = createRng(o.seed ?? 1);
  const meanMs = 1000 / o.rate;
  const endMs = o.durationS * 1000;
  const max = o.maxRequests ?? Number.POSITIVE_INFINITY;
  const out: number[] = [];
  // The first request goes at 0; each next one after a gap of the chosen distribution.
  for (let t = 0; t < endMs && out.length < max; ) {
    out.push(t);
    t += o.kind === "constant" ? meanMs : (gammaSample(rng, shape) / shape) * meanMs;
  }
  return out;
}

/** Mean rate (per second) and coefficient of variation of the gaps of a schedule. */
export function scheduleStats(offsetsMs: readonly number[]): { rate: number; cv: number } {
  const gaps = offsetsMs.slice(1).map((t, i) => t - offsetsMs[i]!);
  const mean = gaps.reduce((s, g) => s + g, 0) / gaps.length;
  const sd = Math.sqrt(gaps.reduce((s, g) => s + (g - mean) ** 2, 0) / gaps.length);
  return { rate: 1000 / mean, cv: sd / mean };
}

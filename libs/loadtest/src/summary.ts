import { z } from "zod";
import { type Percentiles, createHistogram, percentiles, recordMs } from "./histogram";
import type { RequestRecord, RunHistograms } from "./runner";
import type { Slo } from "./workload";

/**
 * The figures of a run, from its records: throughput, latency percentiles, errors by
 * status, per-class SLO attainment and goodput, measurement windows and their
 * stability. `summary.json` holds exactly this (`SUMMARY_FORMAT`, `summarySchema`).
 */
export const SUMMARY_FORMAT = "switchyard-loadtest/v1";

export interface ClassSlo extends Slo {
  /** The class's unloaded total latency measured in warm-up (for `factor`), ms. */
  readonly unloadedMs?: number;
}

export interface SummaryInput {
  readonly records: readonly RequestRecord[];
  readonly histograms: RunHistograms;
  /** Length of the measured interval (duration − warm-up − cool-down), s. */
  readonly measuredS: number;
  readonly slos: Readonly<Record<string, ClassSlo>>;
  readonly windowS: number;
  /** Stability: the last 3 windows' throughput and p50 within this many % of their mean. */
  readonly stabilityPct: number;
}

const pctSchema = z.object({ count: z.number(), min: z.number(), mean: z.number(), max: z.number(), p50: z.number(), p90: z.number(), p95: z.number(), p99: z.number(), "p99.9": z.number() });
const throughputSchema = z.object({ requestsPerS: z.number(), imagesPerS: z.number(), imageStepsPerS: z.number() });
export const summarySchema = z.object({
  format: z.literal(SUMMARY_FORMAT),
  run: z.record(z.string(), z.unknown()),
  startedAt: z.string(),
  durationS: z.number(),
  measuredS: z.number(),
  interrupted: z.boolean(),
  requests: z.object({ sent: z.number(), measured: z.number(), ok: z.number(), failed: z.number() }),
  errors: z.record(z.string(), z.number()),
  throughput: throughputSchema,
  goodput: throughputSchema.extend({ attainment: z.number() }),
  latencyMs: z.object({ total: pctSchema, accepted: pctSchema, firstProgress: pctSchema, interStep: pctSchema, clientQueue: pctSchema }),
  classes: z.record(z.string(), z.object({ requests: z.number(), ok: z.number(), slo: z.record(z.string(), z.number()).optional(), attainment: z.number(), goodputPerS: z.number(), latencyMs: pctSchema })),
  windows: z.array(z.object({ startS: z.number(), requestsPerS: z.number(), p50Ms: z.number() })),
  stable: z.boolean(),
  server: z.record(z.string(), z.unknown()).optional(),
});
export type Summary = z.output<typeof summarySchema>;

/** Does an ok request meet its class's SLO? (No SLO: every ok request does.) */
export function meetsSlo(r: RequestRecord, slo: ClassSlo | undefined): boolean {
  if (r.status !== "ok") return false;
  if (!slo) return true;
  const total = r.doneMs - r.intendedMs;
  const bound = Math.min(slo.totalMs ?? Infinity, slo.factor !== undefined && slo.unloadedMs !== undefined ? slo.factor * slo.unloadedMs : Infinity);
  if (total > bound) return false;
  if (slo.firstProgressMs !== undefined && (r.firstProgressMs === undefined || r.firstProgressMs - r.intendedMs > slo.firstProgressMs)) return false;
  return true;
}

export function summarize(input: SummaryInput, run: Record<string, unknown>, meta: { startedAt: string; durationMs: number; interrupted: boolean }): Summary {
  const measured = input.records.filter((r) => r.measured);
  const ok = measured.filter((r) => r.status === "ok");
  const errors: Record<string, number> = {};
  for (const r of measured) if (r.status !== "ok") errors[r.status] = (errors[r.status] ?? 0) + 1;
  const S = Math.max(1e-9, input.measuredS);
  const rate = (rs: readonly RequestRecord[]) => ({
    requestsPerS: rs.length / S,
    imagesPerS: rs.reduce((s, r) => s + r.images, 0) / S,
    imageStepsPerS: rs.reduce((s, r) => s + r.images * r.steps, 0) / S,
  });
  const good = measured.filter((r) => meetsSlo(r, input.slos[r.className]));
  const classes: Summary["classes"] = {};
  for (const name of [...new Set(measured.map((r) => r.className))].sort()) {
    const rs = measured.filter((r) => r.className === name);
    const h = createHistogram();
    for (const r of rs) if (r.status === "ok") recordMs(h, r.doneMs - r.intendedMs);
    const slo = input.slos[name];
    const met = rs.filter((r) => meetsSlo(r, slo)).length;
    classes[name] = {
      requests: rs.length, ok: rs.filter((r) => r.status === "ok").length,
      ...(slo ? { slo: Object.fromEntries(Object.entries(slo).filter(([, v]) => v !== undefined)) as Record<string, number> } : {}),
      attainment: rs.length ? met / rs.length : 0, goodputPerS: met / S, latencyMs: percentiles(h),
    };
  }
  const windows = measurementWindows(measured, input.windowS);
  return {
    format: SUMMARY_FORMAT,
    run,
    startedAt: meta.startedAt,
    durationS: meta.durationMs / 1000,
    measuredS: input.measuredS,
    interrupted: meta.interrupted,
    requests: { sent: input.records.length, measured: measured.length, ok: ok.length, failed: measured.length - ok.length },
    errors,
    throughput: rate(ok),
    goodput: { ...rate(good), attainment: measured.length ? good.length / measured.length : 0 },
    latencyMs: {
      total: percentiles(input.histograms.total), accepted: percentiles(input.histograms.accepted), firstProgress: percentiles(input.histograms.firstProgress),
      interStep: percentiles(input.histograms.interStep), clientQueue: percentiles(input.histograms.clientQueue),
    },
    classes,
    windows,
    stable: isStable(windows, input.stabilityPct),
  };
}

/** Measured requests bucketed by intended start: completions per second and p50 per window. */
export function measurementWindows(measured: readonly RequestRecord[], windowS: number): { startS: number; requestsPerS: number; p50Ms: number }[] {
  if (measured.length === 0) return [];
  const w = windowS * 1000;
  const first = measured.reduce((m, r) => Math.min(m, r.intendedMs), Infinity);
  const byWindow = new Map<number, RequestRecord[]>();
  for (const r of measured) {
    const k = Math.floor((r.intendedMs - first) / w);
    byWindow.set(k, [...(byWindow.get(k) ?? []), r]);
  }
  const last = [...byWindow.keys()].reduce((m, k) => Math.max(m, k), 0);
  const out: { startS: number; requestsPerS: number; p50Ms: number }[] = [];
  for (let k = 0; k <= last; k++) {
    const rs = (byWindow.get(k) ?? []).filter((r) => r.status === "ok");
    const h = createHistogram();
    for (const r of rs) recordMs(h, r.doneMs - r.intendedMs);
    out.push({ startS: (first + k * w) / 1000, requestsPerS: rs.length / windowS, p50Ms: percentiles(h).p50 });
  }
  return out;
}

/** perf_analyzer's criterion: the last 3 windows' throughput and latency each within ±pct % of their mean. */
export function isStable(windows: readonly { requestsPerS: number; p50Ms: number }[], pct: number): boolean {
  if (windows.length < 3) return false;
  const last = windows.slice(-3);
  const within = (xs: number[]) => {
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    return mean > 0 && xs.every((x) => Math.abs(x - mean) <= (pct / 100) * mean);
  };
  return within(last.map((w) => w.requestsPerS)) && within(last.map((w) => w.p50Ms));
}

export type { Percentiles };

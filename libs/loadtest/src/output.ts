import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RequestRecord } from "./runner";
import type { Summary } from "./summary";

/** requests.csv: one row per request (times relative to the run's start, ms). */
export const REQUESTS_CSV_COLUMNS = [
  "index", "class", "status", "images", "steps", "intended_ms", "sent_ms", "client_queue_ms", "accepted_ms", "first_progress_ms", "done_ms",
  "latency_ms", "time_to_accepted_ms", "time_to_first_progress_ms", "mean_inter_step_ms", "progress_events", "measured", "message",
] as const;

const csvCell = (v: unknown) => {
  if (v === undefined || v === null) return "";
  const s = typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export function requestsCsv(records: readonly RequestRecord[]): string {
  const rows = records.map((r) =>
    [
      r.index, r.className, r.status, r.images, r.steps, r.intendedMs, r.sentMs, r.sentMs - r.intendedMs, r.acceptedMs, r.firstProgressMs, r.doneMs,
      r.doneMs - r.intendedMs, r.acceptedMs !== undefined ? r.acceptedMs - r.intendedMs : undefined,
      r.firstProgressMs !== undefined ? r.firstProgressMs - r.intendedMs : undefined, r.meanInterStepMs, r.progressEvents, r.measured ? 1 : 0, r.message,
    ].map(csvCell).join(","),
  );
  return [REQUESTS_CSV_COLUMNS.join(","), ...rows].join("\n") + "\n";
}

export interface SecondRow {
  readonly second: number;
  readonly sent: number;
  readonly completed: number;
  readonly errors: number;
  readonly inflight: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** Per second of the run: sent, completed, errors, in flight at its end, latency of what completed in it. */
export function timeSeries(records: readonly RequestRecord[], durationMs: number): SecondRow[] {
  const n = Math.max(1, Math.ceil(records.reduce((m, r) => Math.max(m, r.doneMs), durationMs) / 1000));
  // One pass over the requests: what was sent and what completed in each second, and the
  // seconds each was in flight at the end of ([sent second, done second)).
  const sent = new Array<number>(n).fill(0);
  const inflight = new Array<number>(n + 1).fill(0); // differences
  const done: RequestRecord[][] = Array.from({ length: n }, () => []);
  for (const r of records) {
    const a = Math.min(n, Math.floor(r.sentMs / 1000));
    const b = Math.min(n, Math.floor(r.doneMs / 1000));
    if (a < n) sent[a]!++;
    if (b < n) done[b]!.push(r);
    inflight[a]!++;
    inflight[b]!--;
  }
  const rows: SecondRow[] = [];
  let open = 0;
  for (let s = 0; s < n; s++) {
    open += inflight[s]!;
    const lat = done[s]!.filter((r) => r.status === "ok").map((r) => r.doneMs - r.intendedMs).sort((x, y) => x - y);
    const q = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! : 0);
    rows.push({ second: s, sent: sent[s]!, completed: done[s]!.length, errors: done[s]!.filter((r) => r.status !== "ok").length, inflight: open, p50Ms: q(0.5), p99Ms: q(0.99) });
  }
  return rows;
}

export function timeSeriesCsv(rows: readonly SecondRow[]): string {
  return ["second,sent,completed,errors,inflight,p50_ms,p99_ms", ...rows.map((r) => [r.second, r.sent, r.completed, r.errors, r.inflight, r.p50Ms, r.p99Ms].map(csvCell).join(","))].join("\n") + "\n";
}

/** perf_analyzer's -f CSV columns (latencies in µs), one row per load level of a sweep. */
export const PERF_ANALYZER_COLUMNS = ["Concurrency", "Request Rate", "Inferences/Second", "Client Send", "p50 latency", "p90 latency", "p95 latency", "p99 latency", "Avg latency", "Goodput/Second", "SLO Attainment"] as const;

export function sweepCsv(levels: readonly { concurrency?: number; rate?: number; summary: Summary }[]): string {
  const us = (ms: number) => Math.round(ms * 1000);
  const rows = levels.map(({ concurrency, rate, summary: s }) =>
    [concurrency ?? "", rate ?? "", s.throughput.imagesPerS, us(s.latencyMs.clientQueue.mean), us(s.latencyMs.total.p50), us(s.latencyMs.total.p90), us(s.latencyMs.total.p95), us(s.latencyMs.total.p99), us(s.latencyMs.total.mean), s.goodput.imagesPerS, s.goodput.attainment].map(csvCell).join(","),
  );
  return [PERF_ANALYZER_COLUMNS.join(","), ...rows].join("\n") + "\n";
}

export function writeRunFiles(dir: string, summary: Summary, records: readonly RequestRecord[], durationMs: number): SecondRow[] {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  writeFileSync(join(dir, "requests.csv"), requestsCsv(records));
  const ts = timeSeries(records, durationMs);
  writeFileSync(join(dir, "timeseries.csv"), timeSeriesCsv(ts));
  return ts;
}

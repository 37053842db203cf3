import type { Summary } from "./summary";

/**
 * Per-figure deltas between two runs, with a noise tolerance: a change within
 * `tolerancePct` of A's figure reads "same"; otherwise "better" or "worse" by the
 * figure's direction.
 */
export interface Delta {
  readonly figure: string;
  readonly a: number;
  readonly b: number;
  /** (b − a) / a, %. */
  readonly deltaPct: number;
  readonly verdict: "better" | "worse" | "same";
}

const FIGURES: [string, (s: Summary) => number, "higher" | "lower"][] = [
  ["throughput requests/s", (s) => s.throughput.requestsPerS, "higher"],
  ["throughput images/s", (s) => s.throughput.imagesPerS, "higher"],
  ["goodput images/s", (s) => s.goodput.imagesPerS, "higher"],
  ["SLO attainment", (s) => s.goodput.attainment, "higher"],
  ["latency p50 ms", (s) => s.latencyMs.total.p50, "lower"],
  ["latency p90 ms", (s) => s.latencyMs.total.p90, "lower"],
  ["latency p99 ms", (s) => s.latencyMs.total.p99, "lower"],
  ["time to first progress p50 ms", (s) => s.latencyMs.firstProgress.p50, "lower"],
  ["inter-step p50 ms", (s) => s.latencyMs.interStep.p50, "lower"],
  ["failed requests", (s) => s.requests.failed, "lower"],
];

export function compareSummaries(a: Summary, b: Summary, tolerancePct = 5): Delta[] {
  return FIGURES.map(([figure, f, dir]) => {
    const x = f(a);
    const y = f(b);
    const deltaPct = x === 0 ? (y === 0 ? 0 : Infinity * Math.sign(y)) : ((y - x) / Math.abs(x)) * 100;
    const same = Math.abs(deltaPct) <= tolerancePct || (x === 0 && y === 0);
    const up = y > x;
    return { figure, a: x, b: y, deltaPct, verdict: same ? "same" : (up === (dir === "higher") ? "better" : "worse") };
  });
}

export function formatDeltas(ds: readonly Delta[], names: [string, string], tolerancePct: number): string {
  const w = Math.max(...ds.map((d) => d.figure.length));
  const num = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3));
  const lines = [`${"figure".padEnd(w)}  ${names[0].padStart(10)}  ${names[1].padStart(10)}  ${"delta".padStart(8)}  verdict (tolerance ±${tolerancePct}%)`];
  for (const d of ds) lines.push(`${d.figure.padEnd(w)}  ${num(d.a).padStart(10)}  ${num(d.b).padStart(10)}  ${(Number.isFinite(d.deltaPct) ? `${d.deltaPct >= 0 ? "+" : ""}${d.deltaPct.toFixed(1)}%` : "n/a").padStart(8)}  ${d.verdict}`);
  return lines.join("\n");
}

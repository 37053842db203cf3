import * as hdr from "hdr-histogram-js";

/**
 * Latency histograms (HdrHistogram, 3 significant digits, 1 µs to 1 h), recorded in
 * microseconds and reported in milliseconds. Histograms from several load processes
 * merge exactly (`merge`, or through `encode`/`decode`).
 */
export type Histogram = hdr.Histogram;

export const PERCENTILES = [50, 90, 95, 99, 99.9] as const;

export interface Percentiles {
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly max: number;
  readonly p50: number;
  readonly p90: number;
  readonly p95: number;
  readonly p99: number;
  readonly "p99.9": number;
}

export function createHistogram(): Histogram {
  return hdr.build({ bitBucketSize: 64, autoResize: true, lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

export function recordMs(h: Histogram, ms: number): void {
  h.recordValue(Math.max(1, Math.round(ms * 1000)));
}

export function percentiles(h: Histogram): Percentiles {
  const n = h.totalCount;
  // A percentile is its bucket's highest equivalent value, which may pass the largest value recorded.
  const ms = (us: number) => Math.round(Math.min(us, h.maxValue)) / 1000;
  return {
    count: n,
    min: n ? ms(h.minNonZeroValue) : 0,
    mean: n ? Math.round(h.mean) / 1000 : 0,
    max: n ? ms(h.maxValue) : 0,
    p50: n ? ms(h.getValueAtPercentile(50)) : 0,
    p90: n ? ms(h.getValueAtPercentile(90)) : 0,
    p95: n ? ms(h.getValueAtPercentile(95)) : 0,
    p99: n ? ms(h.getValueAtPercentile(99)) : 0,
    "p99.9": n ? ms(h.getValueAtPercentile(99.9)) : 0,
  };
}

/** Adds every histogram into a new one. */
export function merge(hs: readonly Histogram[]): Histogram {
  const out = createHistogram();
  for (const h of hs) out.add(h);
  return out;
}

export function encode(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decode(s: string): Histogram {
  const h = hdr.decodeFromCompressedBase64(s, 64, false);
  const out = createHistogram();
  out.add(h);
  return out;
}

/** Points of the latency CDF (ms, fraction ≤), for charts. */
export function cdf(h: Histogram, points = 200): { ms: number; fraction: number }[] {
  if (h.totalCount === 0) return [];
  const out: { ms: number; fraction: number }[] = [];
  for (let i = 0; i <= points; i++) {
    // Denser towards the tail: percentiles 0 … 99.99 on a log scale of (100 - p).
    const p = 100 - 100 * Math.pow(10, (-4 * i) / points);
    out.push({ ms: h.getValueAtPercentile(Math.max(0.0001, p)) / 1000, fraction: p / 100 });
  }
  return out;
}

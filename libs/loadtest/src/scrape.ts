/**
 * The server's side: its Prometheus /metrics scraped before, every second during, and
 * after the run, summarized beside the client's figures (queue depth, tick rows,
 * per-worker bytes, cache hits).
 */
export type Sample = ReadonlyMap<string, number>;

/** Prometheus text exposition → series ("name{labels}") → value. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (m && Number.isFinite(Number(m[2]))) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

const nameOf = (series: string) => series.replace(/\{.*$/, "");

export interface ServerFigures {
  readonly url: string;
  readonly scrapes: number;
  readonly failedScrapes: number;
  /** Gauges during the run, summed over label sets per sample: mean and max. */
  readonly gauges: Record<string, { mean: number; max: number }>;
  /** Counters: after − before, summed over label sets, and per series. */
  readonly counters: Record<string, number>;
  readonly series: Record<string, number>;
}

export function serverFigures(url: string, before: Sample | undefined, during: readonly Sample[], after: Sample | undefined, failedScrapes: number): ServerFigures {
  const gauges: Record<string, { mean: number; max: number }> = {};
  const GAUGE = /(_requests|_rows|_ms|_workers|_bytes|_experts)$/;
  const names = new Set(during.flatMap((s) => [...s.keys()].map(nameOf)));
  for (const n of [...names].filter((n) => !n.endsWith("_total") && GAUGE.test(n)).sort()) {
    const sums = during.map((s) => [...s].filter(([k]) => nameOf(k) === n).reduce((a, [, v]) => a + v, 0));
    gauges[n] = { mean: sums.reduce((a, b) => a + b, 0) / Math.max(1, sums.length), max: Math.max(...sums) };
  }
  const counters: Record<string, number> = {};
  const series: Record<string, number> = {};
  if (before && after) {
    for (const [k, v] of after) {
      if (!nameOf(k).endsWith("_total")) continue;
      const d = v - (before.get(k) ?? 0);
      series[k] = d;
      counters[nameOf(k)] = (counters[nameOf(k)] ?? 0) + d;
    }
  }
  return { url, scrapes: during.length + (before ? 1 : 0) + (after ? 1 : 0), failedScrapes, gauges, counters, series };
}

/** Scrapes `url` now and every `intervalMs` until stopped. */
export function startScraper(url: string, options: { intervalMs?: number; token?: string } = {}) {
  const during: Sample[] = [];
  let failed = 0;
  const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  const scrape = async (): Promise<Sample | undefined> => {
    try {
      const r = await fetch(url, { headers, signal: AbortSignal.timeout(2000) });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return parseMetrics(await r.text());
    } catch {
      failed++;
      return undefined;
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const beforeP = scrape();
  return {
    before: beforeP,
    start() {
      timer = setInterval(() => void scrape().then((s) => s && during.push(s)), options.intervalMs ?? 1000);
    },
    async stop(): Promise<ServerFigures> {
      clearInterval(timer);
      const after = await scrape();
      return serverFigures(url, await beforeP, during, after, failed);
    },
  };
}

import { describe, expect, it } from "vitest";
import { compareSummaries } from "./compare";
import { recordMs } from "./histogram";
import { REQUESTS_CSV_COLUMNS, requestsCsv, sweepCsv, timeSeries } from "./output";
import { type RequestRecord, emptyHistograms } from "./runner";
import { parseMetrics, serverFigures } from "./scrape";
import { SUMMARY_FORMAT, isStable, meetsSlo, summarize, summarySchema } from "./summary";
import { caught } from "@switchyard/errors/testing";
import { parseTrace, parseWorkload } from "./workload";

const rec = (i: number, cls: string, intendedMs: number, latencyMs: number, status = "ok", firstProgress = 50): RequestRecord => ({
  index: i, className: cls, steps: 10, images: status === "ok" ? 2 : 0, intendedMs, sentMs: intendedMs + 1, acceptedMs: intendedMs + 5, firstProgressMs: intendedMs + firstProgress,
  doneMs: intendedMs + latencyMs, progressEvents: 10, meanInterStepMs: 20, status, message: status === "ok" ? undefined : "boom, \"quoted\"", measured: true,
});

function summaryOf(records: RequestRecord[], slos = {}) {
  const h = emptyHistograms();
  for (const r of records) if (r.status === "ok") recordMs(h.total, r.doneMs - r.intendedMs);
  return summarize({ records, histograms: h, measuredS: 10, slos, windowS: 2, stabilityPct: 10 }, { mode: "test" }, { startedAt: new Date(0).toISOString(), durationMs: 10_000, interrupted: false });
}

describe("SLOs and goodput", () => {
  it("count a request as good only when it succeeded within every bound of its class", () => {
    const slo = { totalMs: 1000, firstProgressMs: 100 };
    expect(meetsSlo(rec(0, "a", 0, 999), slo)).toBe(true);
    expect(meetsSlo(rec(0, "a", 0, 1001), slo)).toBe(false);
    expect(meetsSlo(rec(0, "a", 0, 500, "ok", 150), slo)).toBe(false);
    expect(meetsSlo(rec(0, "a", 0, 10, "unavailable"), slo)).toBe(false);
    // k × the unloaded latency
    expect(meetsSlo(rec(0, "a", 0, 1400), { factor: 3, unloadedMs: 500 })).toBe(true);
    expect(meetsSlo(rec(0, "a", 0, 1600), { factor: 3, unloadedMs: 500 })).toBe(false);
    expect(meetsSlo(rec(0, "a", 0, 1400), undefined)).toBe(true);
  });

  it("give attainment and goodput per class and overall", () => {
    // class a: 10 requests, 8 within 1 s; class b: 10 requests, 2 failed, no SLO.
    const records = [
      ...Array.from({ length: 10 }, (_, i) => rec(i, "a", i * 1000, i < 8 ? 500 : 1500)),
      ...Array.from({ length: 10 }, (_, i) => rec(10 + i, "b", i * 1000, 300, i < 2 ? "resource_exhausted" : "ok")),
    ];
    const s = summaryOf(records, { a: { totalMs: 1000 } });
    expect(s.classes.a).toMatchObject({ requests: 10, ok: 10, attainment: 0.8, goodputPerS: 0.8 });
    expect(s.classes.b).toMatchObject({ requests: 10, ok: 8, attainment: 0.8, goodputPerS: 0.8 });
    expect(s.goodput.attainment).toBeCloseTo(16 / 20);
    expect(s.goodput.requestsPerS).toBeCloseTo(1.6);
    expect(s.goodput.imagesPerS).toBeCloseTo(3.2);
    expect(s.throughput.requestsPerS).toBeCloseTo(1.8);
    expect(s.throughput.imageStepsPerS).toBeCloseTo(36);
    expect(s.errors).toEqual({ resource_exhausted: 2 });
    expect(s.requests).toEqual({ sent: 20, measured: 20, ok: 18, failed: 2 });
  });

  it("call a run stable when its last 3 windows agree within the tolerance", () => {
    expect(isStable([{ requestsPerS: 1, p50Ms: 1 }, { requestsPerS: 10, p50Ms: 100 }, { requestsPerS: 10.4, p50Ms: 104 }, { requestsPerS: 9.8, p50Ms: 98 }], 10)).toBe(true);
    expect(isStable([{ requestsPerS: 10, p50Ms: 100 }, { requestsPerS: 10, p50Ms: 100 }, { requestsPerS: 14, p50Ms: 100 }], 10)).toBe(false);
    expect(isStable([{ requestsPerS: 10, p50Ms: 100 }, { requestsPerS: 10, p50Ms: 100 }], 10)).toBe(false);
  });
});

describe("output formats", () => {
  it("summary.json follows its versioned schema and survives a round trip", () => {
    const s = summaryOf([rec(0, "a", 0, 100), rec(1, "a", 500, 200)]);
    expect(s.format).toBe(SUMMARY_FORMAT);
    expect(summarySchema.parse(JSON.parse(JSON.stringify(s)))).toEqual(s);
    expect(() => summarySchema.parse({ ...s, format: "other/v0" })).toThrow();
  });

  it("requests.csv has one row per request under a fixed header; cells are quoted where needed", () => {
    const csv = requestsCsv([rec(0, "a", 0, 100), rec(1, "a", 10, 100, "unavailable")]);
    const lines = csv.trim().split("\n");
    expect(lines[0]).toBe(REQUESTS_CSV_COLUMNS.join(","));
    expect(lines).toHaveLength(3);
    expect(lines[2]).toContain('"boom, ""quoted"""');
    const cols = lines[1]!.split(",");
    expect(cols[REQUESTS_CSV_COLUMNS.indexOf("latency_ms")]).toBe("100");
  });

  it("sweep.csv uses perf_analyzer's column names, latencies in µs", () => {
    const s = summaryOf([rec(0, "a", 0, 100), rec(1, "a", 500, 200)]);
    const csv = sweepCsv([{ concurrency: 2, summary: s }]).trim().split("\n");
    expect(csv[0]).toMatch(/^Concurrency,Request Rate,Inferences\/Second,Client Send,p50 latency,p90 latency,p95 latency,p99 latency,Avg latency/);
    expect(csv[1]!.split(",")[4]).toBe(String(Math.round(s.latencyMs.total.p50 * 1000)));
  });

  it("the time series counts per second", () => {
    const ts = timeSeries([rec(0, "a", 0, 100), rec(1, "a", 200, 1000), rec(2, "a", 1500, 100, "unavailable")], 2000);
    expect(ts.map((r) => [r.second, r.sent, r.completed, r.errors])).toEqual([[0, 2, 1, 0], [1, 1, 2, 1]]);
  });

  it("compare: per-figure deltas with a noise tolerance and the figure's direction", () => {
    const a = summaryOf(Array.from({ length: 10 }, (_, i) => rec(i, "a", i * 1000, 500)));
    const b = summaryOf(Array.from({ length: 10 }, (_, i) => rec(i, "a", i * 1000, i < 9 ? 520 : 900)));
    const d = Object.fromEntries(compareSummaries(a, b, 5).map((x) => [x.figure, x]));
    expect(d["latency p50 ms"]!.verdict).toBe("same");
    expect(d["latency p99 ms"]!.verdict).toBe("worse");
    expect(d["throughput requests/s"]!.verdict).toBe("same");
    const c = Object.fromEntries(compareSummaries(b, a, 5).map((x) => [x.figure, x]));
    expect(c["latency p99 ms"]!.verdict).toBe("better");
  });

  it("server figures: Prometheus text parsed, gauges averaged, counters differenced", () => {
    const m = (q: number, ticks: number) => parseMetrics(`# HELP x\nswitchyard_scheduler_queued_requests{group="g0"} ${q}\nswitchyard_scheduler_queued_requests{group="g1"} 1\nswitchyard_scheduler_ticks_total{group="g0"} ${ticks}\n`);
    const f = serverFigures("u", m(0, 10), [m(2, 11), m(4, 12)], m(0, 30), 0);
    expect(f.gauges.switchyard_scheduler_queued_requests).toEqual({ mean: 4, max: 5 });
    expect(f.counters.switchyard_scheduler_ticks_total).toBe(20);
  });
});

describe("workloads and traces", () => {
  it("refuse bad files naming the field", () => {
    expect(caught(() => parseWorkload({ classes: [{ name: "a", steps: 0 }] })).rawMessage).toMatch(/classes\[0\]\.steps/);
    expect(caught(() => parseWorkload({ classes: [{ name: "a", bogus: 1 }] })).rawMessage).toMatch(/bogus/);
    expect(caught(() => parseWorkload({ classes: [{ name: "a" }, { name: "a" }] })).rawMessage).toMatch(/"a" is used twice/);
    expect(caught(() => parseTrace('{"offsetMs": 0}\n{"offsetMs": -1}')).rawMessage).toMatch(/line 2.*offsetMs/);
    expect(parseTrace('{"offsetMs": 500, "steps": 4}\n\n{"offsetMs": 0, "label": 3, "count": 2}').map((t) => [t.offsetMs, t.spec.steps, t.spec.label, t.spec.count])).toEqual([[0, 20, 3, 2], [500, 4, 0, 1]]);
  });
});

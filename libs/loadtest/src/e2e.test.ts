import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EmbeddedCluster, startEmbeddedCluster } from "@switchyard/cluster";
import { BUNDLED_MODEL_DIR } from "@switchyard/model";
import { REQUESTS_CSV_COLUMNS } from "./output";
import { runLoadtestCommand } from "./command";
import { summarySchema } from "./summary";

/** `switchyard loadtest` end to end, against an embedded cluster over a real gRPC socket. */
let cluster: EmbeddedCluster;
let dir: string;
const lines: string[] = [];
const log = (m: string) => lines.push(m);

beforeAll(async () => {
  cluster = await startEmbeddedCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, port: 0, metricsPort: 0 });
  dir = mkdtempSync(join(tmpdir(), "loadtest-"));
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const read = (d: string) => summarySchema.parse(JSON.parse(readFileSync(join(d, "summary.json"), "utf8")));

describe("switchyard loadtest", () => {
  it("run: an open-loop Poisson load over native Generate writes summary, requests, time series and charts, with server figures", async () => {
    const out = join(dir, "native");
    await runLoadtestCommand({ server: cluster.address, rate: 4, duration: 4, steps: 4, count: 2, "reuse-threshold": 0.15, "slo-total-ms": 5000, metrics: `http://127.0.0.1:${cluster.gateway.metricsPort}/metrics`, out, quiet: true }, ["run"], log);
    const s = read(out);
    expect(s.run).toMatchObject({ mode: "open", rate: 4, arrival: "poisson", protocol: "native" });
    expect(s.requests.ok).toBeGreaterThan(5);
    expect(s.requests.failed).toBe(0);
    expect(s.throughput.imagesPerS).toBeCloseTo(2 * s.throughput.requestsPerS, 5);
    expect(s.latencyMs.total.p50).toBeGreaterThan(0);
    expect(s.latencyMs.accepted.count).toBe(s.requests.ok);
    expect(s.latencyMs.firstProgress.p50).toBeLessThanOrEqual(s.latencyMs.total.p50);
    expect(s.latencyMs.interStep.count).toBeGreaterThan(0);
    expect(s.goodput.attainment).toBeGreaterThan(0);
    const server = s.server as { counters: Record<string, number>; gauges: Record<string, unknown> };
    expect(server.counters.switchyard_scheduler_ticks_total).toBeGreaterThan(0);
    expect(server.counters.switchyard_requests_total).toBe(s.requests.sent);
    const csv = readFileSync(join(out, "requests.csv"), "utf8").trim().split("\n");
    expect(csv[0]).toBe(REQUESTS_CSV_COLUMNS.join(","));
    expect(csv).toHaveLength(s.requests.sent + 1);
    for (const f of ["timeseries.csv", "latency-cdf.png", "latency-cdf.svg", "timeseries.png", "timeseries.svg"]) expect(existsSync(join(out, f)), f).toBe(true);
    expect(readFileSync(join(out, "latency-cdf.png")).subarray(1, 4).toString()).toBe("PNG");
    expect(lines.join("\n")).toMatch(/throughput: [\d.]+ req\/s/);
  }, 60_000);

  it("run: a closed-loop KServe load (ModelInfer and ModelStreamInfer), and compare", async () => {
    for (const protocol of ["kserve", "kserve-stream"]) {
      const out = join(dir, protocol);
      // the compute-skipping parameters (#18) ride KServe's request parameters
      await runLoadtestCommand({ server: cluster.address, concurrency: 2, duration: 3, steps: 4, protocol, "reuse-threshold": 0.2, "guidance-t-min": 0.3, metrics: "off", out, quiet: true, "no-charts": true }, ["run"], log);
      const s = read(out);
      expect(s.run).toMatchObject({ mode: "closed", concurrency: 2, protocol });
      expect(s.requests.ok).toBeGreaterThan(3);
      expect(s.requests.failed).toBe(0);
    }
    lines.length = 0;
    await runLoadtestCommand({ tolerance: 5 }, ["compare", join(dir, "kserve"), join(dir, "kserve-stream")], log);
    expect(lines[0]).toMatch(/^figure +kserve +kserve-str +delta +verdict/);
    expect(lines.join("\n")).toMatch(/latency p50 ms +[\d.]+ +[\d.]+ +[-+][\d.]+% +(same|better|worse)/);
  }, 60_000);

  it("sweep: concurrencies 1 and 2 into sweep.csv and charts", async () => {
    const out = join(dir, "sweep");
    await runLoadtestCommand({ server: cluster.address, concurrencies: "1,2", duration: 2, steps: 2, metrics: "off", out, quiet: true }, ["sweep"], log);
    const csv = readFileSync(join(out, "sweep.csv"), "utf8").trim().split("\n");
    expect(csv).toHaveLength(3);
    expect(csv[1]!.startsWith("1,")).toBe(true);
    for (const f of ["latency-vs-load.png", "throughput-vs-load.png", "latency-cdf.png", "concurrency-1/summary.json", "concurrency-2/summary.json"]) expect(existsSync(join(out, f)), f).toBe(true);
  }, 60_000);

  it("sweep --search-rate: the highest rate meeting the SLO (the top of the range when all meet it, none when nothing does)", async () => {
    const out = join(dir, "search");
    await runLoadtestCommand({ server: cluster.address, "search-rate": "1:3", "slo-total-ms": 600_000, "search-steps": 1, duration: 1.5, steps: 2, metrics: "off", out, quiet: true, "no-charts": true }, ["sweep"], log);
    const found = JSON.parse(readFileSync(join(out, "search.json"), "utf8")) as { highestRateMeetingSlo: number; levels: { rate: number }[] };
    expect(found.highestRateMeetingSlo).toBe(3);
    expect(found.levels.map((l) => l.rate)).toEqual([1, 3]);
    const none = join(dir, "search-none");
    await runLoadtestCommand({ server: cluster.address, "search-rate": "1:3", "slo-total-ms": 1, "search-steps": 1, duration: 1.5, steps: 2, metrics: "off", out: none, quiet: true }, ["sweep"], log);
    expect((JSON.parse(readFileSync(join(none, "search.json"), "utf8")) as { highestRateMeetingSlo: number }).highestRateMeetingSlo).toBe(0);
  }, 60_000);

  it("refuses bad flags naming them", async () => {
    await expect(runLoadtestCommand({ server: cluster.address, "search-rate": "5:1", out: dir }, ["sweep"], log)).rejects.toThrow(/--search-rate 5:1 must be LO:HI with HI > LO/);
    await expect(runLoadtestCommand({ server: cluster.address, out: dir }, ["run"], log)).rejects.toThrow(/give exactly one of --rate R/);
    await expect(runLoadtestCommand({ server: cluster.address, rate: 1, protocol: "http", out: dir }, ["run"], log)).rejects.toThrow(/--protocol "http" must be one of native, kserve, kserve-stream/);
    await expect(runLoadtestCommand({ server: cluster.address, rate: -2, out: dir }, ["run"], log)).rejects.toThrow(/--rate -2 must be a number >= 0.001/);
    await expect(runLoadtestCommand({ rate: 1, out: dir }, ["run"], log)).rejects.toThrow(/--server HOST:PORT is required/);
    await expect(runLoadtestCommand({}, ["bench"], log)).rejects.toThrow(/"bench" is not a subcommand: run, sweep or compare/);
  });
});

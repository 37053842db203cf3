import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@switchyard/client";
import { natsServerAvailable } from "@switchyard/bus/testing";
import { BUNDLED_MODEL_DIR } from "@switchyard/model";
import { type ProcessCluster, startProcessCluster } from "./processes";

/**
 * Every service is the source of its own Prometheus figures (#15): the gateway, the
 * scheduler and each worker serve /metrics, which Prometheus' reference text parser
 * (the Python prometheus_client's) reads, with the histograms operators need.
 */
const REQUIRED = process.env.SWITCHYARD_ECOSYSTEM_REQUIRED === "1";
const haveParser = spawnSync("python3", ["-c", "import prometheus_client.parser"]).status === 0;
if (REQUIRED && !haveParser) throw new Error("python3 prometheus_client is required (SWITCHYARD_ECOSYSTEM_REQUIRED=1): run bash .ci/install-tools.sh");

interface Family {
  type: string;
  samples: [string, Record<string, string>, number][];
}

/** Parses exposition text with prometheus_client.parser.text_string_to_metric_families. */
function parse(text: string): Record<string, Family> {
  const py = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))`;
  const r = spawnSync("python3", ["-c", py], { input: text, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`the Prometheus parser refused the text: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, Family>;
}

/** A histogram's observation count, summed over its label sets. */
const count = (f: Family | undefined) => (f?.samples ?? []).filter(([n]) => n.endsWith("_count")).reduce((a, [, , v]) => a + v, 0);

describe.skipIf(!natsServerAvailable() || !haveParser)("every service's /metrics and logs (processes)", () => {
  let c: ProcessCluster;
  const ports: Record<string, number> = {};
  beforeAll(async () => {
    c = await startProcessCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, subjectPrefix: `m${process.pid}`, env: { SWITCHYARD_DENSE_THREADS: "1", SWITCHYARD_LOG_FORMAT: "json" } });
    for (const p of [c.scheduler, ...c.workers]) ports[p.name] = Number((await p.waitFor(/metrics on \S+:(\d+)\/metrics/))[1]);
    const client = createClient({ address: c.address });
    await Promise.all([client.generateImages({ label: 1, count: 2, steps: 4, seed: 1, requestId: "metrics-test-1" }), client.generateImages({ label: 2, count: 1, steps: 4, seed: 2, previewInterval: 2 })]);
    client.close();
  }, 120_000);
  afterAll(async () => c?.stop());

  const scrape = async (port: number) => parse(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());

  it("gateway: request latency histograms (to accepted, to first progress, total, queue) by protocol and outcome", async () => {
    const f = await scrape(c.metricsPort);
    for (const n of ["switchyard_request_time_to_accepted_seconds", "switchyard_request_time_to_first_progress_seconds", "switchyard_request_duration_seconds", "switchyard_request_queue_time_seconds"]) {
      expect(f[n]?.type, n).toBe("histogram");
      expect(count(f[n]), n).toBeGreaterThanOrEqual(2);
    }
    expect(f.switchyard_request_duration_seconds!.samples.some(([, l]) => l.protocol === "native" && l.outcome === "ok" && l.service === "gateway")).toBe(true);
    expect(f.switchyard_gateway_requests?.samples.find(([n, l]) => n === "switchyard_gateway_requests_total" && l.outcome === "ok")?.[2]).toBe(2);
    // The hand-kept counters keep their meaning beside them.
    expect(f.switchyard_request_success?.samples[0]?.[2]).toBe(2);
    expect(f.process_cpu_seconds?.type).toBe("counter");
  });

  it("scheduler: tick duration by rows, queue time and request duration, from the scheduler itself", async () => {
    const f = await scrape(ports.scheduler!);
    for (const n of ["switchyard_scheduler_tick_duration_seconds", "switchyard_scheduler_queue_time_seconds", "switchyard_scheduler_request_duration_seconds"]) expect(f[n]?.type, n).toBe("histogram");
    expect(count(f.switchyard_scheduler_tick_duration_seconds)).toBeGreaterThanOrEqual(4); // 4 steps, both requests batched
    expect(count(f.switchyard_scheduler_queue_time_seconds)).toBe(2);
    const rows = new Set(f.switchyard_scheduler_tick_duration_seconds!.samples.map(([, l]) => l.rows).filter(Boolean));
    for (const r of rows) expect(r).toMatch(/^(1|2|4|8|16|32|64|128|256|512\+)$/);
    expect(f.switchyard_scheduler_requests?.samples.find(([, l]) => l.outcome === "ok")?.[2]).toBe(2);
    expect(f.switchyard_scheduler_pending_requests?.samples[0]?.[1]).toMatchObject({ service: "scheduler", group: "default" });
  });

  it("workers: RunTick duration, per-layer exchange time on both sides, traffic totals", async () => {
    for (const w of ["worker-0", "worker-1"]) {
      const f = await scrape(ports[w]!);
      expect(f.switchyard_worker_tick_duration_seconds?.type).toBe("histogram");
      expect(count(f.switchyard_worker_tick_duration_seconds)).toBeGreaterThan(0);
      const ex = f.switchyard_worker_exchange_duration_seconds!;
      expect(ex.type).toBe("histogram");
      for (const side of ["client", "server"]) expect(ex.samples.some(([n, l, v]) => n.endsWith("_count") && l.side === side && v > 0), `${w} ${side}`).toBe(true);
      expect(f.switchyard_worker_bytes_sent?.samples[0]?.[2]).toBeGreaterThan(0);
      expect(f.switchyard_worker_tick_duration_seconds!.samples[0]![1]).toMatchObject({ service: "worker", worker: w, group: "default" });
    }
  });

  it("logs JSON lines with the service and its identity; the scheduler's access log carries the request id", async () => {
    for (const p of [c.gateway, c.scheduler, ...c.workers]) {
      const lines = p.output().filter((l) => l.startsWith("{"));
      expect(lines.length, p.name).toBeGreaterThan(0);
      for (const l of lines) {
        const o = JSON.parse(l) as Record<string, unknown>;
        expect(o).toMatchObject({ level: expect.any(String), time: expect.any(String), msg: expect.any(String) });
        expect(o.service).toBe(p.name.replace(/-\d+$/, "").replace(/^worker$/, "worker"));
        if (o.service === "worker") expect(o.worker).toBe(p.name);
      }
    }
    for (let i = 0; i < 20 && !c.scheduler.output().some((l) => l.includes("metrics-test-1")); i++) await new Promise((r) => setTimeout(r, 100));
    const access = c.scheduler.output().map((l) => JSON.parse(l) as Record<string, unknown>).find((o) => o.requestId === "metrics-test-1");
    expect(access).toMatchObject({ msg: "request finished", outcome: "ok", images: 2, steps: 4, service: "scheduler", group: "default" });
    expect(access!.totalMs).toBeGreaterThan(0);
  });
});

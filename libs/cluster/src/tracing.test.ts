import { randomBytes } from "node:crypto";
import { type Server, createServer } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@switchyard/client";
import { natsServerAvailable } from "@switchyard/bus/testing";
import { BUNDLED_MODEL_DIR } from "@switchyard/model";
import { type ProcessCluster, startProcessCluster } from "./processes";

/**
 * One request's trace across processes (#15): the client's traceparent → the gateway →
 * the NATS submit → the scheduler's request, queue and tick spans → RunTick on both
 * workers → their per-layer Exchange calls. Every service exports OTLP over HTTP to a
 * receiver in this test (what an OpenTelemetry collector would be).
 */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  service: string;
  /** The process's worker id (resource attribute), for worker spans. */
  worker?: string;
  attributes: Record<string, unknown>;
}

describe.skipIf(!natsServerAvailable())("OpenTelemetry tracing (processes)", () => {
  let c: ProcessCluster;
  let receiver: Server;
  const spans: OtlpSpan[] = [];
  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString("utf8")));
      req.on("end", () => {
        const j = JSON.parse(body) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: (Omit<OtlpSpan, "service" | "attributes"> & { attributes?: { key: string; value: Record<string, unknown> }[] })[] }[] }[] };
        for (const rs of j.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "?";
          const worker = rs.resource.attributes.find((a) => a.key === "switchyard.worker")?.value.stringValue;
          for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, service, ...(worker ? { worker } : {}), attributes: Object.fromEntries((s.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]])) });
        }
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
    const endpoint = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
    c = await startProcessCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, subjectPrefix: `tr${process.pid}`, env: { SWITCHYARD_DENSE_THREADS: "1", SWITCHYARD_OTLP_ENDPOINT: endpoint } });
  }, 120_000);
  afterAll(async () => {
    await c?.stop();
    receiver?.close();
  });

  it("gives one request one trace through gateway, scheduler and both workers, with correct parents", async () => {
    const traceId = randomBytes(16).toString("hex");
    const rootSpan = randomBytes(8).toString("hex");
    const client = createClient({ address: c.address });
    await client.generateImages({ label: 4, count: 1, steps: 3, seed: 3 }, { traceparent: `00-${traceId}-${rootSpan}-01` });
    client.close();
    const mine = () => spans.filter((s) => s.traceId === traceId);
    const want = ["gateway.Generate", "scheduler.request", "scheduler.queue", "scheduler.tick", "worker.RunTick", "worker.Exchange"];
    for (let i = 0; i < 100 && !(want.every((n) => mine().some((s) => s.name === n)) && mine().some((s) => s.name === "gateway.Generate")); i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1200)); // the last batches
    const t = mine();
    const byId = new Map(t.map((s) => [s.spanId, s]));
    const one = (name: string) => t.find((s) => s.name === name)!;
    for (const n of want) expect(t.some((s) => s.name === n), n).toBe(true);
    expect(one("gateway.Generate")).toMatchObject({ parentSpanId: rootSpan, service: "switchyard-gateway" });
    expect(byId.get(one("scheduler.request").parentSpanId!)?.name).toBe("gateway.Generate");
    expect(one("scheduler.request").service).toBe("switchyard-scheduler");
    expect(byId.get(one("scheduler.queue").parentSpanId!)?.name).toBe("scheduler.request");
    const ticks = t.filter((s) => s.name === "scheduler.tick");
    expect(ticks.length).toBe(3); // 3 steps, one tick each
    for (const tick of ticks) expect(byId.get(tick.parentSpanId!)?.name).toBe("scheduler.request");
    const runTicks = t.filter((s) => s.name === "worker.RunTick");
    expect(new Set(runTicks.map((s) => s.service))).toEqual(new Set(["switchyard-worker"]));
    expect(new Set(runTicks.map((s) => String(s.attributes["switchyard.tick"] ?? "")).filter(Boolean)).size).toBeGreaterThan(0);
    for (const rt of runTicks) expect(byId.get(rt.parentSpanId!)?.name).toBe("scheduler.tick");
    const exchanges = t.filter((s) => s.name === "worker.Exchange");
    for (const ex of exchanges) expect(byId.get(ex.parentSpanId!)?.name).toBe("worker.RunTick");
    // Both worker processes are in the trace: the home's RunTick, and the other's answers to its exchanges.
    expect(new Set([...runTicks, ...exchanges].map((s) => s.worker))).toEqual(new Set(["worker-0", "worker-1"]));
    expect(exchanges.some((ex) => ex.worker !== byId.get(ex.parentSpanId!)?.worker)).toBe(true);
    // The tree, as the note shows it.
    const ms = (s: OtlpSpan) => ((Number(BigInt(s.endTimeUnixNano) - BigInt(s.startTimeUnixNano)) / 1e6).toFixed(1));
    const lines: string[] = [];
    const walk = (s: OtlpSpan, depth: number) => {
      const kids = t.filter((k) => k.parentSpanId === s.spanId).sort((a, b) => Number(BigInt(a.startTimeUnixNano) - BigInt(b.startTimeUnixNano)));
      const ex = kids.filter((k) => k.name === "worker.Exchange");
      lines.push(`${"  ".repeat(depth)}${s.name} [${s.worker ?? s.service.replace("switchyard-", "")}${s.attributes["switchyard.layer"] !== undefined ? ` layer ${String(s.attributes["switchyard.layer"])}` : ""}] ${ms(s)} ms`);
      for (const k of kids.filter((k) => k.name !== "worker.Exchange")) walk(k, depth + 1);
      for (const w of [...new Set(ex.map((e) => e.worker))]) {
        const mineEx = ex.filter((e) => e.worker === w);
        lines.push(`${"  ".repeat(depth + 1)}worker.Exchange × ${mineEx.length} (one per layer) [${w}] ${mineEx.map(ms).join(", ")} ms`);
      }
    };
    walk(one("gateway.Generate"), 0);
    console.log(`trace ${traceId}:\n${lines.join("\n")}`);
  }, 60_000);
});

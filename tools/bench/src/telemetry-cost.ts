/**
 * What the instruments cost per call, measured in process with nothing else running
 * (the cluster-level bench:telemetry is noisier than the few-% goals): a worker's
 * RunTick and Exchange wrappers (histograms), the same inside a traced server span
 * (OpenTelemetry SDK with a batch processor, spans exported to a no-op exporter), and
 * the scheduler's per-tick observations — against a RunTick that does nothing. Printed
 * beside a real tick's time, taken from a 2-worker cluster's tick histogram.
 *
 *   node --import tsx tools/bench/src/telemetry-cost.ts [--calls 200000] [--tick-ms 100]
 */
import { parseArgs } from "node:util";
import { BatchSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { SpanKind, context, createServiceRegistry, inSpan, trace } from "@switchyard/telemetry";
import { createWorkerMetrics } from "@switchyard/worker/internal";
import { createSchedulerMetrics } from "@switchyard/scheduler/internal";
import type { ExchangeRequestMsg, TickRequestMsg } from "@switchyard/proto";

const { values: flags } = parseArgs({ options: { calls: { type: "string", default: "200000" }, "tick-ms": { type: "string", default: "100" }, layers: { type: "string", default: "6" } } });
const N = Number(flags.calls);
const tickMs = Number(flags["tick-ms"]);
const L = Number(flags.layers);

const empty = { velocities: new Float32Array(0), routing: new Int16Array(0), routingWeights: new Float32Array(0), denseMs: 0, expertMs: 0 };
const stats = { workerId: "w", ticks: 0, layers: [], expertRows: [] };
const runtime = { runTick: async () => empty, exchange: async () => ({ y: [] }), setExperts: async () => ({ loaded: 0, dropped: 0 }), stats: () => stats };
const req = { tick: 1, items: new Array(8), homes: ["w"], planVersion: 1, owners: [] } as unknown as TickRequestMsg;
const ex = { tick: 1, layer: 0, from: "w", homes: ["w"], rows: 8 } as unknown as ExchangeRequestMsg;

async function perCall(f: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 5000; i++) await f(); // warm
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await f();
  return ((performance.now() - t0) * 1000) / N; // µs
}

const bare = await perCall(() => runtime.runTick());
const w = createWorkerMetrics(createServiceRegistry("worker", {}, { processMetrics: false }));
const h = w.handler(runtime as never);
const peers = w.peers({ exchange: async () => ({ y: [] }) } as never);
const tickWrapped = (await perCall(() => h.runTick(req))) - bare;
const exchangeWrapped = (await perCall(() => h.exchange(ex))) - bare;
const clientWrapped = (await perCall(() => peers.exchange("p", ex))) - bare;
const s = createSchedulerMetrics(createServiceRegistry("scheduler", {}, { processMetrics: false }));
const schedTick = await perCall(async () => s.tick(0.1, 16, true));

// Tracing on: a real SDK pipeline whose exporter drops what it gets.
const provider = new TracerProvider({ spanProcessors: [new BatchSpanProcessor({ exporter: { export: (_s, cb) => cb({ code: 0 }), shutdown: async () => undefined } })] });
trace.setGlobalTracerProvider(provider);
const spanCost = (await perCall(() => inSpan("worker.RunTick", { kind: SpanKind.SERVER, parent: context.active() }, async () => empty))) - bare;
await provider.shutdown();

// Per tick of 2 workers: each home's RunTick, and per layer one exchange each way (client at the home, server at the owner).
const metricsPerTick = 2 * tickWrapped + L * 2 * (exchangeWrapped + clientWrapped) + schedTick;
const spansPerTick = 1 + 2 + L * 2; // tick, 2 RunTicks, one Exchange span per layer per home
const tracingPerTick = spansPerTick * spanCost;
console.log(`per call (µs, over a RunTick that does nothing, ${N} calls): RunTick wrapper ${tickWrapped.toFixed(2)}, Exchange (server) ${exchangeWrapped.toFixed(2)}, exchange (client) ${clientWrapped.toFixed(2)}, scheduler tick observation ${schedTick.toFixed(2)}, one span (SDK + batch processor) ${spanCost.toFixed(2)}`);
console.log(`per tick of 2 workers × ${L} layers: metrics ${metricsPerTick.toFixed(1)} µs, tracing ${spansPerTick} spans = ${tracingPerTick.toFixed(1)} µs`);
console.log(`against a ${tickMs} ms tick: metrics ${((metricsPerTick / 1000 / tickMs) * 100).toFixed(3)} % (goal < 2 %), metrics + tracing ${(((metricsPerTick + tracingPerTick) / 1000 / tickMs) * 100).toFixed(3)} % (goal < 5 %)`);

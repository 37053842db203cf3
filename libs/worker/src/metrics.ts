import type { ExchangeRequestMsg, ExchangeResponseMsg, PeerClient, TickRequestMsg, TickResponseMsg } from "@switchyard/proto";
import { Counter, FAST_BUCKETS_SECONDS, Gauge, Histogram, type Registry, rowsBucket, trace } from "@switchyard/telemetry";
import type { WorkerStats } from "./runtime";

/**
 * A worker's own Prometheus figures: RunTick duration by rows, per-layer exchange time
 * (as a home waits for an owner, and as an owner answers), expert-load stall per tick,
 * and its traffic totals. Applied by wrapping the runtime and its peer client, so the
 * runtime itself stays free of metrics.
 */
export interface WorkerMetrics {
  /** Times every exchange this worker sends as a home (wrap the peer client before the runtime gets it). */
  peers(peers: PeerClient): PeerClient;
  /** Times RunTick, answers to exchanges and expert-load stall; reads traffic totals from `runtime.stats()`. */
  handler<H extends Handler>(runtime: H): Handler;
}

interface Handler {
  runTick(req: TickRequestMsg): Promise<TickResponseMsg>;
  exchange(req: ExchangeRequestMsg): Promise<ExchangeResponseMsg>;
  setExperts(globalIds: readonly number[]): Promise<{ loaded: number; dropped: number }>;
  stats(): WorkerStats;
}

export function createWorkerMetrics(registry: Registry): WorkerMetrics {
  const tick = new Histogram({ name: "switchyard_worker_tick_duration_seconds", help: "RunTick on this worker (its images' dense parts and every layer's exchange), by images it was home to (power-of-two bucket)", labelNames: ["images"], buckets: [...FAST_BUCKETS_SECONDS.filter((b) => b >= 0.001), 5, 10], registers: [registry] });
  const exchange = new Histogram({ name: "switchyard_worker_exchange_duration_seconds", help: "One layer's row exchange: as a home, the round trip to an owner (side=client); as an owner, answering a home (side=server)", labelNames: ["side"], buckets: FAST_BUCKETS_SECONDS, registers: [registry] });
  const stall = new Histogram({ name: "switchyard_worker_expert_load_stall_seconds", help: "Time a tick's compute waited for expert loads (expert device under a budget)", buckets: FAST_BUCKETS_SECONDS, registers: [registry] });
  const timed = async <T>(observe: (s: number) => void, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      observe((performance.now() - t0) / 1000);
    }
  };
  return {
    peers: (peers) => ({ exchange: (peer, req) => timed((s) => exchange.observe({ side: "client" }, s), () => peers.exchange(peer, req)) }),
    handler(runtime) {
      const totals: [string, string, (s: WorkerStats) => number][] = [
        ["switchyard_worker_ticks_total", "Ticks this worker was home in", (s) => s.ticks],
        ["switchyard_worker_bytes_sent_total", "Bytes sent to other workers", (s) => s.layers.reduce((a, l) => a + l.bytesSent, 0)],
        ["switchyard_worker_bytes_received_total", "Bytes received from other workers", (s) => s.layers.reduce((a, l) => a + l.bytesReceived, 0)],
        ["switchyard_worker_expert_rows_total", "Rows computed by this worker's experts", (s) => s.expertRows.reduce((a, n) => a + n, 0)],
      ];
      for (const [name, help, f] of totals) new Counter({ name, help, registers: [registry], collect() { this.reset(); this.inc(f(runtime.stats())); } });
      new Gauge({ name: "switchyard_worker_reuse_kept_bytes", help: "Residual-reuse states this worker made and keeps for the scheduler to name by tick (bounded by SWITCHYARD_REUSE_KEEP_BYTES)", registers: [registry], collect() { this.set(runtime.stats().reuseKept?.bytes ?? 0); } });
      new Gauge({ name: "switchyard_worker_expert_cache_hit_ratio", help: "Needed experts resident when their layer ran, since start (expert device only)", registers: [registry], collect() { const c = runtime.stats().cache; if (c && c.needed > 0) this.set(c.hits / c.needed); } });
      const stallMs = () => runtime.stats().cache?.stallMs;
      return {
        async runTick(req) {
          const s0 = stallMs();
          let stalled = 0;
          try {
            const r = await timed((s) => tick.observe({ images: rowsBucket(req.items.length) }, s), () => runtime.runTick(req));
            // Where the tick's time went, on its RunTick span (when tracing).
            trace.getActiveSpan()?.setAttributes({ "switchyard.dense_ms": r.denseMs, "switchyard.expert_ms": r.expertMs, "switchyard.images": req.items.length });
            return r;
          } finally {
            if (s0 !== undefined) {
              stalled = (stallMs() ?? s0) - s0;
              stall.observe(stalled / 1000);
              trace.getActiveSpan()?.setAttribute("switchyard.expert_load_stall_ms", stalled);
            }
          }
        },
        exchange: (req) => timed((s) => exchange.observe({ side: "server" }, s), () => runtime.exchange(req)),
        setExperts: (ids) => runtime.setExperts(ids),
        stats: () => runtime.stats(),
      };
    },
  };
}

import { Counter, FAST_BUCKETS_SECONDS, Gauge, Histogram, LATENCY_BUCKETS_SECONDS, type Registry, rowsBucket } from "@switchyard/telemetry";
import type { SchedulerStats } from "@switchyard/contract";

/** What the scheduler reports of itself (its own /metrics); a no-op when not given. */
export interface SchedulerMetrics {
  tick(seconds: number, rows: number, ok: boolean): void;
  /** A request's first tick: how long it queued. */
  started(queueSeconds: number): void;
  /** A request left: "ok" or its status ("deadline_exceeded", "canceled", …). */
  finished(outcome: string, seconds: number): void;
  bind(stats: () => SchedulerStats): void;
  /** Residual reuse in a tick: evaluations that reused, that ran full, and new states dropped over the memory bound. */
  reuse(reused: number, full: number, dropped: number, deferred?: number): void;
  /** The residual-reuse state held now, bytes. */
  bindReuseBytes(bytes: () => number): void;
}

/** Tick-scale buckets: 1 ms … 2.5 s, then request scale. */
const TICK_BUCKETS = [...FAST_BUCKETS_SECONDS.filter((b) => b >= 0.001), 5, 10];

export function createSchedulerMetrics(registry: Registry): SchedulerMetrics {
  let stats: (() => SchedulerStats) | undefined;
  const tickDuration = new Histogram({
    name: "switchyard_scheduler_tick_duration_seconds", help: "Wall time of a tick (one batched step over every request in it), by rows in the tick (power-of-two bucket)",
    labelNames: ["rows", "outcome"], buckets: TICK_BUCKETS, registers: [registry],
  });
  const queue = new Histogram({ name: "switchyard_scheduler_queue_time_seconds", help: "From admission to a request's first tick", buckets: LATENCY_BUCKETS_SECONDS, registers: [registry] });
  const total = new Histogram({ name: "switchyard_scheduler_request_duration_seconds", help: "From admission to the request's end, by outcome", labelNames: ["outcome"], buckets: LATENCY_BUCKETS_SECONDS, registers: [registry] });
  const requests = new Counter({ name: "switchyard_scheduler_requests_total", help: "Requests that left the scheduler, by outcome (ok or status)", labelNames: ["outcome"], registers: [registry] });
  const gauge = (name: string, help: string, f: (s: SchedulerStats) => number) =>
    new Gauge({ name, help, registers: [registry], collect() { if (stats) this.set(f(stats())); } });
  gauge("switchyard_scheduler_pending_requests", "Admitted requests not yet finished", (s) => s.queued);
  gauge("switchyard_scheduler_live_workers", "Workers in the plan in force", (s) => s.workers);
  let reuseBytes: (() => number) | undefined;
  new Gauge({
    name: "switchyard_scheduler_reuse_state_bytes", help: "Residual-reuse state held for the images in flight (bounded by SWITCHYARD_MAX_REUSE_BYTES)", registers: [registry],
    collect() { if (reuseBytes) this.set(reuseBytes()); },
  });
  const reuseEvals = new Counter({ name: "switchyard_scheduler_reuse_evaluations_total", help: "Evaluations of requests with residual reuse, by outcome: reused (only the first block ran) or full", labelNames: ["outcome"], registers: [registry] });
  const reuseDeferred = new Counter({ name: "switchyard_scheduler_reuse_deferred_total", help: "Evaluations a worker deferred because it no longer kept the residual-reuse state the scheduler named (sent again with the state)", registers: [registry] });
  const reuseDropped = new Counter({ name: "switchyard_scheduler_reuse_states_dropped_total", help: "New residual-reuse states not kept because the bound was reached (the image's next evaluation is full)", registers: [registry] });
  return {
    tick: (seconds, rows, ok) => tickDuration.observe({ rows: rowsBucket(rows), outcome: ok ? "ok" : "failed" }, seconds),
    started: (s) => queue.observe(s),
    finished(outcome, seconds) {
      requests.inc({ outcome });
      total.observe({ outcome }, seconds);
    },
    bind: (f) => void (stats = f),
    reuse(reused, full, dropped, deferred = 0) {
      if (deferred) reuseDeferred.inc(deferred);
      if (reused) reuseEvals.inc({ outcome: "reused" }, reused);
      if (full) reuseEvals.inc({ outcome: "full" }, full);
      if (dropped) reuseDropped.inc(dropped);
    },
    bindReuseBytes: (f) => void (reuseBytes = f),
  };
}

import { DEFAULT_SERVING_GROUP, type SchedulerStats } from "@switchyard/contract";
import type { CacheFigures, WorkerTraffic } from "@switchyard/proto";
import type { GatewayMetrics } from "./admission";

/** Traffic totals of one worker (from its heartbeats, or from in-process runtimes). */
export type { WorkerTraffic };

/** The scheduler's published figures. */
export type SchedulerFigures = SchedulerStats;

/** Scheduler and per-worker figures in Prometheus text. */
export function renderClusterMetrics(schedulers: ReadonlyMap<string, SchedulerFigures>, workers: ReadonlyMap<string, WorkerTraffic & { group?: string }>): string {
  const lines: string[] = [];
  if (schedulers.size > 0) {
    // One series per serving group (each group's scheduler publishes its own figures).
    const g = (name: string, help: string, type: "gauge" | "counter", v: (f: SchedulerFigures) => number) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [group, f] of schedulers) lines.push(`${name}{group="${group}"} ${v(f)}`);
    };
    g("switchyard_scheduler_queued_requests", "Admitted requests not yet finished", "gauge", (f) => f.queued);
    g("switchyard_scheduler_ticks_total", "Scheduler ticks (batched forwards)", "counter", (f) => f.ticks);
    g("switchyard_scheduler_evals_total", "Image evals computed", "counter", (f) => f.evals);
    g("switchyard_scheduler_steps_total", "Sampler steps completed by requests", "counter", (f) => f.steps);
    g("switchyard_scheduler_last_tick_rows", "Rows in the last tick", "gauge", (f) => f.lastTickRows);
    g("switchyard_scheduler_last_tick_ms", "Duration of the last tick, ms", "gauge", (f) => f.lastTickMs);
    g("switchyard_scheduler_workers", "Live workers", "gauge", (f) => f.workers);
    g("switchyard_scheduler_warmup_ticks_total", "Warm-up ticks run when plans came into force (included in ticks_total)", "counter", (f) => f.warmUpTicks ?? 0);
  }
  const per: [Exclude<keyof WorkerTraffic, "cache">, string, string][] = [
    ["ticks", "switchyard_worker_ticks_total", "Ticks a worker was home in"],
    ["rowsSent", "switchyard_worker_rows_sent_total", "Rows sent to other workers' experts"],
    ["rowsReceived", "switchyard_worker_rows_received_total", "Rows received for this worker's experts"],
    ["bytesSent", "switchyard_worker_bytes_sent_total", "Bytes sent to other workers"],
    ["bytesReceived", "switchyard_worker_bytes_received_total", "Bytes received from other workers"],
    ["expertRows", "switchyard_worker_expert_rows_total", "Rows computed by this worker's experts"],
  ];
  if (workers.size > 0) {
    for (const [k, name, help] of per) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
      for (const [id, t] of workers) lines.push(`${name}{worker="${id}",group="${t.group ?? DEFAULT_SERVING_GROUP}"} ${t[k]}`);
    }
  }
  const cached = [...workers].filter(([, t]) => t.cache);
  if (cached.length > 0) {
    const series: [string, "gauge" | "counter", string, (c: CacheFigures) => number][] = [
      ["switchyard_expert_cache_budget_bytes", "gauge", "Device bytes for experts", (c) => c.budgetBytes],
      ["switchyard_expert_cache_resident_bytes", "gauge", "Bytes of resident experts", (c) => c.residentBytes],
      ["switchyard_expert_cache_resident_experts", "gauge", "Resident experts", (c) => c.residentExperts],
      ["switchyard_expert_cache_ticks_total", "counter", "Ticks the cache served", (c) => c.ticks],
      ["switchyard_expert_cache_layer_runs_total", "counter", "Layers run on the expert device", (c) => c.layerRuns],
      ["switchyard_expert_cache_needed_total", "counter", "Distinct experts needed, summed over layer runs (÷ layer runs: experts a tick touches per layer)", (c) => c.needed],
      ["switchyard_expert_cache_hits_total", "counter", "Needed experts resident (or prefetched) when their layer ran", (c) => c.hits],
      ["switchyard_expert_cache_misses_total", "counter", "Needed experts loaded on demand", (c) => c.misses],
      ["switchyard_expert_cache_loads_total", "counter", "Experts loaded (prefetch and on demand)", (c) => c.loads],
      ["switchyard_expert_cache_prefetch_loads_total", "counter", "Experts loaded by prefetch", (c) => c.prefetchLoads],
      ["switchyard_expert_cache_loaded_bytes_total", "counter", "Bytes loaded into device memory", (c) => c.bytesLoaded],
      ["switchyard_expert_cache_wasted_bytes_total", "counter", "Bytes loaded for experts their tick did not use", (c) => c.wastedBytes],
      ["switchyard_expert_cache_stall_seconds_total", "counter", "Time compute waited for expert loads", (c) => c.stallMs / 1000],
      ["switchyard_expert_cache_predicted_total", "counter", "Experts predicted, summed over layer runs", (c) => c.predicted],
      ["switchyard_expert_cache_predicted_hits_total", "counter", "Predicted experts that were needed (÷ predicted: precision; ÷ needed: recall)", (c) => c.predictedHits],
    ];
    for (const [name, type, help, f] of series) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [id, t] of cached) lines.push(`${name}{worker="${id}",group="${t.group ?? DEFAULT_SERVING_GROUP}",policy="${t.cache!.policy}"} ${f(t.cache!)}`);
    }
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}

/** Prometheus text exposition of the gateway's counters. */
export function renderMetrics(m: GatewayMetrics): string {
  const lines: string[] = [];
  const counter = (name: string, help: string, value: number, labels = "") => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name}${labels} ${value}`);
  };
  counter("switchyard_requests_total", "Generate requests received", m.requests);
  counter("switchyard_request_success_total", "Generate requests that returned images", m.succeeded);
  lines.push("# HELP switchyard_request_failure_total Generate requests that failed, by reason", "# TYPE switchyard_request_failure_total counter");
  for (const [reason, n] of m.failed) lines.push(`switchyard_request_failure_total{reason="${reason}"} ${n}`);
  lines.push("# HELP switchyard_inflight_requests Requests being streamed now", "# TYPE switchyard_inflight_requests gauge", `switchyard_inflight_requests ${m.inflight}`);
  counter("switchyard_request_queue_ms_total", "Milliseconds requests waited before their first tick", m.queueMsSum);
  counter("switchyard_request_compute_ms_total", "Milliseconds of tick compute attributed to requests", m.computeMsSum);
  counter("switchyard_request_total_ms_total", "Milliseconds from acceptance to result", m.totalMsSum);
  counter("switchyard_steps_streamed_total", "Progress events streamed", m.stepsStreamed);
  return lines.join("\n") + "\n";
}

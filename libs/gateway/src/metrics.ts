import type { GatewayMetrics } from "./api";

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

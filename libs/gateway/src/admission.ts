import { Code, SwitchyardError, codeToString } from "@switchyard/errors";
import { Counter, Gauge, Histogram, LATENCY_BUCKETS_SECONDS, type Registry, createServiceRegistry } from "@switchyard/telemetry";
import type { ApiToken } from "./auth";

/** What the gateway counts, over every protocol; the /metrics endpoint renders it. */
export interface GatewayMetrics {
  requests: number;
  succeeded: number;
  /** Failures by status code name (`InvalidArgument`, `Canceled`, …). */
  failed: Map<string, number>;
  inflight: number;
  queueMsSum: number;
  computeMsSum: number;
  totalMsSum: number;
  stepsStreamed: number;
  /** prom-client series of this gateway (histograms in seconds), rendered after the counters above. */
  readonly registry: Registry;
  readonly observe: GatewayObservations;
}

interface GatewayObservations {
  accepted(protocol: string, seconds: number): void;
  firstProgress(protocol: string, seconds: number): void;
  done(protocol: string, outcome: string, seconds: number, queueSeconds?: number): void;
}

/** Which API a request came in through (a bounded label). */
export type Protocol = "native" | "kserve" | "openai";

export function createGatewayMetrics(registry: Registry = createServiceRegistry("gateway")): GatewayMetrics {
  const h = (name: string, help: string, labelNames: string[]) => new Histogram({ name, help, labelNames, buckets: LATENCY_BUCKETS_SECONDS, registers: [registry] });
  const toAccepted = h("switchyard_request_time_to_accepted_seconds", "From a request's arrival at the gateway to the scheduler's acceptance", ["protocol"]);
  const toProgress = h("switchyard_request_time_to_first_progress_seconds", "From arrival to the first progress event (native streams)", ["protocol"]);
  const total = h("switchyard_request_duration_seconds", "From arrival to the result or the error, by outcome (ok or status)", ["protocol", "outcome"]);
  const queue = h("switchyard_request_queue_time_seconds", "Time a successful request waited for its first tick", ["protocol"]);
  const outcomes = new Counter({ name: "switchyard_gateway_requests_total", help: "Requests by protocol and outcome (ok or status), as Triton's nv_inference_request_success/failure", labelNames: ["protocol", "outcome"], registers: [registry] });
  const m: GatewayMetrics = {
    requests: 0, succeeded: 0, failed: new Map(), inflight: 0, queueMsSum: 0, computeMsSum: 0, totalMsSum: 0, stepsStreamed: 0, registry,
    observe: {
      accepted: (p, s) => toAccepted.observe({ protocol: p }, s),
      firstProgress: (p, s) => toProgress.observe({ protocol: p }, s),
      done(p, outcome, s, q) {
        total.observe({ protocol: p, outcome }, s);
        outcomes.inc({ protocol: p, outcome });
        if (q !== undefined) queue.observe({ protocol: p }, q);
      },
    },
  };
  new Gauge({ name: "switchyard_gateway_pending_requests", help: "Requests in flight at this gateway", registers: [registry], collect() { this.set(m.inflight); } });
  return m;
}

/** One request's life at the gateway; each method after the first end is a no-op. */
export interface TrackedRequest {
  /** Admission control: RESOURCE_EXHAUSTED when the gateway is at its limit. */
  admit(): void;
  /**
   * The caller's limits (auth.ts), once the request is parsed: PERMISSION_DENIED naming
   * `field` for a priority above its maximum, RESOURCE_EXHAUSTED when the request would
   * take it past its concurrent requests or images × steps in flight. What it claims is
   * given back when the request ends. No caller (tokens off): nothing to check.
   */
  claim(caller: ApiToken | undefined, ask: { readonly work: number; readonly priority: number; readonly priorityField: string }): void;
  /** The scheduler accepted it. */
  accepted(): void;
  /** A progress event (the first is timed). */
  progress(): void;
  succeed(t: { queueMs: number; computeMs: number; totalMs: number }): void;
  fail(err: unknown): void;
  /** The client went away. */
  cancel(): void;
}

/**
 * Admission and accounting shared by the native API, KServe (gRPC and REST) and the
 * OpenAI-style endpoint, so that one limit bounds all of them and one set of counters
 * describes them.
 */
export interface RequestTracker {
  readonly metrics: GatewayMetrics;
  begin(protocol?: Protocol): TrackedRequest;
}

export function createRequestTracker(metrics: GatewayMetrics, maxInflight: number): RequestTracker {
  /** Requests and images × steps in flight per token name. */
  const usage = new Map<string, { requests: number; work: number }>();
  const countFailure = (code: Code) => {
    const k = Code[code] ?? String(code);
    metrics.failed.set(k, (metrics.failed.get(k) ?? 0) + 1);
  };
  return {
    metrics,
    begin(protocol: Protocol = "native") {
      metrics.requests++;
      metrics.inflight++;
      const t0 = performance.now();
      const since = () => (performance.now() - t0) / 1000;
      let ended = false;
      let progressed = false;
      let claimed: { readonly name: string; readonly work: number } | undefined;
      const end = () => {
        if (ended) return false;
        ended = true;
        metrics.inflight--;
        if (claimed) {
          const u = usage.get(claimed.name)!;
          u.requests--;
          u.work -= claimed.work;
          if (u.requests === 0) usage.delete(claimed.name);
        }
        return true;
      };
      return {
        accepted: () => metrics.observe.accepted(protocol, since()),
        progress() {
          if (progressed) return;
          progressed = true;
          metrics.observe.firstProgress(protocol, since());
        },
        admit() {
          if (metrics.inflight > maxInflight) throw new SwitchyardError(`gateway is at its limit of ${maxInflight} concurrent requests; retry later`, Code.ResourceExhausted);
        },
        claim(caller, ask) {
          if (!caller || claimed || ended) return;
          const { maxConcurrent, maxWork, maxPriority } = caller.limits;
          if (maxPriority !== undefined && ask.priority > maxPriority) {
            throw new SwitchyardError(`${ask.priorityField} ${ask.priority} is above the maximum of ${maxPriority} for API token ${caller.name}`, Code.PermissionDenied, { field: ask.priorityField });
          }
          const u = usage.get(caller.name) ?? { requests: 0, work: 0 };
          if (maxConcurrent !== undefined && u.requests + 1 > maxConcurrent) {
            throw new SwitchyardError(`API token ${caller.name} has ${u.requests} of its ${maxConcurrent} concurrent requests in flight; retry later`, Code.ResourceExhausted);
          }
          if (maxWork !== undefined && u.work + ask.work > maxWork) {
            throw new SwitchyardError(`API token ${caller.name} has ${u.work} of its ${maxWork} image-steps in flight; this request adds ${ask.work} (images × steps); retry later`, Code.ResourceExhausted);
          }
          u.requests++;
          u.work += ask.work;
          usage.set(caller.name, u);
          claimed = { name: caller.name, work: ask.work };
        },
        succeed(t) {
          if (!end()) return;
          metrics.succeeded++;
          metrics.queueMsSum += t.queueMs;
          metrics.computeMsSum += t.computeMs;
          metrics.totalMsSum += t.totalMs;
          metrics.observe.done(protocol, "ok", since(), t.queueMs / 1000);
        },
        fail(err) {
          if (!end()) return;
          const code = SwitchyardError.from(err, Code.Internal).code;
          countFailure(code);
          metrics.observe.done(protocol, codeToString(code), since());
        },
        cancel() {
          if (!end()) return;
          countFailure(Code.Canceled);
          metrics.observe.done(protocol, "canceled", since());
        },
      };
    },
  };
}

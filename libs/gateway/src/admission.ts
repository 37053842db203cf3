import { Code, SwitchyardError } from "@switchyard/errors";

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
}

export function createGatewayMetrics(): GatewayMetrics {
  return { requests: 0, succeeded: 0, failed: new Map(), inflight: 0, queueMsSum: 0, computeMsSum: 0, totalMsSum: 0, stepsStreamed: 0 };
}

/** One request's life at the gateway; each method after the first end is a no-op. */
export interface TrackedRequest {
  /** Admission control: RESOURCE_EXHAUSTED when the gateway is at its limit. */
  admit(): void;
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
  begin(): TrackedRequest;
}

export function createRequestTracker(metrics: GatewayMetrics, maxInflight: number): RequestTracker {
  const countFailure = (code: Code) => {
    const k = Code[code] ?? String(code);
    metrics.failed.set(k, (metrics.failed.get(k) ?? 0) + 1);
  };
  return {
    metrics,
    begin() {
      metrics.requests++;
      metrics.inflight++;
      let ended = false;
      const end = () => {
        if (ended) return false;
        ended = true;
        metrics.inflight--;
        return true;
      };
      return {
        admit() {
          if (metrics.inflight > maxInflight) throw new SwitchyardError(`gateway is at its limit of ${maxInflight} concurrent requests; retry later`, Code.ResourceExhausted);
        },
        succeed(t) {
          if (!end()) return;
          metrics.succeeded++;
          metrics.queueMsSum += t.queueMs;
          metrics.computeMsSum += t.computeMs;
          metrics.totalMsSum += t.totalMs;
        },
        fail(err) {
          if (end()) countFailure(SwitchyardError.from(err, Code.Internal).code);
        },
        cancel() {
          if (end()) countFailure(Code.Canceled);
        },
      };
    },
  };
}

export { Counter, FAST_BUCKETS_SECONDS, Gauge, Histogram, LATENCY_BUCKETS_SECONDS, Registry, createServiceRegistry, rowsBucket, startMetricsServer } from "./metrics";
export { createLogger } from "./log";
export { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, extractContext, inSpan, injectContext, setupTracing, trace, tracer } from "./trace";
export type { Context, Span } from "./trace";
export { TELEMETRY_ENV, telemetryConfigShape } from "./config";

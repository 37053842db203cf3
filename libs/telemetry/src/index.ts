export { Counter, FAST_BUCKETS_SECONDS, Gauge, Histogram, LATENCY_BUCKETS_SECONDS, Registry, createServiceRegistry, rowsBucket, startMetricsServer } from "./metrics";
export type { MetricsServer } from "./metrics";
export { LOG_FORMATS, createLogger, logFormat } from "./log";
export type { LogFormat, Logger } from "./log";
export { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, extractContext, inSpan, injectContext, otlpEndpoint, setupTracing, trace, tracer } from "./trace";
export type { Context, Span, Tracing } from "./trace";
export { TELEMETRY_ENV, telemetryConfigShape } from "./config";

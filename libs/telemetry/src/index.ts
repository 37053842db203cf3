export { Counter, FAST_BUCKETS_SECONDS, Gauge, Histogram, LATENCY_BUCKETS_SECONDS, Registry, createServiceRegistry, rowsBucket, startMetricsServer } from "./metrics";
export type { MetricsServer } from "./metrics";
export { LOG_FORMATS, createLogger, logFormat } from "./log";
export type { LogFormat, Logger } from "./log";

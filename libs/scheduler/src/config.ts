import { z } from "zod";
import { BUS_ENV, busConfigShape } from "@switchyard/bus";
import { TELEMETRY_ENV, telemetryConfigShape } from "@switchyard/telemetry";
import { DATA_PLANE_ENV, dataPlaneConfigShape } from "@switchyard/data-plane";
import { DEFAULT_MAX_TICK_ROWS, DEFAULT_SERVING_GROUP } from "@switchyard/contract";
import { intInRange, parseOrThrow, port, readEnv } from "@switchyard/config";
import { BUNDLED_MODEL_DIR } from "@switchyard/manifest";
import { DEFAULT_MAX_QUEUED, DEFAULT_MAX_QUEUED_WORK, DEFAULT_MAX_REUSE_BYTES } from "./policy";
import { DEFAULT_LIVENESS_MS } from "./remote-pool";
import { DEFAULT_WARM_UP_TICKS } from "./warm-up-ticks";

export const ENV = {
  ...BUS_ENV,
  ...TELEMETRY_ENV,
  ...DATA_PLANE_ENV,
  SWITCHYARD_MODEL_DIR: "modelDir",
  SWITCHYARD_GROUP: "group",
  SWITCHYARD_METRICS_PORT: "metricsPort",
  SWITCHYARD_DRAIN_TIMEOUT_MS: "drainTimeoutMs",
  SWITCHYARD_MAX_TICK_ROWS: "maxTickRows",
  SWITCHYARD_MAX_QUEUED: "maxQueued",
  SWITCHYARD_MAX_QUEUED_WORK: "maxQueuedWork",
  SWITCHYARD_MAX_REUSE_BYTES: "maxReuseBytes",
  SWITCHYARD_LIVENESS_MS: "livenessMs",
  SWITCHYARD_MAX_REQUESTS_PER_TICK: "maxRequestsPerTick",
  SWITCHYARD_TRACE_DIR: "traceDir",
  SWITCHYARD_ROUTE_AWARE_BATCHING: "routeAwareBatching",
  SWITCHYARD_SCHEDULER_HOST: "host",
  SWITCHYARD_SCHEDULER_PORT: "port",
  SWITCHYARD_WARMUP_TICKS: "warmUpTicks",
} as const;

export const schedulerConfigSchema = z.strictObject({
  ...busConfigShape,
  ...telemetryConfigShape,
  ...dataPlaneConfigShape,
  modelDir: z.string().min(1).default(BUNDLED_MODEL_DIR),
  /** Serving group: this scheduler drives only the workers of this group (one scheduler per group). */
  group: z.string().min(1).default(DEFAULT_SERVING_GROUP),
  /** Prometheus /metrics of this process (prom-client); 0 = any free port (logged), "off" = none. */
  metricsPort: z.union([port, z.literal("off")]).default(0),
  /** On SIGTERM: stop taking requests and let those held finish for up to this long. */
  drainTimeoutMs: intInRange(0, 600_000).default(30_000),
  maxTickRows: intInRange(2, 65536).default(DEFAULT_MAX_TICK_ROWS),
  maxQueued: intInRange(1, 1_000_000).default(DEFAULT_MAX_QUEUED),
  /** Most image-steps (images × steps) held; beyond it RESOURCE_EXHAUSTED unless nothing is held. */
  maxQueuedWork: intInRange(1, 1e12).default(DEFAULT_MAX_QUEUED_WORK),
  /** Most bytes of residual-reuse state held (past it new states are dropped and those images run full evaluations). */
  maxReuseBytes: intInRange(0, 1e13).default(DEFAULT_MAX_REUSE_BYTES),
  livenessMs: intInRange(100, 600_000).default(DEFAULT_LIVENESS_MS),
  /** 0 = unlimited; 1 = one request at a time (baseline for benchmarks). */
  maxRequestsPerTick: intInRange(0, 1_000_000).default(0),
  /** Where routing traces are written; unset = no recording. */
  traceDir: z.string().min(1).optional(),
  /** Group requests whose predicted experts overlap when not all fit in a tick. */
  routeAwareBatching: z.boolean().default(true),
  /** grpc.health.v1 + reflection listener (probes); 0 = any free port, "off" = none (in process). */
  host: z.string().min(1).default("127.0.0.1"),
  port: z.union([port, z.literal("off")]).default(0),
  /** Synthetic full-budget ticks when a plan comes into force and nothing is queued; 0 = none. */
  warmUpTicks: intInRange(0, 64).default(DEFAULT_WARM_UP_TICKS),
});

export type SchedulerConfig = z.output<typeof schedulerConfigSchema>;

export function resolveSchedulerConfig(env: NodeJS.ProcessEnv = process.env): SchedulerConfig {
  return parseOrThrow(schedulerConfigSchema, readEnv(ENV, env), { what: "scheduler config" });
}

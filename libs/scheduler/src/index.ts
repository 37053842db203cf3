export {
  planTick,
  admit,
  applyVelocity,
  isFinished,
  compareRequests,
  rowsPerImage,
  leastLoadedHome,
  affinityHome,
  groupByRoute,
  DEFAULT_MAX_WAIT_TICKS,
  DEFAULT_MAX_TICK_ROWS,
  DEFAULT_MAX_QUEUED,
} from "./policy";
export type { RequestSpec, RequestState, ImageState, TickItem, TickPlan, SchedulerLimits, HomePolicy, RouteGrouping } from "./policy";
export { createSchedulerService, MICRO_BATCH_MIN_IMAGES, microBatchesFor } from "./service";
export type { SchedulerService, SchedulerServiceOptions, RoutingRecord } from "./service";
export { createRemotePool, DEFAULT_LIVENESS_MS } from "./remote-pool";
export type { RemotePool, RemotePoolOptions } from "./remote-pool";
export { createTraceRecorder, DEFAULT_TRACE_MAX_RECORDS } from "./trace-recorder";
export type { TraceRecorder, TraceRecorderOptions } from "./trace-recorder";
export { DEFAULT_WARM_UP_TICKS, warmUpItems } from "./warm-up-ticks";
export { createSchedulerMetrics } from "./metrics";
export type { SchedulerMetrics } from "./metrics";
export { startScheduler } from "./start";
export type { StartedScheduler, SchedulerDeps } from "./start";
export { ENV as SCHEDULER_ENV, schedulerConfigSchema, resolveSchedulerConfig } from "./config";
export type { SchedulerConfig } from "./config";

export {
  schedule,
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
export type { SchedulerService, SchedulerServiceOptions, SchedulerStats, WorkerPool, RoutingRecord } from "./service";
export { f32ToBase64, base64ToF32 } from "./events";
export type { SubmitMessage, SubmitReply, RequestEvent } from "./events";
export { contiguousPlan, copyHolders, expertsOf, reassign } from "./plan";
export type { ExpertPlan } from "./plan";
export { createRemotePool, DEFAULT_LIVENESS_MS } from "./remote-pool";
export type { RemotePool, RemotePoolOptions, Heartbeat, DrainRequest } from "./remote-pool";
export { createTraceRecorder, DEFAULT_TRACE_MAX_RECORDS } from "./trace-recorder";
export type { TraceRecorder, TraceRecorderOptions } from "./trace-recorder";
export { createChangeSignal } from "./change-signal";
export type { ChangeSignal } from "./change-signal";
export { createClassPriors, tickPrediction, unpackExperts, DEFAULT_PRIOR_MIN_SHARE } from "./prediction";
export type { ClassPriors } from "./prediction";
export { DEFAULT_WARM_UP_TICKS, warmUpItems } from "./warm-up";
export { createSchedulerMetrics } from "./metrics";
export type { SchedulerMetrics } from "./metrics";

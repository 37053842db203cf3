export {
  schedule,
  admit,
  applyVelocity,
  isFinished,
  compareRequests,
  rowsPerImage,
  leastLoadedHome,
  DEFAULT_MAX_TICK_ROWS,
  DEFAULT_MAX_QUEUED,
} from "./policy";
export type { RequestSpec, RequestState, ImageState, TickItem, TickPlan, SchedulerLimits, HomePolicy } from "./policy";
export { createSchedulerService } from "./service";
export type { SchedulerService, SchedulerServiceOptions, SchedulerStats, WorkerPool, RoutingRecord } from "./service";
export { f32ToBase64, base64ToF32 } from "./events";
export type { SubmitMessage, SubmitReply, RequestEvent } from "./events";

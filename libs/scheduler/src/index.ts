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

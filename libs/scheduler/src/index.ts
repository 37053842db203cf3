export type { SchedulerLimits } from "./policy";
export type { SchedulerService } from "./service";
export type { TraceRecorder } from "./trace-recorder";
export { DEFAULT_WARM_UP_TICKS } from "./warm-up-ticks";
export { startScheduler } from "./start";
export { ENV as SCHEDULER_ENV, schedulerConfigSchema, resolveSchedulerConfig } from "./config";

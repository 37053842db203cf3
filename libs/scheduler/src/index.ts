export type { SchedulerLimits } from "./policy";
export { microBatchesFor } from "./service";
export type { SchedulerService } from "./service";
export type { TraceRecorder } from "./trace-recorder";
export { DEFAULT_WARM_UP_TICKS } from "./warm-up-ticks";
export { createSchedulerMetrics } from "./metrics";
export { startScheduler } from "./start";
export { ENV as SCHEDULER_ENV, schedulerConfigSchema, resolveSchedulerConfig } from "./config";

// Not public: what the benchmarks (tools/bench) reach into to measure the scheduler's parts.
export { microBatchesFor } from "./service";
export { createSchedulerMetrics } from "./metrics";

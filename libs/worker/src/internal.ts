// Not public: what the benchmarks (tools/bench) reach into to measure the worker's parts.
export { createWorkerMetrics } from "./metrics";

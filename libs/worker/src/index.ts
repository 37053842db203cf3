export { createWorkerRuntime, createLocalPeers, trafficTotals, DEFAULT_EXCHANGE_TIMEOUT_MS } from "./runtime";
export type { WorkerRuntime, WorkerRuntimeOptions, WorkerStats, LayerTraffic } from "./runtime";
export { contiguousPlan, expertsOf, reassign } from "@switchyard/scheduler";
export type { ExpertPlan } from "@switchyard/scheduler";
export type { TickItemMsg, TickRequestMsg, TickResponseMsg, ExchangeRequestMsg, ExchangeResponseMsg, PeerClient } from "@switchyard/proto";
export { createLocalPool } from "./local-pool";
export type { LocalPool } from "./local-pool";
export { createWorkerCache, parseExpertBudget } from "./cache";
export type { ExpertBudget, WorkerCacheOptions } from "./cache";

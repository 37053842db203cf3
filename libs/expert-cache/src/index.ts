export { createExpertCache, createPolicy, lruPolicy, lfuPolicy, predictivePolicy } from "./cache";
export type { ExpertCache, ExpertId, CachePolicy, CachePlan, PolicyName } from "./cache";
export { replayTrace, DEFAULT_LOOKAHEAD } from "./replay";
export type { ReplayOptions, ReplayResult } from "./replay";
export { createResidency, successorsFrom, DEFAULT_RESIDENCY_LOOKAHEAD, MIN_PREFETCH_ROWS } from "./residency";
export type { ExpertDevice, DeviceRun, Residency, ResidencyOptions, CacheStats, TickPrediction, Successors } from "./residency";
export { addRouting, emptyPrediction, classPriorsFromTrace, predictionQuality } from "./predict";
export type { ClassPriors } from "./predict";

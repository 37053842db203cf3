export { createExpertCache, createPolicy, lruPolicy, lfuPolicy, predictivePolicy } from "./cache";
export type { ExpertCache, ExpertId, CachePolicy, CachePlan, PolicyName } from "./cache";
export { replayTrace } from "./replay";
export type { ReplayOptions, ReplayResult } from "./replay";
export { createResidency, selectExperts, placeSelection, successorsFrom, DEFAULT_RESIDENCY_LOOKAHEAD, MIN_PREFETCH_ROWS } from "./residency";
export type { ExpertDevice, ExpertSelection, DeviceRun, Residency, ResidencyOptions, CacheStats, TickPrediction, Successors } from "./residency";
export { addRouting, emptyPrediction, classPriorsFromTrace } from "./predict";
export type { ClassPriors } from "./predict";

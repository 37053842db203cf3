export { createExpertCache, createPolicy, lruPolicy, lfuPolicy, predictivePolicy } from "./cache";
export type { ExpertCache, ExpertId, CachePolicy, CachePlan, PolicyName } from "./cache";
export { replayTrace } from "./replay";
export type { ReplayOptions, ReplayResult } from "./replay";
export { createResidency, selectExperts, placeSelection, successorsFrom, DEFAULT_RESIDENCY_LOOKAHEAD, MIN_PREFETCH_ROWS } from "./residency";
export type { ExpertDevice, ExpertSelection, DeviceRun, Residency, ResidencyOptions, CacheStats, TickPrediction, Successors } from "./residency";
export { addRouting, addExperts, emptyPrediction, classPriorsFromTrace, createClassPriors, DEFAULT_PRIOR_MIN_SHARE } from "./prediction";
export type { ClassPriors } from "./prediction";

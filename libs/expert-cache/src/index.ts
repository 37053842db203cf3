export { createPolicy } from "./cache";
export { replayTrace } from "./replay";
export { createResidency, selectExperts, placeSelection, successorsFrom, DEFAULT_RESIDENCY_LOOKAHEAD } from "./residency";
export type { ExpertDevice, Residency, CacheStats, TickPrediction } from "./residency";
export { addExperts, emptyPrediction, classPriorsFromTrace, createClassPriors } from "./prediction";
export type { ClassPriors } from "./prediction";

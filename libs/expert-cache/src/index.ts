export { createExpertCache, createPolicy, lruPolicy, lfuPolicy, predictivePolicy } from "./cache";
export type { ExpertCache, ExpertId, CachePolicy, CachePlan, PolicyName } from "./cache";
export { replayTrace, DEFAULT_LOOKAHEAD } from "./replay";
export type { ReplayOptions, ReplayResult } from "./replay";

export { createEngine, alongside, createBatchedExecutor, expertChunks, partsExpertRunner } from "./engine";
export type { Engine, ExpertExecutor, LayerOutputs, StepTask, LayerExpertRunner } from "./engine";
export type { ExpertGroups, ExpertOutputs } from "./routing";
export { gatherRowsFrom } from "./routing";
export { probeDistance } from "./residual-reuse";
export type { ReuseOutcome, ReuseRequest, ReuseState } from "./residual-reuse";


export { generate } from "./generate";
export { createLaneEngine, laneCuts, DEFAULT_LANES, DEFAULT_MIN_LANE_ROWS } from "./lanes";
export type { LaneEngine, LaneEngineOptions, Lane } from "./lanes";

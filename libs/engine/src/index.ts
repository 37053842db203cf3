export { createEngine, alongside, createBatchedExecutor, expertChunks, partsExpertRunner } from "./engine";
export type { Engine, ExpertExecutor, StepTask, LayerExpertRunner } from "./engine";
export type { ExpertGroups } from "./routing";
export { probeDistance } from "./residual-reuse";
export type { ReuseOutcome, ReuseRequest, ReuseState } from "./residual-reuse";


export { generate } from "./generate";

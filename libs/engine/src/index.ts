export { createEngine, createLocalExecutor, alongside, createBatchedExecutor, expertChunks, partsExpertRunner, combineBlock, DEFAULT_MAX_BATCH_ROWS } from "./engine";
export type { Engine, EngineOptions, EvalItem, ExpertExecutor, ForwardResult, StepTask, StepResult, LayerExpertRunner } from "./engine";
export { routeTopK, groupByExpert, activeExperts, gatherRows, scatterAddWeighted } from "./routing";
export type { LayerRouting, ExpertGroups } from "./routing";


export { generate, initialNoise } from "./generate";
export type { GenerateProgress, GenerateResult } from "./generate";

export { createEngine, alongside, createBatchedExecutor, expertChunks, partsExpertRunner } from "./engine";
export type { Engine, ExpertExecutor, StepTask, LayerExpertRunner } from "./engine";
export type { ExpertGroups } from "./routing";


export { generate } from "./generate";

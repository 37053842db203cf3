export {
  SAMPLERS,
  sigmaAt,
  timesteps,
  evalsPerRun,
  initState,
  isDone,
  currentT,
  nextEval,
  advance,
  combineGuidance,
  needsUnconditional,
  previewX0,
} from "./sampler";
export type { SamplerName, SamplingParams, SamplerState, EvalPoint, Advance } from "./sampler";
export { createRng, gaussianNoise } from "./noise";
export type { Rng } from "./noise";

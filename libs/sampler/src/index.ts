export { SAMPLERS, initState, isDone, currentT, nextEval, advance, combineGuidance, needsUnconditional, previewX0, guidanceAt, guidedEvals, nextEvalT, timesteps, evalsPerRun } from "./sampler";
export type { SamplerName, SamplingParams, SamplerState, GuidanceInterval } from "./sampler";
export { createRng, gaussianNoise } from "./noise";

export { SAMPLERS, initState, isDone, currentT, nextEval, advance, combineGuidance, needsUnconditional, previewX0 } from "./sampler";
export type { SamplerName, SamplingParams, SamplerState } from "./sampler";
export { createRng, gaussianNoise } from "./noise";

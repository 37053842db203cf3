export { readTrace, parseNpyTrace, mergeTraces, encodeTrace, encodeNpyTrace, buildTrace } from "./format";
export type { Trace } from "./format";
export { traceStats, coActivation, expertLoad, transitions, cfgPairOverlap } from "./stats";

export { parseTrace, readTrace, parseNpyTrace, mergeTraces, encodeTrace, encodeNpyTrace, buildTrace, TRACE_FORMAT } from "./format";
export type { Trace, TraceRecord, TraceShape, EncodeTraceOptions } from "./format";
export { traceStats, coActivation, coActivationMatrix, expertLoad, transitions } from "./stats";
export type { TraceStats, CoActivation, GroupActivation } from "./stats";
